using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Mix;

/// <summary>
/// Every mix of {mtad, Postfix} x {lmtpd, Dovecot's LMTP} x {imappopd, Dovecot's IMAP} x {AuthD,
/// Dovecot's auth}, on loopback, over one Maildir. For each: a message submitted with AUTH to the
/// mix's MTA, delivered through the mix's LMTP, read back through the mix's IMAP; the same bytes,
/// RFC822.SIZE and UID as the other IMAP server sees; a wrong password refused by SMTP AUTH and
/// IMAP; every login through the mix's auth (AuthD's log gains the SMTP and IMAP logins of its
/// mixes and nothing of the others). Prints the 16-cell table.
/// </summary>
[NonParallelizable]
public sealed class SixteenMixesTests
{
    private const string User = "bob@example.org", Password = "Bob's pass 16";

    private sealed record Side(int Lmtp, int Imap, int OurLmtp, int OurImap, int Mtad, int MtadToDovecot, PostfixServer Postfix, PostfixServer PostfixToDovecot);

    [Test]
    [Timeout(900_000)]
    public async Task All_sixteen_mixes_carry_mail_from_submission_to_IMAP()
    {
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        var home = dir["mail/example.org/bob"];
        Directory.CreateDirectory(home);
        Run.Program("chown", ["-R", "5000:5001", dir["mail"]]);
        var running = new List<Daemon>();
        var dovecots = new List<Process>();
        var postfixes = new List<PostfixServer>();
        try
        {
            // AuthD: the user, every socket Postfix and Dovecot need, open to their users.
            var files = Daemon.WriteAuthdConfig(dir, $"""
                dovecot_auth_socket = {dir["run/auth-client"]}
                dovecot_userdb_socket = {dir["run/auth-userdb"]}
                socketmap_socket = {dir["run/socketmap"]}
                socket_mode = 0666
                auth_failure_delay = 50ms
                auth_failure_delay_max = 100ms
                """);
            await files.AddUserAsync(new Mail.Shared.UserDirectory.DirectoryUser(User, PasswordScheme.Hash(Password, "SSHA256")));
            var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/authd.sock"]));
            running.Add(authd);
            await authd.StartAsync();

            // Dovecot's auth: the same user and password, the same Maildir, in a passwd-file.
            File.WriteAllText(dir["users"], $"{User}:{{PLAIN}}{Password}:5000:5001::{home}::userdb_mail=maildir:{home}\n");

            var sides = new Dictionary<string, Side>();
            foreach (var auth in new[] { "AuthD", "Dovecot" })
            {
                var tag = auth.ToLowerInvariant();
                var (lmtp, imap) = (Ports.Free(), Ports.Free());
                // Dovecot's LMTP and IMAP: on AuthD (no auth process of its own), or on its own auth.
                Directory.CreateDirectory(dir[$"dovecot-{tag}"]);
                var body = auth == "AuthD"
                    ? DovecotServer.OnAuthD(dir["run/auth-client"], dir["run/auth-userdb"], imap)
                    : DovecotServer.OwnAuth(dir["users"], imap);
                File.WriteAllText(dir[$"dovecot-{tag}.conf"],
                    DovecotServer.ConfigText(dir[$"dovecot-{tag}"], $"mix-{tag}", dir[$"dovecot-{tag}.log"], "lmtp imap", lmtp, body));
                var dovecot = Process.Start(new ProcessStartInfo(Peers.Require("dovecot")) { ArgumentList = { "-F", "-c", dir[$"dovecot-{tag}.conf"] }, UseShellExecute = false })!;
                dovecots.Add(dovecot);
                Assert.That(PeerProcess.Listening(dovecot, imap) && PeerProcess.Listening(dovecot, lmtp), Is.True, $"Dovecot ({auth})");

                // Ours: lmtpd and imappopd, on AuthD or on Dovecot's auth.
                var backend = auth == "AuthD" ? $"authd_socket = {dir["run/authd.sock"]}" : $"""
                    auth_backend = dovecot
                    dovecot_client_socket = {dir["dovecot-dovecot/auth-client"]}
                    dovecot_userdb_socket = {dir["dovecot-dovecot/auth-userdb"]}
                    dovecot_domains = example.org
                    """;
                var (ourLmtp, ourImap) = (Ports.Free(), Ports.Free());
                File.WriteAllText(dir[$"lmtpd-{tag}.conf"], $"""
                    listen = 127.0.0.1:{ourLmtp}
                    socket =
                    log_file = {dir[$"lmtpd-{tag}.log"]}
                    sieve_before =
                    sieve_after =
                    {backend.Replace("dovecot_domains = example.org", "")}
                    """);
                File.WriteAllText(dir[$"imappopd-{tag}.conf"], $"""
                    imap_listen = 127.0.0.1:{ourImap}
                    imaps_listen =
                    pop3_listen =
                    pop3s_listen =
                    managesieve_listen =
                    log_file = {dir[$"imappopd-{tag}.log"]}
                    {backend.Replace("dovecot_domains = example.org", "")}
                    """);
                foreach (var (name, port) in new[] { ("lmtpd", ourLmtp), ("imappopd", ourImap) })
                {
                    var d = new Daemon(name, dir[$"{name}-{tag}.conf"], new IPEndPoint(IPAddress.Loopback, port));
                    running.Add(d);
                    await d.StartAsync();
                }
                // The MTAs, one for each LMTP: mtad, and Postfix (SASL on the auth's client socket; its
                // recipients from AuthD's socketmap, or, with Dovecot's auth, which has no map, its own table).
                var mtads = new List<int>();
                foreach (var (to, lmtpPort) in new[] { ("ours", ourLmtp), ("dovecot", lmtp) })
                {
                    var port = Ports.Free();
                    File.WriteAllText(dir[$"mtad-{tag}-{to}.conf"], $"""
                        mx_listen =
                        submission_listen = 127.0.0.1:{port}
                        submissions_listen =
                        pickup_socket =
                        spool_dir = {dir[$"spool-{tag}-{to}"]}
                        control_socket = {dir[$"run/mtad-{tag}-{to}.ctl"]}
                        lmtp_destination = 127.0.0.1:{lmtpPort}
                        defer_transports = smtp
                        hostname = mx.example.org
                        log_file = {dir[$"mtad-{tag}-{to}.log"]}
                        {backend}
                        """);
                    var d = new Daemon("mtad", dir[$"mtad-{tag}-{to}.conf"], new IPEndPoint(IPAddress.Loopback, port));
                    running.Add(d);
                    await d.StartAsync();
                    mtads.Add(port);
                }
                PostfixServer StartPostfix(int lmtpPort)
                {
                    var map = $"socketmap:unix:{dir["run/socketmap"]}:";
                    var p = PostfixServer.Start(new Dictionary<string, string>
                    {
                        ["myhostname"] = "postfix.example.org",
                        ["smtpd_sasl_auth_enable"] = "yes",
                        ["smtpd_sasl_type"] = "dovecot",
                        ["smtpd_sasl_path"] = auth == "AuthD" ? dir["run/auth-client"] : dir["dovecot-dovecot/auth-client"],
                        ["smtpd_relay_restrictions"] = "permit_sasl_authenticated, reject_unauth_destination",
                        ["virtual_mailbox_domains"] = auth == "AuthD" ? map + "domains" : "example.org",
                        ["virtual_mailbox_maps"] = auth == "AuthD" ? map + "mailboxes" : $"inline:{{ {User}=ok }}",
                        ["virtual_transport"] = $"lmtp:inet:127.0.0.1:{lmtpPort}",
                    });
                    postfixes.Add(p);
                    return p;
                }
                sides[auth] = new Side(lmtp, imap, ourLmtp, ourImap, mtads[0], mtads[1], StartPostfix(ourLmtp), StartPostfix(lmtp));
            }

            var table = new List<string>();
            var failures = new List<string>();
            int n = 0;
            foreach (var auth in new[] { "AuthD", "Dovecot" })
                foreach (var mta in new[] { "mtad", "Postfix" })
                    foreach (var lmtp in new[] { "lmtpd", "Dovecot LMTP" })
                        foreach (var imap in new[] { "imappopd", "Dovecot IMAP" })
                        {
                            n++;
                            var side = sides[auth];
                            var toDovecot = lmtp == "Dovecot LMTP";
                            var mtaPort = mta == "mtad" ? (toDovecot ? side.MtadToDovecot : side.Mtad) : (toDovecot ? side.PostfixToDovecot : side.Postfix).Port;
                            var (imapPort, otherImap) = imap == "imappopd" ? (side.OurImap, side.Imap) : (side.Imap, side.OurImap);
                            var cell = $"{n,2}  {mta,-8} {lmtp,-13} {imap,-13} {auth,-8}";
                            try
                            {
                                var before = AuthdLogins(dir["authd.log"]);
                                await CarryAsync(n, mtaPort, imapPort, otherImap, home);
                                // AuthD writes each line as it logs it: one SMTP login and two IMAP
                                // logins (the mix's and the other server's) for an AuthD mix, none otherwise.
                                var expected = auth == "AuthD" ? (before.Smtp + 1, before.Imap + 2) : before;
                                await Wait.UntilAsync(() => AuthdLogins(dir["authd.log"]) != before, TimeSpan.FromSeconds(auth == "AuthD" ? 10 : 2));
                                await Wait.UntilAsync(() => AuthdLogins(dir["authd.log"]).Imap >= expected.Item2, TimeSpan.FromSeconds(auth == "AuthD" ? 10 : 0));
                                Assert.That(AuthdLogins(dir["authd.log"]), Is.EqualTo(expected),
                                    auth == "AuthD" ? "the SMTP and IMAP logins went through AuthD" : "no login reached AuthD");
                                table.Add(cell + "  pass");
                            }
                            catch (Exception e) when (e is AssertionException or IOException or MailKit.ProtocolException or MailKit.Net.Imap.ImapCommandException or SocketException or TimeoutException)
                            {
                                table.Add(cell + "  FAIL: " + e.Message.Split('\n')[0]);
                                failures.Add($"{cell}: {e.Message}");
                            }
                        }
            // The table goes to the test log and to build/test-results/mixes.txt, which test.sh prints.
            var report = string.Join("\n", table.Prepend(" #  MTA      LMTP          IMAP          auth      result")) + "\n";
            TestContext.Out.Write(report);
            var results = Path.Combine(Repo.Root, "build", "test-results");
            Directory.CreateDirectory(results);
            File.WriteAllText(Path.Combine(results, "mixes.txt"), report);
            Assert.That(failures, Is.Empty, string.Join("\n\n", failures) + "\n" + string.Join("\n", postfixes.Select(p => p.Log().Split('\n').TakeLast(5)).SelectMany(x => x)));
        }
        finally
        {
            foreach (var p in postfixes) p.Dispose();
            foreach (var d in running) d.Dispose();
            foreach (var p in dovecots)
            {
                if (!p.HasExited) { Run.Program("kill", ["-TERM", p.Id.ToString()]); p.WaitForExit(30_000); }
            }
        }
    }

    /// <summary>Successful SMTP and IMAP logins of bob in AuthD's log so far.</summary>
    private static (int Smtp, int Imap) AuthdLogins(string log)
    {
        var text = File.Exists(log) ? File.ReadAllText(log) : "";
        int Count(string service) => text.Split('\n').Count(l => l.Contains($"service={service},") && l.Contains($"user=<{User}>, result=ok"));
        return (Count("smtp"), Count("imap"));
    }

    /// <summary>One mix: submit, refuse a wrong password, wait for delivery, read back and compare with the other IMAP server.</summary>
    private static async Task CarryAsync(int n, int mtaPort, int imapPort, int otherImap, string maildir)
    {
        var token = $"mix{n}-{Guid.NewGuid():N}";
        var swaks = Peers.Require("swaks");
        var bad = Run.Program(swaks, ["--server", $"127.0.0.1:{mtaPort}", "--auth", "PLAIN", "--auth-user", User, "--auth-password", "wrong 1",
            "--from", User, "--to", User, "--quit-after", "AUTH", "--timeout", "30"]);
        Assert.That(bad.Stdout, Does.Match(@"<\*\* +535 "), "a wrong password refused by SMTP AUTH");
        var sent = Run.Program(swaks, ["--server", $"127.0.0.1:{mtaPort}", "--auth", "PLAIN", "--auth-user", User, "--auth-password", Password,
            "--from", User, "--to", User, "--header", $"Subject: {token}", "--body", $"carried by mix {n}\n", "--timeout", "30"]);
        Assert.That(sent.ExitCode, Is.Zero, "submitted with AUTH: " + sent.Stdout);
        var delivered = await Wait.UntilAsync(() => new[] { "new", "cur" }.Select(d => Path.Combine(maildir, d)).Where(Directory.Exists)
            .SelectMany(Directory.GetFiles).Any(f => File.ReadAllText(f).Contains(token)), TimeSpan.FromSeconds(30));
        Assert.That(delivered, Is.True, "delivered into the Maildir");

        using var client = new ImapClient();
        await client.ConnectAsync("127.0.0.1", imapPort, MailKit.Security.SecureSocketOptions.None);
        Assert.ThrowsAsync<MailKit.Security.AuthenticationException>(() => client.AuthenticateAsync(User, "wrong 2"), "a wrong password refused by IMAP");
        await client.AuthenticateAsync(User, Password);
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var (uid, size, bytes) = await ReadAsync(client.Inbox, token);
        Assert.That(System.Text.Encoding.UTF8.GetString(bytes), Does.Contain($"Subject: {token}").And.Contain($"carried by mix {n}"));
        Assert.That(size, Is.EqualTo(bytes.Length), "RFC822.SIZE is the size of the bytes served");
        await client.DisconnectAsync(true);

        using var other = new ImapClient();
        await other.ConnectAsync("127.0.0.1", otherImap, MailKit.Security.SecureSocketOptions.None);
        await other.AuthenticateAsync(User, Password);
        await other.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var (otherUid, otherSize, otherBytes) = await ReadAsync(other.Inbox, token);
        Assert.That((otherUid, otherSize), Is.EqualTo((uid, size)), "the other IMAP server sees the same UID and RFC822.SIZE");
        Assert.That(otherBytes, Is.EqualTo(bytes), "and the same bytes");
        await other.DisconnectAsync(true);
    }

    private static async Task<(uint Uid, long Size, byte[] Bytes)> ReadAsync(IMailFolder inbox, string token)
    {
        var uids = await inbox.SearchAsync(SearchQuery.SubjectContains(token));
        Assert.That(uids, Has.Count.EqualTo(1), $"one message with {token}");
        var summary = (await inbox.FetchAsync(uids, MessageSummaryItems.UniqueId | MessageSummaryItems.Size)).Single();
        using var stream = await inbox.GetStreamAsync(uids[0], "");
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return (summary.UniqueId.Id, (long)(summary.Size ?? 0), copy.ToArray());
    }
}
