// A private Dovecot for a test: reads and (with an LMTP port) delivers into
// the AuthD test folder's Maildir tree as the mail user 5000:5001; stopped by
// its process id.
using System.Diagnostics;

namespace Mail.Tests.Support;

internal sealed class DovecotServer : IDisposable
{
    private readonly Process _process;
    public string Config { get; }
    public int LmtpPort { get; }
    public int ImapPort { get; }
    public int Pop3Port { get; private init; }
    public int SievePort { get; private init; }

    private DovecotServer(Process process, string config, int lmtpPort, int imapPort)
    {
        _process = process;
        Config = config;
        LmtpPort = lmtpPort;
        ImapPort = imapPort;
    }

    /// <summary>With <paramref name="imap"/>: IMAP on a loopback port, any password accepted, "/" as separator as ours.</summary>
    public static DovecotServer Start(AuthDServer authd, bool lmtp = false, bool imap = false, bool pop3 = false, bool sieve = false) =>
        Start(authd.Dir, authd.Dir["mail"], lmtp, imap, pop3, sieve);

    /// <summary>A Dovecot whose files live in <paramref name="dir"/>, serving the Maildir tree under <paramref name="mailRoot"/> (domain/user).</summary>
    /// <summary>A login service listening on 127.0.0.1:<paramref name="port"/>, without its implicit-TLS listener.</summary>
    private static string Login(string protocol, int port) => $$"""
        service {{protocol}}-login {
          inet_listener {{protocol}} {
            address = 127.0.0.1
            port = {{port}}
          }
          inet_listener {{protocol}}s {
            port = 0
          }
        }

        """;

    /// <summary>With <paramref name="sieve"/>: Pigeonhole in LMTP (~/sieve, ~/.dovecot.sieve) and ManageSieve on a loopback port.</summary>
    public static DovecotServer Start(TempDir dir, string mailRoot, bool lmtp = false, bool imap = false, bool pop3 = false, bool sieve = false)
    {
        var port = lmtp ? Ports.Free() : 0;
        var sievePort = sieve ? Ports.Free() : 0;
        var imapPort = imap ? Ports.Free() : 0;
        var pop3Port = pop3 ? Ports.Free() : 0;
        var conf = dir["dovecot.conf"];
        var names = new List<string>();
        var services = new System.Text.StringBuilder();
        if (lmtp)
        {
            names.Add("lmtp");
            services.Append($$"""
                service lmtp {
                  inet_listener lmtp {
                    address = 127.0.0.1
                    port = {{port}}
                  }
                }

                """);
        }
        if (imap)
        {
            names.Add("imap");
            services.Append(Login("imap", imapPort)).Append("""
                disable_plaintext_auth = no
                namespace inbox {
                  inbox = yes
                  separator = /
                  mailbox Drafts {
                    special_use = \Drafts
                  }
                  mailbox Sent {
                    special_use = \Sent
                  }
                  mailbox Trash {
                    special_use = \Trash
                  }
                  mailbox Junk {
                    special_use = \Junk
                  }
                  mailbox Archive {
                    special_use = \Archive
                  }
                }

                """);
        }
        if (pop3)
        {
            names.Add("pop3");
            services.Append(Login("pop3", pop3Port)).Append("""
                disable_plaintext_auth = no
                pop3_uidl_format = %08Xu%08Xv

                """);
        }
        if (sieve)
        {
            names.Add("sieve");
            services.Append(Login("managesieve", sievePort).Replace("inet_listener managesieve ", "inet_listener sieve ").Replace("inet_listener managesieves", "inet_listener sieves")).Append("""
                disable_plaintext_auth = no
                postmaster_address = postmaster@example.org
                protocol lmtp {
                  mail_plugins = sieve
                }
                plugin {
                  sieve = file:~/sieve;active=~/.dovecot.sieve
                }

                """);
        }
        var protocols = "protocols = " + string.Join(' ', names) + "\n" + services;
        File.WriteAllText(conf, $$"""
            base_dir = {{dir["dovecot-run"]}}
            instance_name = mailtest
            log_path = {{dir["dovecot.log"]}}
            ssl = no
            {{protocols}}
            first_valid_uid = 1
            mail_location = maildir:{{mailRoot}}/%d/%n
            passdb {
              driver = static
              args = nopassword=y
            }
            userdb {
              driver = static
              args = uid=5000 gid=5001 home={{mailRoot}}/%d/%n
            }
            """);
        var psi = new ProcessStartInfo(Peers.Require("dovecot")) { ArgumentList = { "-F", "-c", conf }, UseShellExecute = false };
        var server = new DovecotServer(Process.Start(psi)!, conf, port, imapPort) { Pop3Port = pop3Port, SievePort = sievePort };
        Assert.That(Wait.UntilAsync(() => File.Exists(dir["dovecot-run/auth-userdb"]), TimeSpan.FromSeconds(30)).Result, Is.True, "dovecot did not start");
        foreach (var p in new[] { port, imapPort, pop3Port, sievePort }.Where(p => p != 0))
            Assert.That(Wait.UntilAsync(() =>
            {
                try { using var t = new System.Net.Sockets.TcpClient(); t.Connect(System.Net.IPAddress.Loopback, p); return true; }
                catch (System.Net.Sockets.SocketException) { return false; }
            }, TimeSpan.FromSeconds(30)).Result, Is.True, $"dovecot did not start listening on {p}");
        return server;
    }

    /// <summary>Dovecot with a configuration the test wrote, once it listens on <paramref name="port"/>.</summary>
    public static DovecotServer StartWithConfig(string conf, int port)
    {
        var psi = new ProcessStartInfo(Peers.Require("dovecot")) { ArgumentList = { "-F", "-c", conf }, UseShellExecute = false };
        var process = Process.Start(psi)!;
        var server = new DovecotServer(process, conf, port, 0);
        Assert.That(PeerProcess.Listening(process, port), Is.True, $"dovecot did not start listening on {port}");
        return server;
    }

    /// <summary>
    /// A dovecot.conf of a test's own: the header (base_dir, log, no TLS, loopback, plaintext
    /// logins allowed), <paramref name="body"/>, and an LMTP listener when <paramref name="lmtpPort"/> is set.
    /// </summary>
    public static string ConfigText(string baseDir, string name, string log, string protocols, int lmtpPort, string body)
    {
        var lmtp = lmtpPort == 0 ? "" : $"service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtpPort}\n  }}\n}}\n";
        return $"base_dir = {baseDir}\ninstance_name = {name}\nlog_path = {log}\nssl = no\nlisten = 127.0.0.1\nprotocols = {protocols}\n" +
               $"first_valid_uid = 1\ndisable_plaintext_auth = no\n{body}\n{lmtp}";
    }

    /// <summary>dovecot.conf lines for a Dovecot with no auth of its own: its mail processes and imap-login on AuthD's sockets.</summary>
    public static string OnAuthD(string clientSocket, string userdbSocket, int imapPort, int pop3Port = 0) => $$"""
        auth_socket_path = {{userdbSocket}}
        service imap-login {
          chroot =
          executable = imap-login {{clientSocket}}
          {{ImapListener(imapPort)}}
        }
        service imap {
          executable = imap -a {{userdbSocket}}
        }
        """ + (pop3Port == 0 ? "" : $$"""

        service pop3-login {
          chroot =
          executable = pop3-login {{clientSocket}}
          inet_listener pop3 {
            address = 127.0.0.1
            port = {{pop3Port}}
          }
          inet_listener pop3s {
            port = 0
          }
        }
        service pop3 {
          executable = pop3 -a {{userdbSocket}}
        }
        pop3_uidl_format = %08Xu%08Xv
        """);

    /// <summary>dovecot.conf lines for Dovecot's own auth on a passwd-file, its client and userdb sockets open to our daemons and Postfix.</summary>
    public static string OwnAuth(string usersFile, int imapPort) => $$"""
        auth_verbose = yes
        auth_failure_delay = 0
        passdb {
          driver = passwd-file
          args = {{usersFile}}
        }
        userdb {
          driver = passwd-file
          args = {{usersFile}}
        }
        service auth {
          unix_listener auth-client {
            mode = 0666
          }
          unix_listener auth-userdb {
            mode = 0666
          }
        }
        service imap-login {
          {{ImapListener(imapPort)}}
        }
        """;

    private static string ImapListener(int port) => $$"""
        inet_listener imap {
            address = 127.0.0.1
            port = {{port}}
          }
          inet_listener imaps {
            port = 0
          }
        """;

    public RunResult Doveadm(params string[] args) => Run.Program(Peers.Require("doveadm"), ["-c", Config, .. args]);

    public void Dispose()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}
