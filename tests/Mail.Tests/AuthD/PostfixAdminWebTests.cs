using System.Net;
using System.Net.Sockets;
using MailKit.Net.Imap;
using MailKit.Net.Smtp;
using MimeKit;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// PostfixAdmin's web UI (Debian's package, in headless Chromium) on the PostgreSQL that AuthD
/// reads, as a new administrator uses it: setup.php makes the schema and a superadmin, who
/// adds a domain and a mailbox; that mailbox logs in to our IMAP and has mail at once (the
/// welcome message PostfixAdmin sent through our mtad, and a message from outside), and a
/// password changed on the user's own PostfixAdmin page counts at the very next login.
/// </summary>
[NonParallelizable]
public sealed class PostfixAdminWebTests
{
    [Test]
    [Timeout(600_000)]
    public async Task A_mailbox_made_in_PostfixAdmin_logs_in_gets_mail_and_its_changed_password_counts_at_once()
    {
        Peers.Require("chromium");
        Peers.Require("chromedriver");
        await using var pg = await PostgresServer.StartAsync(withSchema: false);
        using var dir = new TempDir();
        var (lmtpPort, mx, imap) = (Ports.Free(), Ports.Free(), Ports.Free());
        File.WriteAllText(dir["authd.conf"], $"""
            grpc_socket = {dir["run/authd.sock"]}
            dovecot_auth_socket =
            socketmap_socket =
            directory_driver = pgsql
            pgsql_connection = {pg.ConnectionString()}
            mail_root = {dir["mail"]}
            mail_uid = 5000
            mail_gid = 5001
            log_file = {dir["authd.log"]}
            """);
        Daemon.WriteLmtpdConfig(dir, lmtpPort);
        File.WriteAllText(dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{mx}
            submission_listen =
            submissions_listen =
            pickup_socket =
            mynetworks = 127.0.0.0/8
            authd_socket = {dir["run/authd.sock"]}
            spool_dir = {dir["spool"]}
            control_socket = {dir["run/mtad.ctl"]}
            lmtp_destination = 127.0.0.1:{lmtpPort}
            defer_transports = smtp
            log_file = {dir["mtad.log"]}
            """);
        File.WriteAllText(dir["imappopd.conf"], $"""
            imap_listen = 127.0.0.1:{imap}
            imaps_listen =
            pop3_listen =
            pop3s_listen =
            managesieve_listen =
            authd_socket = {dir["run/authd.sock"]}
            log_file = {dir["imappopd.log"]}
            """);
        using var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/authd.sock"]));
        using var lmtpd = new Daemon("lmtpd", dir["lmtpd.conf"], new IPEndPoint(IPAddress.Loopback, lmtpPort));
        using var mtad = new Daemon("mtad", dir["mtad.conf"], new IPEndPoint(IPAddress.Loopback, mx));
        using var imappopd = new Daemon("imappopd", dir["imappopd.conf"], new IPEndPoint(IPAddress.Loopback, imap));
        foreach (var d in new[] { authd, lmtpd, mtad, imappopd }) await d.StartAsync();
        string Logs() => string.Join("\n", new[] { "authd.log", "mtad.log", "lmtpd.log", "imappopd.log" }.Select(f => dir[f]).Where(File.Exists)
            .Select(f => $"--- {Path.GetFileName(f)}:\n" + string.Join('\n', File.ReadLines(f).TakeLast(15))));

        using var admin = PostfixAdminServer.Start(pg, mx, "Setup-pass-12");
        admin.Browse("setup", "Setup-pass-12", "admin@example.org", "Admin-pass-12", "example.org", "bob", "Bob-pass-12");
        Assert.That(await pg.ScalarAsync<string>("SELECT password FROM mailbox WHERE username = 'bob@example.org'"), Does.StartWith("$1$"),
            "Debian's PostfixAdmin hashes with md5crypt");

        // Mail from outside, through the MX, for the new mailbox.
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("alice@remote.test"));
        message.To.Add(MailboxAddress.Parse("bob@example.org"));
        message.Subject = "for the new mailbox";
        message.Body = new TextPart("plain") { Text = "made in PostfixAdmin\n" };
        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", mx, MailKit.Security.SecureSocketOptions.None);
            await smtp.SendAsync(message);
            await smtp.DisconnectAsync(true);
        }
        using (var client = new ImapClient())
        {
            await client.ConnectAsync("127.0.0.1", imap, MailKit.Security.SecureSocketOptions.None);
            await client.AuthenticateAsync("bob@example.org", "Bob-pass-12");
            await client.Inbox.OpenAsync(MailKit.FolderAccess.ReadOnly);
            Assert.That(await Wait.UntilAsync(async () => { await client.NoOpAsync(); return client.Inbox.Count == 2; }, TimeSpan.FromSeconds(30)), Is.True,
                $"{client.Inbox.Count} messages\n{Logs()}");
            var subjects = new List<string>();
            for (int i = 0; i < client.Inbox.Count; i++) subjects.Add((await client.Inbox.GetMessageAsync(i)).Subject ?? "");
            Assert.That(subjects, Does.Contain("for the new mailbox").And.Contain("Welcome"), "PostfixAdmin's welcome message came through mtad");
            await client.DisconnectAsync(true);
        }

        admin.Browse("password", "bob@example.org", "Bob-pass-12", "Bob-pass-34");
        using (var client = new ImapClient())
        {
            await client.ConnectAsync("127.0.0.1", imap, MailKit.Security.SecureSocketOptions.None);
            Assert.ThrowsAsync<MailKit.Security.AuthenticationException>(() => client.AuthenticateAsync("bob@example.org", "Bob-pass-12"));
            await client.AuthenticateAsync("bob@example.org", "Bob-pass-34");
            Assert.That(client.IsAuthenticated, Is.True);
            await client.DisconnectAsync(true);
        }
        Assert.That(File.ReadAllText(dir["authd.log"]), Does.Contain("user=<bob@example.org>, result=failed").And.Contain("user=<bob@example.org>, result=ok"));
    }
}
