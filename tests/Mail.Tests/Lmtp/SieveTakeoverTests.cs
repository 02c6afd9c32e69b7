using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Lmtp;

/// <summary>
/// A user's filters set up through Dovecot (Pigeonhole's ManageSieve and LMTP) keep working, untouched,
/// when our lmtpd and ManageSieve take over the same home.
/// </summary>
[NonParallelizable]
public sealed class SieveTakeoverTests
{
    private const string Script = """
        require ["fileinto", "mailbox", "imap4flags"];
        if header :contains "subject" "report" { fileinto :create :flags "\\Flagged" "Reports"; }

        """;

    private static RunResult SieveConnect(int port, string password, params string[] args) =>
        Run.Program(Peers.Require("sieve-connect"), ["--server", "127.0.0.1", "--port", port.ToString(), "--user", "erin@example.org",
            "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", .. args], password + "\n", timeoutMs: 30_000);

    private static void Lmtp(int port, string subject)
    {
        var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{port}", "--from", "a@remote.test",
            "--to", "erin@example.org", "--header", "Subject: " + subject, "--body", "numbers", "--timeout", "30"]);
        Assert.That(r.ExitCode, Is.Zero, r.Stdout);
    }

    [Test]
    public async Task Filters_stored_and_run_by_pigeonhole_work_unchanged_with_ours()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("erin@example.org", PasswordScheme.Hash("erin pass", "SHA512-CRYPT"));
        var home = Path.Combine(authd.Dir["mail"], "example.org", "erin");
        using var dir = new TempDir();
        File.WriteAllText(dir["rules.sieve"], Script);
        // The user's home as Dovecot left it: owned by the mail user.
        Directory.CreateDirectory(home);
        Run.Program("chown", ["5000:5001", home]);

        using (var dovecot = DovecotServer.Start(authd, lmtp: true, sieve: true))
        {
            var up = SieveConnect(dovecot.SievePort, "any", "--localsieve", dir["rules.sieve"], "--remotesieve", "rules", "--upload");
            Assert.That(up.ExitCode, Is.Zero, up.Stdout + up.Stderr + File.ReadAllText(authd.Dir["dovecot.log"]));
            var on = SieveConnect(dovecot.SievePort, "any", "--remotesieve", "rules", "--activate");
            Assert.That(on.ExitCode, Is.Zero, on.Stdout + on.Stderr);
            Lmtp(dovecot.LmtpPort, "report one");
        }
        var reports = Path.Combine(home, ".Reports");
        Assert.That(Directory.GetFiles(Path.Combine(reports, "cur")).Concat(Directory.GetFiles(Path.Combine(reports, "new"))), Has.Length.EqualTo(1),
            "Pigeonhole filed the first report");

        // Ours take over the same home: the script Dovecot stored is listed as active and runs.
        await using var lmtp = await LmtpServer.StartAsync(authd);
        await using var imap = await ImapServer.StartAsync(authd);
        var list = SieveConnect(imap.SievePort, "erin pass", "--list");
        Assert.That(list.ExitCode, Is.Zero, list.Stdout + list.Stderr);
        Assert.That(list.Stdout, Does.Contain("\"rules\" ACTIVE"));
        var down = SieveConnect(imap.SievePort, "erin pass", "--remotesieve", "rules", "--localsieve", dir["back.sieve"], "--download");
        Assert.That(down.ExitCode, Is.Zero, down.Stderr);
        Assert.That(File.ReadAllText(dir["back.sieve"]), Is.EqualTo(Script));
        Lmtp(lmtp.Port, "report two");
        var filed = Directory.GetFiles(Path.Combine(reports, "cur")).Where(f => File.ReadAllText(f).Contains("Subject: report two")).ToList();
        Assert.That(filed, Has.Count.EqualTo(1), authd.Log());
        Assert.That(filed[0], Does.EndWith(":2,F"), "flagged as the script says");
        Assert.That(Directory.GetFiles(Path.Combine(home, "new")), Is.Empty, "nothing in INBOX");
    }
}
