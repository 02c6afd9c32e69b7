using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// Dovecot on AuthD alone: a private Dovecot whose auth_socket_path is AuthD's dovecot_userdb_socket
/// and whose imap-login and pop3-login authenticate on AuthD's client socket delivers by LMTP into
/// the Maildir AuthD names and refuses an unknown recipient, logs IMAP and POP3 users in (the imap
/// and pop3 processes take the login's user from AuthD by its cookie) and refuses a wrong password; doveadm looks a user up,
/// checks it exists and lists the users through the same socket.
/// </summary>
[NonParallelizable]
public sealed class DovecotUserdbTests
{
    [Test]
    public async Task Dovecot_lmtp_imap_and_doveadm_take_their_users_from_AuthD()
    {
        var doveadm = Peers.Require("doveadm");
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        // Dovecot's login processes run as dovenull, its mail processes as the users' uid: both reach AuthD's sockets.
        var files = Daemon.WriteAuthdConfig(dir, $"dovecot_userdb_socket = {dir["run/auth-userdb"]}\ndovecot_auth_socket = {dir["run/auth-client"]}\nsocket_mode = 0666");
        await files.AddUserAsync(new DirectoryUser("bob@example.org", PasswordScheme.Hash("bob's pass", "SSHA")) { QuotaBytes = 1 << 20 });
        await files.AddUserAsync(new DirectoryUser("carol@example.org", PasswordScheme.Hash("x", "SSHA")));
        Directory.CreateDirectory(dir["mail"]);
        Run.Program("chown", ["5000:5001", dir["mail"]]);
        using var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/auth-userdb"]));
        await authd.StartAsync();

        var (lmtp, imap, pop3) = (Ports.Free(), Ports.Free(), Ports.Free());
        Directory.CreateDirectory(dir["dovecot-run"]);
        File.WriteAllText(dir["dovecot.conf"], DovecotServer.ConfigText(dir["dovecot-run"], "userdb-test", dir["dovecot.log"], "lmtp imap pop3", lmtp,
            DovecotServer.OnAuthD(dir["run/auth-client"], dir["run/auth-userdb"], imap, pop3)));
        using var server = DovecotServer.StartWithConfig(dir["dovecot.conf"], lmtp);

        var swaks = Peers.Require("swaks");
        var sent = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp}", "--from", "a@remote.test", "--to", "bob@example.org",
            "--body", "through Dovecot's LMTP, user from AuthD", "--timeout", "30"]);
        Assert.That(sent.ExitCode, Is.Zero, sent.Stdout + File.ReadAllText(dir["dovecot.log"]));
        var delivered = Directory.GetFiles(dir["mail/example.org/bob/new"]);
        Assert.That(delivered, Has.Length.EqualTo(1));
        Assert.That(File.ReadAllText(delivered[0]), Does.Contain("user from AuthD"));
        Assert.That(Run.Program("stat", ["-c", "%u:%g", delivered[0]]).Stdout.Trim(), Is.EqualTo("5000:5001"), "delivered as AuthD's uid and gid");
        var unknown = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp}", "--from", "a@remote.test", "--to", "nobody@example.org",
            "--quit-after", "RCPT", "--timeout", "30"]);
        Assert.That(unknown.Stdout, Does.Match(@"<\*\* 550 5\.1\.1 .*nobody@example\.org"));

        // Dovecot's IMAP: imap-login authenticates on AuthD's client socket, the imap process asks
        // AuthD's userdb socket for the user with the login's cookie, and reads AuthD's Maildir.
        var login = Run.Program("/usr/bin/python3", ["-c", $$"""
            import imaplib
            c = imaplib.IMAP4('127.0.0.1', {{imap}})
            try:
                c.login('bob@example.org', 'wrong')
            except imaplib.IMAP4.error as e:
                print('refused:', e)
            c = imaplib.IMAP4('127.0.0.1', {{imap}})
            c.login('bob@example.org', "bob's pass")
            print('messages:', c.select('INBOX')[1][0].decode())
            print(c.fetch('1', '(BODY[TEXT])')[1][0][1].decode().strip())
            c.logout()
            import poplib
            p = poplib.POP3('127.0.0.1', {{pop3}})
            p.user('bob@example.org')
            try:
                p.pass_('wrong')
            except poplib.error_proto as e:
                print('pop3 refused:', e)
            p = poplib.POP3('127.0.0.1', {{pop3}})
            p.user('bob@example.org')
            p.pass_("bob's pass")
            print('pop3 messages:', p.stat()[0])
            p.quit()
            """]);
        Assert.That(login.ExitCode, Is.Zero, login.Stdout + login.Stderr + File.ReadAllText(dir["dovecot.log"]));
        Assert.That(login.Stdout, Does.Contain("refused: b'[AUTHENTICATIONFAILED]").And.Contain("messages: 1").And.Contain("user from AuthD"));
        Assert.That(login.Stdout, Does.Contain("pop3 refused: b'-ERR [AUTH]").And.Contain("pop3 messages: 1"), "Dovecot's POP3 too");
        Assert.That(await Wait.UntilAsync(() => File.ReadAllText(dir["authd.log"]).Contains("service=imap, rip=127.0.0.1, mech=PLAIN, user=<bob@example.org>, result=ok"),
            TimeSpan.FromSeconds(10)), Is.True, "the client's address and the service reach AuthD's log and throttle");

        var user = Run.Program(doveadm, ["-c", dir["dovecot.conf"], "user", "-a", dir["run/auth-userdb"], "bob@example.org"]);
        Assert.That(user.ExitCode, Is.Zero, user.Stdout + user.Stderr);
        Assert.That(user.Stdout, Does.Contain("uid\t5000\n").And.Contain("gid\t5001\n").And.Contain($"home\t{dir["mail/example.org/bob"]}\n")
            .And.Contain($"mail\tmaildir:{dir["mail/example.org/bob"]}\n").And.Contain("quota_rule\t*:bytes=1048576\n"));
        var missing = Run.Program(doveadm, ["-c", dir["dovecot.conf"], "user", "-a", dir["run/auth-userdb"], "nobody@example.org"]);
        Assert.That(missing.ExitCode, Is.EqualTo(67), missing.Stdout + missing.Stderr); // EX_NOUSER
        var lookup = Run.Program(doveadm, ["-c", dir["dovecot.conf"], "auth", "lookup", "-a", dir["run/auth-userdb"], "carol@example.org"]);
        Assert.That(lookup.ExitCode, Is.Zero, lookup.Stdout + lookup.Stderr);
        Assert.That(lookup.Stdout, Does.Contain("carol@example.org"));
        var list = Run.Program(doveadm, ["-c", dir["dovecot.conf"], "user", "-a", dir["run/auth-userdb"], "*@example.org"]);
        Assert.That(list.ExitCode, Is.Zero, list.Stdout + list.Stderr);
        Assert.That(list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), Is.EquivalentTo(new[] { "bob@example.org", "carol@example.org" }));
    }

    [Test]
    public async Task The_userdb_socket_spoken_by_hand()
    {
        await using var authd = await AuthDServer.StartAsync("dovecot_userdb_socket = run/auth-userdb");
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        await authd.Admin.AddUserAsync(new Mail.Shared.UserDirectory.DirectoryUser("off@example.org", "x", Active: false));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(authd.Dir["run/auth-userdb"]));
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        async Task<string?> Read() => await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Task Send(string text) => stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

        Assert.That(await Read(), Is.EqualTo("VERSION\t1\t2"));
        Assert.That(await Read(), Is.EqualTo($"SPID\t{Environment.ProcessId}"), "in-process AuthD");
        await Send("VERSION\t1\t0\nCPID\t77\n");
        await Send("USER\t1\tBob+news@Example.org\tservice=lmtp\n");
        Assert.That(await Read(), Does.StartWith("USER\t1\tbob@example.org\thome=").And.Contain("\tuid=5000\tgid=5001\tmail=maildir:"));
        await Send("USER\t2\tbob\u0001t@example.org\n"); // a TAB in the name, escaped: no such user
        Assert.That(await Read(), Is.EqualTo("NOTFOUND\t2"));
        await Send("USER\t3\toff@example.org\n"); // a disabled mailbox
        Assert.That(await Read(), Is.EqualTo("NOTFOUND\t3"));
        await Send("PASS\t4\tbob@example.org\tservice=doveadm\n");
        Assert.That(await Read(), Is.EqualTo("PASS\t4\tuser=bob@example.org"));
        await Send("LIST\t5\tuser=b*\n");
        Assert.That(await Read(), Is.EqualTo("LIST\t5\tbob@example.org"));
        Assert.That(await Read(), Is.EqualTo("DONE\t5"));
        await Send("CACHE-FLUSH\t6\n");
        Assert.That(await Read(), Is.EqualTo("OK\t6\t0"));
        await Send("REQUEST\t7\t4242\t1\t0123456789abcdef0123456789abcdef\n");
        Assert.That(await Read(), Is.EqualTo("FAIL\t7"), "no login by that client");
        await Send("AUTH\t8\tPLAIN\n"); // a client-side command on the master socket
        Assert.That(await Read(), Is.Null, "the connection ends");
        Assert.That(await Wait.UntilAsync(() => File.Exists(authd.LogFile) && File.ReadAllText(authd.LogFile).Contains("dovecot-userdb: unexpected command 'AUTH'; disconnecting"),
            TimeSpan.FromSeconds(10)), Is.True, "the refusal is logged");
    }
}
