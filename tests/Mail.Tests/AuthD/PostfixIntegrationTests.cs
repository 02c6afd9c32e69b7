using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// A real Postfix, private on loopback, using AuthD for SMTP AUTH (Dovecot's
/// auth protocol) and for its virtual maps (socketmap), driven with swaks.
/// </summary>
[NonParallelizable]
public sealed class PostfixIntegrationTests
{
    private AuthDServer _authd = null!;
    private PostfixServer _postfix = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        File.WriteAllText(_authd.Dir["domains"], "example.org\nexample.net\n");
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await _authd.AddUserAsync("ann@example.org", PasswordScheme.Hash("ann pass", "BLF-CRYPT"));
        File.WriteAllText(_authd.Dir["virtual"], "sales@example.org ann@example.org, bob@example.org\n@example.net ann@example.org\n");
        var map = $"socketmap:unix:{_authd.SocketmapSocket}:";
        _postfix = PostfixServer.Start(new Dictionary<string, string>
        {
            ["smtpd_sasl_auth_enable"] = "yes",
            ["smtpd_sasl_type"] = "dovecot",
            ["smtpd_sasl_path"] = _authd.DovecotAuthSocket,
            ["smtpd_relay_restrictions"] = "permit_sasl_authenticated, reject_unauth_destination",
            ["virtual_mailbox_domains"] = map + "domains",
            ["virtual_mailbox_maps"] = map + "mailboxes",
            ["virtual_alias_maps"] = map + "aliases",
        });
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _postfix?.Dispose();
        if (_authd != null) await _authd.DisposeAsync();
    }

    private RunResult Swaks(params string[] args) =>
        Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_postfix.Port}", "--helo", "client.test", "--timeout", "20", .. args]);

    [TestCase("PLAIN")]
    [TestCase("LOGIN")]
    public void Swaks_authenticates_through_postfix_with_the_right_password(string mech)
    {
        var ok = Swaks("--from", "bob@example.org", "--to", "someone@remote.test", "--auth", mech,
            "--auth-user", "bob@example.org", "--auth-password", "bob pass", "--quit-after", "RCPT");
        Assert.That(ok.Stdout, Does.Contain("235 2.7.0 Authentication successful"), ok.Stdout + ok.Stderr);
        // Authenticated, so relaying to a remote domain is allowed.
        Assert.That(ok.Stdout, Does.Match(@"<-\s+250 2\.1\.5 Ok"));
        Assert.That(ok.ExitCode, Is.EqualTo(0));
    }

    [TestCase("PLAIN")]
    [TestCase("LOGIN")]
    public void Swaks_fails_through_postfix_with_a_wrong_password(string mech)
    {
        var bad = Swaks("--from", "bob@example.org", "--to", "someone@remote.test", "--auth", mech,
            "--auth-user", "bob@example.org", "--auth-password", "not it", "--quit-after", "AUTH");
        Assert.That(bad.Stdout, Does.Contain("535 5.7.8"), bad.Stdout);
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
        Assert.That(_authd.Log(), Does.Contain("service=smtp, rip=127.0.0.1, mech=" + mech + ", user=<bob@example.org>, result=failed"));
    }

    [Test]
    public void Relaying_without_auth_is_refused()
    {
        var r = Swaks("--from", "x@remote.test", "--to", "someone@remote.test", "--quit-after", "RCPT");
        Assert.That(r.Stdout, Does.Contain("554 5.7.1"), r.Stdout);
        Assert.That(r.Stdout, Does.Contain("Relay access denied"));
    }

    [Test]
    public void Postfix_accepts_mail_for_a_user_and_an_alias_and_refuses_an_unknown_one()
    {
        var user = Swaks("--from", "x@remote.test", "--to", "bob@example.org", "--quit-after", "RCPT");
        Assert.That(user.Stdout, Does.Match(@"<-\s+250 2\.1\.5 Ok"), user.Stdout);
        var alias = Swaks("--from", "x@remote.test", "--to", "sales@example.org", "--quit-after", "RCPT");
        Assert.That(alias.Stdout, Does.Match(@"<-\s+250 2\.1\.5 Ok"), alias.Stdout);
        var catchAll = Swaks("--from", "x@remote.test", "--to", "anything@example.net", "--quit-after", "RCPT");
        Assert.That(catchAll.Stdout, Does.Match(@"<-\s+250 2\.1\.5 Ok"), catchAll.Stdout + _authd.Log() + _postfix.Log());
        var detail = Swaks("--from", "x@remote.test", "--to", "bob+lists@example.org", "--quit-after", "RCPT");
        Assert.That(detail.Stdout, Does.Match(@"<-\s+250 2\.1\.5 Ok"), detail.Stdout);
        var unknown = Swaks("--from", "x@remote.test", "--to", "nobody@example.org", "--quit-after", "RCPT");
        Assert.That(unknown.Stdout, Does.Contain("550 5.1.1"), unknown.Stdout);
    }

    [Test]
    public void Whole_message_to_an_alias_is_queued_and_expanded()
    {
        var r = Swaks("--from", "x@remote.test", "--to", "sales@example.org", "--body", "hello");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(r.Stdout, Does.Contain("250 2.0.0 Ok: queued"));
        Assert.That(Wait.UntilAsync(() => _postfix.Log().Contains("to=<ann@example.org>, orig_to=<sales@example.org>")
                                          && _postfix.Log().Contains("to=<bob@example.org>, orig_to=<sales@example.org>"),
            TimeSpan.FromSeconds(30)).Result, Is.True, _postfix.Log());
    }
}
