using System.Diagnostics;
using System.Net;
using MailKit.Net.Imap;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// Our lmtpd, imappopd and mtad on Dovecot's auth service instead of AuthD (auth_backend = dovecot):
/// a private Dovecot with a passwd-file passdb and userdb; lmtpd asks its userdb socket for each
/// recipient and delivers into the user's ~/Maildir as the user's uid, imappopd logs in through its
/// client socket (a wrong password refused, the client's address in Dovecot's log), mtad takes
/// submission's AUTH and its recipients from Dovecot; with Dovecot stopped, lmtpd and imappopd
/// answer with a temporary failure, as they do when AuthD is down.
/// </summary>
[NonParallelizable]
public sealed class DovecotBackendTests
{
    /// <summary>Every process below <paramref name="root"/>.</summary>
    private static List<int> Descendants(int root)
    {
        var parent = new Dictionary<int, int>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(d, "stat"));
                parent[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
            }
            catch (IOException) { }
        }
        var found = new List<int>();
        var next = new Queue<int>([root]);
        while (next.Count > 0)
        {
            var p = next.Dequeue();
            foreach (var (child, of) in parent) if (of == p) { found.Add(child); next.Enqueue(child); }
        }
        return found;
    }

    [Test]
    public async Task Lmtpd_imappopd_and_mtad_log_in_and_look_up_through_Dovecots_auth()
    {
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        var home = dir["mail/example.org/bob"];
        File.WriteAllText(dir["users"], $"bob@example.org:{{PLAIN}}bob's pass:5000:5001::{home}::\n");
        Directory.CreateDirectory(dir["dovecot-run"]);
        var unused = Ports.Free();
        File.WriteAllText(dir["dovecot.conf"], DovecotServer.ConfigText(dir["dovecot-run"], "backend-test", dir["dovecot.log"], "imap", 0,
            DovecotServer.OwnAuth(dir["users"], unused)));
        var dovecot = Process.Start(new ProcessStartInfo(Peers.Require("dovecot")) { ArgumentList = { "-F", "-c", dir["dovecot.conf"] }, UseShellExecute = false })!;
        try
        {
            Assert.That(await Wait.UntilAsync(() => File.Exists(dir["dovecot-run/auth-client"]) && File.Exists(dir["dovecot-run/auth-userdb"]), TimeSpan.FromSeconds(30)), Is.True,
                "Dovecot's auth sockets");
            var backend = $"""
                auth_backend = dovecot
                dovecot_client_socket = {dir["dovecot-run/auth-client"]}
                dovecot_userdb_socket = {dir["dovecot-run/auth-userdb"]}
                """;
            var (lmtp, imap) = (Ports.Free(), Ports.Free());
            File.WriteAllText(dir["lmtpd.conf"], $"""
                listen = 127.0.0.1:{lmtp}
                socket =
                log_file = {dir["lmtpd.log"]}
                sieve_before =
                sieve_after =
                user_cache_ttl = 0
                {backend}
                """);
            File.WriteAllText(dir["imappopd.conf"], $"""
                imap_listen = 127.0.0.1:{imap}
                imaps_listen =
                pop3_listen =
                pop3s_listen =
                managesieve_listen =
                log_file = {dir["imappopd.log"]}
                {backend}
                """);
            using var lmtpd = new Daemon("lmtpd", dir["lmtpd.conf"], new IPEndPoint(IPAddress.Loopback, lmtp));
            using var imappopd = new Daemon("imappopd", dir["imappopd.conf"], new IPEndPoint(IPAddress.Loopback, imap));
            await lmtpd.StartAsync();
            await imappopd.StartAsync();

            var swaks = Peers.Require("swaks");
            var sent = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp}", "--from", "a@remote.test", "--to", "bob@example.org",
                "--body", "user from Dovecot's userdb", "--timeout", "30"]);
            Assert.That(sent.ExitCode, Is.Zero, sent.Stdout + File.ReadAllText(dir["lmtpd.log"]));
            var delivered = Directory.GetFiles(Path.Combine(home, "Maildir", "new"));
            Assert.That(delivered, Has.Length.EqualTo(1), "into ~/Maildir, Dovecot's userdb giving the home");
            Assert.That(Run.Program("stat", ["-c", "%u:%g", delivered[0]]).Stdout.Trim(), Is.EqualTo("5000:5001"));
            var unknown = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp}", "--from", "a@remote.test", "--to", "nobody@example.org",
                "--quit-after", "RCPT", "--timeout", "30"]);
            Assert.That(unknown.Stdout, Does.Contain("550 5.1.1"));

            using (var client = new ImapClient())
            {
                await client.ConnectAsync("127.0.0.1", imap, MailKit.Security.SecureSocketOptions.None);
                Assert.ThrowsAsync<MailKit.Security.AuthenticationException>(() => client.AuthenticateAsync("bob@example.org", "wrong"));
                await client.AuthenticateAsync("bob@example.org", "bob's pass");
                await client.Inbox.OpenAsync(MailKit.FolderAccess.ReadOnly);
                Assert.That(client.Inbox.Count, Is.EqualTo(1));
                Assert.That((await client.Inbox.GetMessageAsync(0)).TextBody, Does.Contain("user from Dovecot's userdb"));
                await client.DisconnectAsync(true);
            }
            // mtad too: submission's AUTH through Dovecot's client socket, the recipient through its userdb.
            var submission = Ports.Free();
            File.WriteAllText(dir["mtad.conf"], $"""
                mx_listen =
                submission_listen = 127.0.0.1:{submission}
                submissions_listen =
                pickup_socket =
                spool_dir = {dir["spool"]}
                control_socket = {dir["run/mtad.ctl"]}
                lmtp_destination = 127.0.0.1:{lmtp}
                defer_transports = smtp
                hostname = mx.example.org
                log_file = {dir["mtad.log"]}
                {backend}
                dovecot_domains = example.org
                """);
            using var mtad = new Daemon("mtad", dir["mtad.conf"], new IPEndPoint(IPAddress.Loopback, submission));
            await mtad.StartAsync();
            var submitted = Run.Program(swaks, ["--server", $"127.0.0.1:{submission}", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                "--auth-password", "bob's pass", "--from", "bob@example.org", "--to", "bob+notes@example.org", "--body", "submitted through mtad", "--timeout", "30"]);
            Assert.That(submitted.ExitCode, Is.Zero, submitted.Stdout);
            Assert.That(await Wait.UntilAsync(() => Directory.GetFiles(Path.Combine(home, "Maildir", "new")).Length
                + Directory.GetFiles(Path.Combine(home, "Maildir", "cur")).Length == 2, TimeSpan.FromSeconds(30)), Is.True, File.ReadAllText(dir["mtad.log"]));
            var badLogin = Run.Program(swaks, ["--server", $"127.0.0.1:{submission}", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                "--auth-password", "wrong", "--from", "bob@example.org", "--to", "bob@example.org", "--quit-after", "AUTH", "--timeout", "30"]);
            Assert.That(badLogin.Stdout, Does.Contain("535 5.7.8"));
            var nobody = Run.Program(swaks, ["--server", $"127.0.0.1:{submission}", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                "--auth-password", "bob's pass", "--from", "bob@example.org", "--to", "nobody@example.org", "--quit-after", "RCPT", "--timeout", "30"]);
            Assert.That(nobody.Stdout, Does.Contain("550 5.1.1"));

            var log = File.ReadAllText(dir["dovecot.log"]);
            Assert.That(log, Does.Match(@"passwd-file\(bob@example\.org,127\.0\.0\.1,.*\): (Password mismatch|.*mismatch)"), log);

            // Dovecot stops, all its processes as `systemctl stop` ends them (its auth process would
            // otherwise go on serving the connections it has): a temporary failure for a recipient
            // and for a login, nothing refused for good.
            var family = Descendants(dovecot.Id);
            Run.Program("kill", ["-TERM", dovecot.Id.ToString(), .. family.Select(p => p.ToString())]);
            Assert.That(dovecot.WaitForExit(30_000), Is.True);
            Assert.That(await Wait.UntilAsync(() => family.All(p => !Directory.Exists($"/proc/{p}")), TimeSpan.FromSeconds(30)), Is.True, "Dovecot's processes are gone");
            var later = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp}", "--from", "a@remote.test", "--to", "bob@example.org",
                "--quit-after", "RCPT", "--timeout", "30"]);
            Assert.That(later.Stdout, Does.Match(@"<\*\* 4\d\d 4\."), later.Stdout);
            using (var client = new ImapClient())
            {
                await client.ConnectAsync("127.0.0.1", imap, MailKit.Security.SecureSocketOptions.None);
                var refused = Assert.ThrowsAsync<MailKit.Security.AuthenticationException>(() => client.AuthenticateAsync("bob@example.org", "bob's pass"));
                Assert.That(refused!.Message, Does.Contain("Temporary"));
            }
        }
        finally
        {
            if (!dovecot.HasExited) { Run.Program("kill", ["-TERM", dovecot.Id.ToString()]); dovecot.WaitForExit(30_000); }
        }
    }
}
