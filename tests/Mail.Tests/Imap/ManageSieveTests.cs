using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>ManageSieve (RFC 5804) in imappopd: transcripts of the protocol, the scripts as Pigeonhole lays them out, and sieve-connect as a second client.</summary>
public sealed class ManageSieveTests
{
    private AuthDServer _authd = null!;
    private ImapServer _imap = null!;

    private string Home => Path.Combine(_authd.Dir["mail"], "example.org", "bob");

    [OneTimeSetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _imap = await ImapServer.StartAsync(_authd);
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _imap.DisposeAsync();
        await _authd.DisposeAsync();
    }

    [Test]
    public async Task Before_login_only_capabilities_and_small_literals()
    {
        await Transcript.ReplayAsync("managesieve/session.txt", _imap.SievePort);
        Assert.That(_authd.Log(), Does.Contain("reject: LISTSCRIPTS from [127.0.0.1]"));
    }

    [Test]
    public async Task Every_command_on_a_users_scripts_with_its_reply_and_pigeonholes_layout()
    {
        await Transcript.ReplayAsync("managesieve/scripts.txt", _imap.SievePort);
        // As Pigeonhole keeps them: ~/sieve/NAME.sieve, the active one linked as ~/.dovecot.sieve.
        Assert.That(Directory.GetFiles(Path.Combine(Home, "sieve")).Select(Path.GetFileName), Is.EquivalentTo(new[] { "filters.sieve" }));
        Assert.That(new FileInfo(Path.Combine(Home, ".dovecot.sieve")).LinkTarget, Is.EqualTo("sieve/filters.sieve"));
        Assert.That(File.ReadAllText(Path.Combine(Home, ".dovecot.sieve")), Does.StartWith("require [\"fileinto\"];\r\nif header"));
        Assert.That(_authd.Log(), Does.Contain("user=<bob@example.org> setactive rules"));
    }

    /// <summary>sieve-connect over STARTTLS, with the password on its standard input.</summary>
    private RunResult SieveConnect(params string[] args) =>
        Run.Program(Peers.Require("sieve-connect"), ["--server", "127.0.0.1", "--port", _imap.SievePort.ToString(), "--user", "bob@example.org",
            "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", .. args], "bob pass\n", timeoutMs: 30_000);

    [Test]
    public void Sieve_connect_uploads_activates_lists_downloads_and_deletes_over_starttls()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["vacation.sieve"], "require [\"vacation\"];\nvacation :days 3 \"Away.\";\n");
        var up = SieveConnect("--localsieve", dir["vacation.sieve"], "--remotesieve", "away", "--upload");
        Assert.That(up.ExitCode, Is.Zero, up.Stdout + up.Stderr);
        var on = SieveConnect("--remotesieve", "away", "--activate");
        Assert.That(on.ExitCode, Is.Zero, on.Stdout + on.Stderr);
        var list = SieveConnect("--list");
        Assert.That(list.ExitCode, Is.Zero, list.Stderr);
        Assert.That(list.Stdout, Does.Contain("\"away\" ACTIVE"));
        var down = SieveConnect("--remotesieve", "away", "--localsieve", dir["back.sieve"], "--download");
        Assert.That(down.ExitCode, Is.Zero, down.Stderr);
        Assert.That(File.ReadAllText(dir["back.sieve"]), Is.EqualTo(File.ReadAllText(dir["vacation.sieve"])));
        Assert.That(_authd.Log(), Does.Contain("login: user=<bob@example.org>, method=PLAIN").And.Contain(", TLS"));
        File.WriteAllText(dir["bad.sieve"], "vacation \"x\";\n");
        var bad = SieveConnect("--localsieve", dir["bad.sieve"], "--remotesieve", "bad", "--upload");
        Assert.That(bad.ExitCode, Is.Not.Zero);
        Assert.That(bad.Stdout + bad.Stderr, Does.Contain("line 1: error: vacation needs require"));
        Assert.That(SieveConnect("--deactivate").ExitCode, Is.Zero);
        var gone = SieveConnect("--remotesieve", "away", "--delete");
        Assert.That(gone.ExitCode, Is.Zero, gone.Stdout + gone.Stderr);
        Assert.That(Directory.GetFiles(Path.Combine(Home, "sieve"), "away.sieve"), Is.Empty);
    }
}
