using System.Text.RegularExpressions;
using Mail.Mta;
using Mail.Queue;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Mta;

/// <summary>
/// Logging in to a relay host from Postfix's password table: the relay host is a private Postfix
/// that takes mail only from logged-in clients, after STARTTLS, checking passwords through our
/// AuthD's Dovecot auth socket; mail comes in by swaks.
/// </summary>
[NonParallelizable]
public sealed class RelayLoginTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private PostfixServer? _relay;
    private TempDir _vmail = null!;
    private WebApplication? _mta;
    private int _mx;

    private string RelayInbox => Path.Combine(_vmail.Path, "mailbox", "new");

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await _authd.AddUserAsync("relay@example.org", PasswordScheme.Hash("relay pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "smtp.relay.test");
        _vmail = new TempDir();
    }

    /// <summary>The relay host: takes mail for remote.test from logged-in clients only, AUTH only after STARTTLS (or no TLS at all).</summary>
    private void StartRelay(bool tls = true) => _relay = PostfixServer.StartMailbox(_vmail, "smtp.relay.test", "remote.test", new Dictionary<string, string>
    {
        ["smtpd_tls_security_level"] = tls ? "may" : "none",
        ["smtpd_tls_cert_file"] = _authd.Dir["cert.pem"],
        ["smtpd_tls_key_file"] = _authd.Dir["key.pem"],
        ["smtpd_tls_auth_only"] = "yes",
        ["smtpd_sasl_auth_enable"] = "yes",
        ["smtpd_sasl_type"] = "dovecot",
        ["smtpd_sasl_path"] = _authd.DovecotAuthSocket,
        ["smtpd_recipient_restrictions"] = "permit_sasl_authenticated, reject",
    });

    [TearDown]
    public async Task Stop()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine(_authd.Log() + "\n--- relay Postfix:\n" + _relay?.Log());
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        _relay?.Dispose();
        _vmail.Dispose();
        await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    private async Task StartMtaAsync(string extra)
    {
        _mx = Ports.Free();
        File.WriteAllText(_authd.Dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{_mx}
            submission_listen =
            submissions_listen =
            mynetworks = 127.0.0.0/8
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            lmtp_destination = 127.0.0.1:{_lmtp.Port}
            hostname = mx.example.org
            retry_min = 1h
            smtp_sasl_auth_enable = yes
            smtp_sasl_password_maps = {_authd.Dir["sasl_passwd"]}
            {extra}
            """);
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    private void Send(string from, string to, string subject)
    {
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", from, "--to", to,
            "--header", "Subject: " + subject, "--body", "by the relay host\n", "--timeout", "30"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
    }

    private string[] Files(string dir) => Directory.Exists(dir) ? Directory.GetFiles(dir) : [];

    [Test]
    public async Task Mail_goes_through_a_relay_host_that_wants_a_login_over_TLS()
    {
        StartRelay();
        File.WriteAllText(_authd.Dir["sasl_passwd"], $"# relay host logins\n[127.0.0.1]:{_relay!.Port}    relay@example.org:relay pass\n");
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_relay.Port}");
        Send("bob@example.org", "alice@remote.test", "logged in");
        Assert.That(await Wait.UntilAsync(() => Files(RelayInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the relay host took the message");
        Assert.That(await Wait.UntilAsync(() => _relay.Log().Contains("sasl_method=PLAIN, sasl_username=relay@example.org"), TimeSpan.FromSeconds(10)), Is.True, _relay.Log());
        Assert.That(_authd.Log(), Does.Not.Contain("relay pass"), "the password is never logged");
    }

    [Test]
    public async Task A_refused_login_defers_with_the_servers_reply_in_the_log_and_the_queue()
    {
        StartRelay();
        File.WriteAllText(_authd.Dir["sasl_passwd"], $"[127.0.0.1]:{_relay!.Port} relay@example.org:wrong\n");
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_relay.Port}");
        Send("bob@example.org", "alice@remote.test", "wrong password");
        var said = new Regex(@"SASL login to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ as relay@example\.org failed: 535 5\.7\.8 Error: authentication failed");
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("status=deferred") && said.IsMatch(_authd.Log()), TimeSpan.FromSeconds(30)), Is.True, _authd.Log());
        var mailq = Run.Program(Repo.Program("mailctl"), ["queue", "list", "--mta-config", _authd.Dir["mtad.conf"]]);
        Assert.That(mailq.Stdout, Does.Match(@"\n\(SASL login to [^\n]*failed: 535 5\.7\.8 [^\n]*\)\n\s+alice@remote\.test\n"), mailq.Stdout + mailq.Stderr);
        Assert.That(Files(RelayInbox), Is.Empty);
        Assert.That(Files(Path.Combine(_authd.Dir["mail"], "example.org", "bob", "new")), Is.Empty, "no bounce: the message waits");
    }

    [Test]
    public async Task No_password_is_sent_to_a_relay_host_without_TLS()
    {
        StartRelay(tls: false);
        File.WriteAllText(_authd.Dir["sasl_passwd"], $"[127.0.0.1]:{_relay!.Port} relay@example.org:relay pass\n");
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_relay.Port}");
        Send("bob@example.org", "alice@remote.test", "no tls");
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("offers no STARTTLS, and the password is not sent in clear") && _authd.Log().Contains("status=deferred"),
            TimeSpan.FromSeconds(30)), Is.True, _authd.Log());
        Assert.That(_relay.Log(), Does.Not.Contain("sasl_method"));
        Assert.That(Files(RelayInbox), Is.Empty);
    }

    [Test]
    public async Task The_relay_host_and_its_login_can_depend_on_the_sender()
    {
        StartRelay();
        File.WriteAllText(_authd.Dir["sasl_passwd"], "bob@example.org relay@example.org:relay pass\n");
        File.WriteAllText(_authd.Dir["relay_by_sender"], $"@example.org [127.0.0.1]:{_relay!.Port}\n");
        await StartMtaAsync($"""
            smtp_sender_dependent_authentication = yes
            sender_dependent_relayhost_maps = {_authd.Dir["relay_by_sender"]}
            """);
        Send("bob@example.org", "alice@remote.test", "by sender");
        Assert.That(await Wait.UntilAsync(() => Files(RelayInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the sender's relay host took the message");
        Assert.That(await Wait.UntilAsync(() => _relay.Log().Contains("sasl_username=relay@example.org"), TimeSpan.FromSeconds(10)), Is.True, _relay.Log());
    }
}
