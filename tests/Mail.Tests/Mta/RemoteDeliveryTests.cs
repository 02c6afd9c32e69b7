using System.Text.RegularExpressions;
using Mail.Queue;
using Mail.Mta;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Shared.Smtp;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Mta;

/// <summary>
/// Mail for other domains leaves by SMTP: to a relay host, or to the MX host a DNS server on
/// loopback names; the other side is a private Postfix that keeps remote.test's mail in a
/// Maildir, offers STARTTLS and refuses one address.
/// </summary>
[NonParallelizable]
public sealed class RemoteDeliveryTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private PostfixServer _remote = null!;
    private TempDir _vmail = null!;
    private WebApplication? _mta;
    private int _mx;

    private string RemoteInbox => Path.Combine(_vmail.Path, "mailbox", "new");

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "mx.remote.test");
        _vmail = new TempDir();
        _remote = PostfixServer.StartMailbox(_vmail, "mx.remote.test", "remote.test", new Dictionary<string, string>
        {
            ["smtpd_tls_security_level"] = "may",
            ["smtpd_tls_cert_file"] = _authd.Dir["cert.pem"],
            ["smtpd_tls_key_file"] = _authd.Dir["key.pem"],
            ["smtpd_tls_received_header"] = "yes",
            ["smtpd_recipient_restrictions"] = "check_recipient_access inline:{reject@remote.test=REJECT}, reject_unauth_destination",
        });
    }

    [TearDown]
    public async Task Stop()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine(_authd.Log() + "\n--- remote Postfix:\n" + _remote.Log());
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        _remote.Dispose();
        _vmail.Dispose();
        await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    private async Task StartMtaAsync(string extra, int mx = 0)
    {
        _mx = mx != 0 ? mx : Ports.Free();
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
            retry_min = 1s
            retry_max = 2s
            {extra}
            """);
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    private void Send(string to, string subject)
    {
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "bob@example.org", "--to", to,
            "--header", "Subject: " + subject, "--body", "hello from example.org\n.leading dot stays\n", "--timeout", "30"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
    }

    private string[] Files(string dir) => Directory.Exists(dir) ? Directory.GetFiles(dir) : [];

    [Test]
    public async Task Mail_for_another_domain_goes_to_the_relay_host_over_STARTTLS()
    {
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_remote.Port}");
        Send("Alice.Smith@Remote.test", "by the relay host");
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the message reached remote.test's mailbox");
        var text = File.ReadAllText(Files(RemoteInbox)[0]);
        Assert.That(text, Does.Contain("Subject: by the relay host").And.Contain("\n.leading dot stays"));
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("to=<Alice.Smith@remote.test>") && _authd.Log().Contains("status=sent"), TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(_remote.Log(), Does.Contain("to=<Alice.Smith@remote.test>"), "the local part kept its case (RFC 5321 2.4)");
        Assert.That(_authd.Log(), Does.Contain($"relay=127.0.0.1[127.0.0.1]:{_remote.Port}").And.Contain(", TLS)"));
        Assert.That(_authd.Log(), Does.Match(@"disconnect from \[127\.0\.0\.1\]:\d+ ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5 "), "the session's commands counted as Postfix counts them");
        Assert.That(text, Does.Match(@"Received: from mx\.example\.org[^\n]*\n(\s[^\n]*\n)*?\s+\(using TLS"), "the remote side's Received header tells of TLS");
        // Postfix offers PIPELINING and CHUNKING: the envelope went in one write and the content by BDAT.
        await _mta!.StopAsync();
        Assert.That(await Wait.UntilAsync(() => Regex.IsMatch(_remote.Log(), @"disconnect from localhost\[127\.0\.0\.1\] ehlo=2 starttls=1 mail=1 rcpt=1 bdat=1 quit=1 commands=7"),
            TimeSpan.FromSeconds(10)), Is.True, "Postfix counted one BDAT and no DATA: " + _remote.Log());
        Assert.That(_remote.Log(), Does.Not.Contain("improper command pipelining"));
    }

    [Test]
    public async Task Messages_in_a_row_to_one_host_share_a_connection()
    {
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_remote.Port}");
        Send("alice@remote.test", "first");
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        Send("carol@remote.test", "second");
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 2, TimeSpan.FromSeconds(30)), Is.True);
        Send("dave@remote.test", "third");
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 3, TimeSpan.FromSeconds(30)), Is.True);
        // (The start-up probe of the test's Postfix connects and leaves at once: not counted.)
        var log = _remote.Log();
        Assert.That(Regex.Matches(log, @"smtpd\[\d+\]: connect from").Count - Regex.Matches(log, "lost connection after CONNECT").Count, Is.EqualTo(1),
            "one connection for three messages");
    }

    [Test]
    public async Task A_next_hop_that_is_ourselves_bounces_instead_of_looping()
    {
        // The relay host is this very mtad (which relays for loopback): without a check the message would go round for ever.
        _mx = Ports.Free();
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_mx}", _mx);
        Send("alice@remote.test", "round and round");
        var bobInbox = Path.Combine(_authd.Dir["mail"], "example.org", "bob", "new");
        Assert.That(await Wait.UntilAsync(() => Files(bobInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True, "a bounce reached the sender");
        Assert.That(File.ReadAllText(Files(bobInbox)[0]), Does.Contain("5.4.6").And.Contain("loops back to myself"));
        Assert.That(Files(RemoteInbox), Is.Empty);
        Assert.That(Regex.Matches(_authd.Log(), "to=<alice@remote.test>").Count, Is.EqualTo(1), "one attempt, one bounce");
    }

    [Test]
    public async Task A_success_report_request_travels_on_to_a_next_hop_that_offers_DSN()
    {
        await StartMtaAsync($"relayhost = [127.0.0.1]:{_remote.Port}");
        var r = Run.Program(Peers.Require("python3"), ["-c", $$"""
            import smtplib
            s = smtplib.SMTP("127.0.0.1", {{_mx}}, timeout=30)
            s.ehlo("client.example.org")
            s.sendmail("bob@example.org", ["alice@remote.test"], "Subject: report wanted\r\n\r\nhello\r\n",
                       mail_options=["RET=HDRS", "ENVID=job+2D7"], rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@remote.test"])
            s.quit()
            """]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        // The next hop took NOTIFY=SUCCESS and reports the delivery itself; we send no "relayed" report of our own.
        Assert.That(await Wait.UntilAsync(() => _remote.Log().Contains("sender delivery status notification"), TimeSpan.FromSeconds(30)), Is.True,
            "Postfix sent the success report that was asked of it");
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains(": removed"), TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(_authd.Log(), Does.Not.Contain("delivery status notification"));
    }

    [Test]
    public async Task Mail_goes_to_the_MX_host_that_DNS_names_and_failures_come_back_as_bounces()
    {
        using var dns = DnsServer.Start("--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.1",
            "--local=/remote.test/", "--local=/nowhere.test/");
        await StartMtaAsync($"""
            smtp_port = {_remote.Port}
            dns_servers = 127.0.0.1:{dns.Port}
            """);
        Send("alice@remote.test", "by MX");
        Assert.That(await Wait.UntilAsync(() => Files(RemoteInbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the message reached the MX host");
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains($"relay=mx.remote.test[127.0.0.1]:{_remote.Port}"), TimeSpan.FromSeconds(10)), Is.True);

        // A domain that does not exist, and an address the MX host refuses: both bounce to the sender.
        Send("nobody@nowhere.test", "no such domain");
        Send("reject@remote.test", "refused by the MX");
        var bobInbox = Path.Combine(_authd.Dir["mail"], "example.org", "bob", "new");
        Assert.That(await Wait.UntilAsync(() => Files(bobInbox).Length == 2, TimeSpan.FromSeconds(30)), Is.True, "two bounces reached the sender");
        var bounces = string.Join("\n----\n", Files(bobInbox).Select(File.ReadAllText));
        Assert.That(bounces, Does.Contain("nobody@nowhere.test").And.Contain("Host or domain name not found"));
        Assert.That(bounces, Does.Contain("reject@remote.test").And.Contain("Recipient address rejected"));
        Assert.That(Files(RemoteInbox), Has.Length.EqualTo(1), "nothing else arrived at the MX host");
    }
}
