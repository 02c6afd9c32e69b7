using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Queue;
using Mail.Mta;
using Mail.Shared.Smtp;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Mta;

/// <summary>The MTA with AuthD and our lmtpd, driven by Python's smtplib, swaks and by hand.</summary>
[NonParallelizable]
public sealed partial class MtaTests
{
    private AuthDServer _authd = null!;
    private LmtpServer? _lmtp;
    private WebApplication _mta = null!;
    private int _mx, _submission, _submissions, _lmtpPort;
    private ZoneServer _dns = null!;

    [OneTimeSetUp]
    public void StartDns() => _dns = ZoneServer.Start(("test", ""), ("example.org", ""), ("127.in-addr.arpa", ""));

    [OneTimeTearDown]
    public void StopDns() => _dns.Dispose();

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await _authd.AddUserAsync("ann@example.org", PasswordScheme.Hash("ann pass", "SHA512-CRYPT"));
        File.AppendAllText(_authd.Dir["virtual"], "sales@example.org ann@example.org, bob@example.org\nbob.alias@example.org bob@example.org\n");
        _lmtpPort = Ports.Free();
        _lmtp = await LmtpServer.StartAsync(_authd, port: _lmtpPort);
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "localhost");
        (_mx, _submission, _submissions) = (Ports.Free(), Ports.Free(), Ports.Free());
        File.WriteAllText(_authd.Dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{_mx}
            submission_listen = 127.0.0.1:{_submission}
            submissions_listen = 127.0.0.1:{_submissions}
            tls_cert = {_authd.Dir["cert.pem"]}
            tls_key = {_authd.Dir["key.pem"]}
            mynetworks = 192.0.2.0/24
            # A DNS server with nothing for these names: the MX's checks find no records and only tag.
            dns_servers = {_dns.Address}
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            lmtp_destination = 127.0.0.1:{_lmtpPort}
            defer_transports = smtp
            hostname = mx.test
            pickup_socket = {_authd.Dir["run/pickup"]}
            retry_min = 1s
            retry_max = 2s
            """);
        var config = MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable());
        _mta = MtaHost.Build(config);
        await _mta.StartAsync();
    }

    [TearDown]
    public async Task Stop()
    {
        await _mta.StopAsync();
        await _mta.DisposeAsync();
        if (_lmtp != null) await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    /// <summary>Restarts mtad with <paramref name="extraConfig"/> lines added to its configuration.</summary>
    private async Task RestartMtaAsync(string extraConfig, Action? whileStopped = null)
    {
        await _mta.StopAsync();
        await _mta.DisposeAsync();
        whileStopped?.Invoke();
        File.AppendAllText(_authd.Dir["mtad.conf"], "\n" + extraConfig + "\n");
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    private string[] Inbox(string user)
    {
        var dir = Path.Combine(_authd.Dir["mail"], "example.org", user, "new");
        return System.IO.Directory.Exists(dir) ? System.IO.Directory.GetFiles(dir) : [];
    }

    private RunResult Python(string script)
    {
        var file = _authd.Dir["client-" + Guid.NewGuid().ToString("N") + ".py"];
        File.WriteAllText(file, script);
        return Run.Program(Peers.Require("python3"), [file]);
    }

    /// <summary>Runs smtplib: EHLO and STARTTLS (any certificate) on <paramref name="port"/>, then <paramref name="afterTls"/> with the session as s.</summary>
    private RunResult StartTlsPython(int port, string afterTls) => Python($$"""
        import smtplib, ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = smtplib.SMTP("127.0.0.1", {{port}}, timeout=30)
        s.ehlo("client.test")
        s.starttls(context=ctx)
        {{afterTls}}
        """);

    [Test]
    public async Task Smtplib_sends_through_submission_with_starttls_and_auth_into_the_maildir()
    {
        var r = StartTlsPython(_submission, """
            s.ehlo("client.test")
            s.login("bob@example.org", "bob pass")
            s.sendmail("bob@example.org", ["ann@example.org"], "Subject: via submission\r\n\r\nHello Ann.\r\n")
            s.quit()
            print("sent")
            """);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        var text = File.ReadAllText(Inbox("ann")[0]);
        Assert.That(text, Does.Contain("Subject: via submission").And.Contain("Hello Ann."));
        Assert.That(text, Does.Contain("with ESMTPSA"));
        Assert.That(text, Does.Contain("\nMessage-ID: <").And.Contain("\nDate: "), "submitted mail gets the Message-ID and Date it lacked");
        Assert.That(text, Does.StartWith("Return-Path: <bob@example.org>"));
    }

    [Test]
    public async Task Submissions_speaks_tls_from_the_first_byte()
    {
        var r = Python($$"""
            import smtplib, ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = smtplib.SMTP_SSL("127.0.0.1", {{_submissions}}, context=ctx, timeout=30)
            s.login("bob@example.org", "bob pass")
            s.sendmail("bob.alias@example.org", ["sales@example.org"], "Subject: 465\r\n\r\nto the team\r\n")
            s.quit()
            """);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True,
            "the alias expands to both mailboxes");
    }

    [Test]
    public void Submission_requires_auth_and_a_sender_of_ones_own()
    {
        var noAuth = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_submission}", "--from", "bob@example.org", "--to", "ann@example.org", "--quit-after", "MAIL"]);
        Assert.That(noAuth.Stdout, Does.Contain("530 5.7.0"));
        var spoof = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_submission}", "--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
            "--auth-password", "bob pass", "--from", "ann@example.org", "--to", "ann@example.org", "--quit-after", "MAIL"]);
        Assert.That(spoof.Stdout, Does.Contain("553 5.7.1"), spoof.Stdout);
        var bad = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_submission}", "--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
            "--auth-password", "wrong", "--quit-after", "AUTH"]);
        Assert.That(bad.Stdout, Does.Contain("535 5.7.8"));
    }

    [TestCase("someone@remote.test")]
    [TestCase("user%remote.test@example.org")]
    [TestCase("remote.test!user@example.org")]
    [TestCase("\"user@remote.test\"@example.org")]
    [TestCase("@example.org:user@remote.test")]
    [TestCase("user@remote.test.")]
    [TestCase("user@[192.0.2.1]")]
    [TestCase("USER@REMOTE.TEST")]
    [TestCase("user@remote.test@example.org")]
    [TestCase("user@example.org.remote.test")]
    public async Task Open_relay_battery_is_refused_on_the_mx(string rcpt)
    {
        using var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        await c.Send("EHLO attacker.test\r\n");
        await c.ExpectLast("250 SMTPUTF8");
        await c.Send("MAIL FROM:<x@remote.test>\r\n");
        await c.Expect("250");
        await c.Send($"RCPT TO:<{rcpt}>\r\n");
        var reply = await c.Read();
        Assert.That(reply, Does.Match(@"^5\d\d "), $"{rcpt} -> {reply}");
    }

    [Test]
    public async Task Mx_set_to_encrypt_takes_only_the_pre_tls_commands_until_starttls_then_mail()
    {
        await RestartMtaAsync("smtpd_tls_security_level = encrypt");
        await Transcript.ReplayAsync("smtp/mx-requires-tls.txt", _mx);
        Assert.That(_authd.Log(), Does.Contain("reject: MAIL before STARTTLS from [127.0.0.1]"), "refusals are logged");
        var r = StartTlsPython(_mx, """
            s.sendmail("x@remote.test", ["bob@example.org"], "Subject: over tls\r\n\r\nhi\r\n")
            s.quit()
            """);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.Contain("with ESMTPS"));
    }

    [Test]
    public async Task Postmaster_without_a_domain_is_taken_and_delivered_to_postmaster_address()
    {
        await RestartMtaAsync("postmaster_address = bob.alias@example.org");
        await Transcript.ReplayAsync("smtp/postmaster.txt", _mx, actions: new Dictionary<string, Func<Task>>
        {
            ["delivered-to-bob"] = async () =>
            {
                Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
                Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.Contain("Subject: to the postmaster"));
            },
        });
    }

    [Test]
    public async Task Mx_offers_auth_with_mx_auth_and_a_logged_in_client_relays()
    {
        await RestartMtaAsync("mx_auth = yes");
        await Transcript.ReplayAsync("smtp/mx-auth.txt", _mx);
        Assert.That(_authd.Log(), Does.Match(@"client=.*sasl_method=PLAIN, sasl_username=bob@example\.org"));
    }

    [Test]
    public async Task Mx_accepts_local_mail_refuses_unknown_users_and_relaying()
    {
        await Transcript.ReplayAsync("smtp/mx-accepts-local-mail.txt", _mx, new Dictionary<string, string> { ["CRLF"] = "\r\n" },
            new Dictionary<string, Func<Task>>
            {
                ["delivered-to-bob"] = async () =>
                {
                    Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
                    var delivered = File.ReadAllText(Inbox("bob")[0]);
                    Assert.That(delivered, Does.Contain("Subject: from the world\n\nhi\n"));
                    var id = System.Text.RegularExpressions.Regex.Match(_authd.Log(), @"(\w+): from=<x@remote\.test>").Groups[1].Value;
                    Assert.That(id, Is.Not.Empty, "the queue id is logged");
                    Assert.That(delivered, Does.Contain($"with ESMTP id {id}"), "the Received header names the queue id the 250 gave");
                },
            });
        Assert.That(_authd.Log(), Does.Contain("reject: RCPT from [127.0.0.1]").And.Contain("Relay access denied"), "refusals are logged");
    }

    [Test]
    public async Task Mail_looping_through_too_many_hops_is_refused()
    {
        using var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        await c.Send("EHLO sender.test\r\n");
        await c.ExpectLast("250 SMTPUTF8");
        await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
        await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
        var hops = string.Concat(Enumerable.Range(0, 51).Select(i => $"Received: from hop{i}.test by hop{i + 1}.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"));
        await c.Send(hops + "Subject: loop\r\n\r\nround and round\r\n.\r\n");
        await c.Expect("554 5.4.0");
        await c.Send("NOOP\r\n");
        await c.Expect("250");
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]), Is.Empty);
    }

    // The end-of-data variants published with the SMTP smuggling research: none ends DATA.
    // Those with a bare CR end the session; with only bare LFs (normalized as Postfix 3.9
    // does) the whole text up to the real CRLF.CRLF is one message to its one recipient.
    [TestCase("\n.\n", false)]
    [TestCase("\n.\r\n", false)]
    [TestCase("\r.\n", true)]
    [TestCase("\r.\r\n", true)]
    [TestCase("\r\n.\n", false)]
    [TestCase("\r\n.\r", true)]
    [TestCase("\r\n\r\n.\r", true)]
    public async Task Smuggled_end_of_data_variants_do_not_end_data(string end, bool refused)
    {
        using var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        await c.Send("EHLO sender.test\r\n");
        await c.ExpectLast("250 SMTPUTF8");
        await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
        await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
        await c.Send($"Subject: smuggle\r\n\r\nhi{end}MAIL FROM:<evil@x>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n");
        if (refused)
        {
            await c.Expect("521 5.5.2");
            Assert.That(await c.Read(), Is.Null, "the session ends");
            Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]), Is.Empty, "nothing queued");
        }
        else
        {
            await c.Expect("250 2.0.0 Ok: queued as");
            await c.Send("QUIT\r\n");
            await c.Expect("221");
            Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.Contain("\nMAIL FROM:<evil@x>\nRCPT TO:<ann@example.org>\nDATA\nsmuggled\n"), "the would-be commands are content");
        }
        Assert.That(_authd.Log(), Does.Not.Contain("from=<evil@x>"), "no smuggled transaction");
        Assert.That(Inbox("ann"), Is.Empty);
    }

    [Test]
    public async Task Bare_lf_lines_as_php_mailers_write_them_are_delivered_with_crlf_or_refused_when_so_set()
    {
        const string php = "From: admin@remote.test\nTo: bob@example.org\nSubject: Welcome\nMIME-Version: 1.0\n\nYour mailbox is ready.\n.\nstill the message\r\n.\r\n";
        using (var c = await GreetedAsync())
        {
            await c.Send("MAIL FROM:<admin@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
            await c.Send(php);
            await c.Expect("250 2.0.0 Ok: queued as");
        }
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.Contain("\nSubject: Welcome\nMIME-Version: 1.0\n\nYour mailbox is ready.\n\nstill the message\n"), "the \".\" line after a bare LF is content, unstuffed as any other");
        await RestartMtaAsync("smtpd_forbid_bare_newline = reject");
        using (var c = await GreetedAsync())
        {
            await c.Send("MAIL FROM:<admin@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
            await c.Send(php);
            await c.Expect("521 5.5.2");
        }
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("reject: bare <LF> in DATA from [127.0.0.1]"), TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]), Is.Empty, "nothing left behind");
    }

    [Test]
    public async Task A_recipient_refused_at_delivery_bounces_to_the_sender_and_never_to_the_null_sender()
    {
        await _authd.AddUserAsync("tiny@example.org", "{PLAIN}x", quota: 100);
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "bob@example.org", "--to", "tiny@example.org,ann@example.org",
            "--header", "Subject: too big for tiny", "--body", new string('z', 500)]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the bounce reaches the sender");
        Assert.That(Inbox("ann"), Has.Length.EqualTo(1), "the other recipient got the message");
        var dsn = File.ReadAllText(Inbox("bob")[0]);
        Assert.That(dsn, Does.StartWith("Return-Path: <>"));
        Assert.That(dsn, Does.Contain("multipart/report").And.Contain("report-type=delivery-status"));
        Assert.That(dsn, Does.Contain("Final-Recipient: rfc822; tiny@example.org"));
        Assert.That(dsn, Does.Contain("Action: failed").And.Contain("Status: 5.2.2"));
        Assert.That(dsn, Does.Contain("Subject: too big for tiny"), "the original headers come back");
        Assert.That(dsn, Does.Contain("text/rfc822-headers").And.Not.Contain("zzzzzzzzzz"),
            "a stranger's message (no login, not mynetworks) comes back as headers only: its sender may be forged");
        Assert.That(dsn, Does.Not.Contain("ann@example.org>:"), "only the failed recipient is reported");

        // A message from the null sender that fails makes no bounce.
        var fromNull = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "<>", "--to", "tiny@example.org", "--body", new string('z', 500)]);
        Assert.That(fromNull.ExitCode, Is.EqualTo(0), fromNull.Stdout);
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("no non-delivery notification: the sender is the null sender"), TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(Inbox("bob"), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task Sendmail_hands_local_mail_to_the_queue_as_cron_and_php_call_it()
    {
        var env = new Dictionary<string, string> { ["MAIL_PICKUP_SOCKET"] = _authd.Dir["run/pickup"], ["MAIL_HOSTNAME"] = "host.test" };
        var t = Run.Program(Repo.Program("sendmail"), ["-t", "-i"], "To: ann@example.org\nBcc: bob@example.org\nSubject: from cron\n\n.leading dot\nbody\n", env: env);
        Assert.That(t.ExitCode, Is.EqualTo(0), t.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        var text = File.ReadAllText(Inbox("ann")[0]);
        Assert.That(text, Does.Contain("Subject: from cron").And.Contain("\n.leading dot\n").And.Contain("Message-ID: <").And.Contain("Date:"));
        Assert.That(text, Does.Not.Contain("Bcc:"), "Bcc is removed with -t");
        var f = Run.Program(Repo.Program("sendmail"), ["-f", "bob@example.org", "-F", "Bob Cron", "ann@example.org"], "Subject: second\n\nline\n.\nafter the dot\n", env: env);
        Assert.That(f.ExitCode, Is.EqualTo(0), f.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 2, TimeSpan.FromSeconds(30)), Is.True);
        var second = Inbox("ann").Select(File.ReadAllText).Single(x => x.Contains("Subject: second"));
        Assert.That(second, Does.StartWith("Return-Path: <bob@example.org>"));
        Assert.That(second, Does.Contain("From: Bob Cron <bob@example.org>"));
        Assert.That(second, Does.Not.Contain("after the dot"), "without -i a lone dot ends the message");
    }

    [Test]
    public async Task Local_delivery_can_go_to_dovecots_lmtp()
    {
        System.IO.Directory.CreateDirectory(_authd.Dir["mail"]);
        Run.Program("chown", ["5000:5001", _authd.Dir["mail"]]);
        using var dovecot = DovecotServer.Start(_authd, lmtp: true);
        await _mta.StopAsync();
        File.WriteAllText(_authd.Dir["mtad.conf"], File.ReadAllText(_authd.Dir["mtad.conf"]).Replace($"127.0.0.1:{_lmtpPort}", $"127.0.0.1:{dovecot.LmtpPort}"));
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
        // Over 64 KiB, so that it goes in more than one BDAT chunk; lines with leading dots.
        var body = string.Join("\n", Enumerable.Range(0, 3000).Select(i => (i % 7 == 0 ? "." : "") + $"line {i} " + new string('y', i % 70))) + "\n";
        File.WriteAllText(_authd.Dir["body.txt"], body);
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "sales@example.org",
            "--header", "Subject: for dovecot", "--body", _authd.Dir["body.txt"]]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True,
            File.Exists(_authd.Dir["dovecot.log"]) ? File.ReadAllText(_authd.Dir["dovecot.log"]) : "");
        var fetch = dovecot.Doveadm("fetch", "-u", "ann@example.org", "hdr.subject", "all");
        Assert.That(fetch.Stdout, Does.Contain("for dovecot"));
        foreach (var user in new[] { "ann", "bob" })
            Assert.That(MimeKit.MimeMessage.Load(Inbox(user)[0]).TextBody.Replace("\r\n", "\n").TrimEnd('\n'), Is.EqualTo(body.TrimEnd('\n')), "content whole, leading dots as sent (swaks adds blank lines at the end)");
        Assert.That(_authd.Log(), Does.Contain($"relay=127.0.0.1[127.0.0.1]:{dovecot.LmtpPort}").And.Contain("status=sent"));
    }

    [Test]
    public async Task Mail_waits_in_the_queue_while_lmtp_is_down_and_is_delivered_when_it_is_back()
    {
        await _lmtp!.DisposeAsync();
        _lmtp = null;
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "bob@example.org", "--body", "patience"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]).Length == 1, TimeSpan.FromSeconds(30)), Is.True,
            "deferred while LMTP is down");
        Assert.That(Inbox("bob"), Is.Empty);
        // The queue tools see it, as postqueue -p and postcat -q would.
        var list = Run.Program(Repo.Program("mailctl"), ["queue", "list", "--mta-config", _authd.Dir["mtad.conf"]]);
        Assert.That(list.ExitCode, Is.EqualTo(0), list.Stderr);
        var id = Path.GetFileName(System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]).Single());
        Assert.That(list.Stdout, Does.Contain(id).And.Contain("x@remote.test").And.Contain("bob@example.org").And.Contain("in 1 Request."));
        var show = Run.Program(Repo.Program("mailctl"), ["queue", "show", id, "--mta-config", _authd.Dir["mtad.conf"]]);
        Assert.That(show.Stdout, Does.Contain("sender: x@remote.test").And.Contain("patience"));
        // Hold keeps it back; release and flush send it on.
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "hold", id, "--mta-config", _authd.Dir["mtad.conf"]]).ExitCode, Is.EqualTo(0));
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "list", "--mta-config", _authd.Dir["mtad.conf"]]).Stdout, Does.Contain(id + "!"));
        _lmtp = await LmtpServer.StartAsync(_authd, port: _lmtpPort);
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "release", id, "--mta-config", _authd.Dir["mtad.conf"]]).ExitCode, Is.EqualTo(0));
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "flush", "--mta-config", _authd.Dir["mtad.conf"]]).ExitCode, Is.EqualTo(0));
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True, "delivered after LMTP is back");
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]).Length == 0, TimeSpan.FromSeconds(10)), Is.True);
    }
}
