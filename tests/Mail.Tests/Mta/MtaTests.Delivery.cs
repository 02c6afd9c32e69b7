using System.Text;
using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Mail.Queue;
using Mail.Mta;
using Mail.Tests.Support;

namespace Mail.Tests.Mta;

/// <summary>CHUNKING, DSN, delay warnings, forwarding loops and delivery concurrency.</summary>
public sealed partial class MtaTests
{
    /// <summary>MailKit's client with BDAT preferred and DSN requests of the test's choosing.</summary>
    private sealed class DsnClient(MailKit.IProtocolLogger? logger = null) : SmtpClient(logger ?? new MailKit.NullProtocolLogger())
    {
        public DeliveryStatusNotification? Notify { get; init; }
        public string? EnvelopeId { get; init; }
        protected override bool PreferSendAsBinaryData => true;
        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox) => Notify;
        protected override string? GetEnvelopeId(MimeMessage message) => EnvelopeId;
    }

    private static MimeMessage Message(string from, string to, string subject, string body) => new()
    {
        From = { MailboxAddress.Parse(from) }, To = { MailboxAddress.Parse(to) }, Subject = subject, Body = new TextPart("plain") { Text = body },
    };

    private async Task SendAsync(DsnClient client, MimeMessage message, bool submission = true)
    {
        using var log = new MemoryStream();
        client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        if (submission)
        {
            await client.ConnectAsync("127.0.0.1", _submission, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync("bob@example.org", "bob pass");
        }
        else await client.ConnectAsync("127.0.0.1", _mx, SecureSocketOptions.None);
        Assert.That(client.Capabilities.HasFlag(SmtpCapabilities.Chunking) && client.Capabilities.HasFlag(SmtpCapabilities.Dsn), Is.True);
        await client.SendAsync(message);
        await client.DisconnectAsync(true);
    }

    [Test]
    public async Task Mailkit_sends_with_bdat_and_the_message_arrives_whole()
    {
        var body = string.Join("\n", Enumerable.Range(0, 2000).Select(i => $"line {i} " + new string('x', i % 90))) + "\n.\n..dots stay\n";
        var protocol = new MemoryStream();
        using (var client = new DsnClient(new MailKit.ProtocolLogger(protocol, leaveOpen: true)))
            await SendAsync(client, Message("bob@example.org", "ann@example.org", "by chunks", body), submission: false);
        Assert.That(System.Text.Encoding.UTF8.GetString(protocol.ToArray()), Does.Contain("BDAT ").And.Not.Contain("C: DATA"), "the message went by BDAT");
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        var stored = MimeMessage.Load(Inbox("ann")[0]);
        Assert.That(stored.Subject, Is.EqualTo("by chunks"));
        Assert.That(stored.TextBody.Replace("\r\n", "\n"), Is.EqualTo(body));
        Assert.That(_authd.Log(), Does.Contain("nrcpt=1"));
    }

    [Test]
    public async Task Bdat_by_hand_keeps_crlf_split_across_chunks_refuses_bare_cr_and_stays_in_step()
    {
        using var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        await c.Send("EHLO sender.test\r\n");
        await c.ExpectLast("250 SMTPUTF8");
        // BDAT before MAIL: refused, and its bytes are read so the session stays in step.
        await c.Send("BDAT 5\r\nRCPT NOOP\r\n");
        await c.Expect("503 5.5.1");
        await c.Expect("250 2.0.0"); // the NOOP after the 5 bytes
        await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\n");
        await c.Expect("250"); await c.Expect("250");
        var first = "Subject: chunked\r\n\r\nfirst line\r";
        var second = "\nsecond line\r\n";
        await c.Send($"BDAT {first.Length}\r\n{first}");
        await c.Expect($"250 2.0.0 {first.Length} octets received");
        await c.Send($"BDAT {second.Length} LAST\r\n{second}");
        var queued = await c.Expect("250 2.0.0 Ok: queued as ");
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.EndWith("\n\nfirst line\nsecond line\n").And.Contain(queued[^12..]));

        // A bare CR cannot be stored or passed on safely: refused, the session goes on.
        await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\n");
        await c.Expect("250"); await c.Expect("250");
        var bad = "Subject: cr\r\n\r\nbare\rcr\r\n";
        await c.Send($"BDAT {bad.Length} LAST\r\n{bad}");
        await c.Expect("554 5.6.0");
        await c.Send("RSET\r\nQUIT\r\n");
        await c.Expect("250"); await c.Expect("221");
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]), Is.Empty, "nothing left of the refused message");
    }

    [Test]
    public async Task Notify_success_brings_a_delivery_report_with_envid_and_orcpt()
    {
        using (var client = new DsnClient { Notify = DeliveryStatusNotification.Success | DeliveryStatusNotification.Failure, EnvelopeId = "ENV+42" })
            await SendAsync(client, Message("bob@example.org", "ann@example.org", "please confirm", "hello"));
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        var report = File.ReadAllText(Inbox("bob")[0]);
        Assert.That(report, Does.StartWith("Return-Path: <>"));
        Assert.That(report, Does.Contain("Subject: Successful Mail Delivery Report"));
        Assert.That(report, Does.Contain("Original-Envelope-Id: ENV+2B42"), "ENVID as it came, in xtext");
        Assert.That(report, Does.Contain("Final-Recipient: rfc822; ann@example.org").And.Contain("Action: delivered").And.Contain("Status: 2.0.0"));
        Assert.That(report, Does.Contain("Original-Recipient: rfc822;ann@example.org"), "MailKit sends ORCPT with NOTIFY");
        Assert.That(report, Does.Contain("Subject: please confirm"), "the original headers come back");
    }

    [Test]
    public async Task Notify_never_sends_no_bounce_and_ret_hdrs_returns_only_the_headers()
    {
        await _authd.AddUserAsync("tiny@example.org", "{PLAIN}x", quota: 100);
        using (var client = new DsnClient { Notify = DeliveryStatusNotification.Never })
            await SendAsync(client, Message("bob@example.org", "tiny@example.org", "never tell", new string('z', 500)));
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("to=<tiny@example.org>") && _authd.Log().Contains("status=bounced"), TimeSpan.FromSeconds(30)), Is.True);

        // RET=HDRS: the failure notice carries the headers, not the body.
        using (var client = new DsnClient())
        {
            client.DeliveryStatusNotificationType = DeliveryStatusNotificationType.HeadersOnly;
            await SendAsync(client, Message("bob@example.org", "tiny@example.org", "headers only", "SECRET-BODY " + new string('z', 500)));
        }
        // Default RET: the whole message comes back.
        using (var client = new DsnClient())
            await SendAsync(client, Message("bob@example.org", "tiny@example.org", "whole message", "FULL-BODY " + new string('z', 500)));
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 2, TimeSpan.FromSeconds(30)), Is.True);
        var notices = Inbox("bob").Select(File.ReadAllText).ToList();
        Assert.That(notices, Has.None.Contains("never tell"), "NOTIFY=NEVER: no notice");
        var hdrs = notices.Single(n => n.Contains("Subject: headers only"));
        Assert.That(hdrs, Does.Contain("text/rfc822-headers").And.Not.Contain("SECRET-BODY"));
        var full = notices.Single(n => n.Contains("Subject: whole message"));
        Assert.That(full, Does.Contain("message/rfc822").And.Contain("FULL-BODY"));
    }

    [Test]
    public async Task A_message_stuck_in_the_queue_brings_one_delay_warning()
    {
        await RestartMtaAsync("delay_warning_time = 1s");
        await _lmtp!.DisposeAsync();
        _lmtp = null;
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "bob@example.org", "--to", "ann@example.org",
            "--header", "Subject: slow one", "--body", "waiting"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("sender delay notification: "), TimeSpan.FromSeconds(30)), Is.True);
        _lmtp = await LmtpServer.StartAsync(_authd, port: _lmtpPort);
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "flush", "--mta-config", _authd.Dir["mtad.conf"]]).ExitCode, Is.EqualTo(0));
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        var warning = File.ReadAllText(Inbox("bob")[0]);
        Assert.That(warning, Does.Contain("Subject: Delayed Mail (still being retried)"));
        Assert.That(warning, Does.Contain("Action: delayed").And.Contain("Will-Retry-Until: ").And.Contain("THIS IS A WARNING ONLY"));
        Assert.That(warning, Does.Contain("Subject: slow one"));
        Assert.That(System.Text.RegularExpressions.Regex.Matches(_authd.Log(), "sender delay notification").Count, Is.EqualTo(1), "warned once");
    }

    [Test]
    public async Task Mail_that_was_already_delivered_to_a_mailbox_bounces_as_a_forwarding_loop()
    {
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "bob@example.org", "--to", "sales@example.org",
            "--header", "Delivered-To: ann@example.org", "--header", "Subject: came back", "--body", "round trip"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        // Bob gets it (once through the alias) and the bounce for Ann's copy.
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 2, TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(Inbox("ann"), Is.Empty);
        var bounce = Inbox("bob").Select(File.ReadAllText).Single(t => t.Contains("Undelivered Mail"));
        Assert.That(bounce, Does.Contain("Status: 5.4.6").And.Contain("mail forwarding loop for ann@example.org"));
    }

    [Test]
    public async Task Deliveries_run_in_parallel_up_to_the_destination_limit()
    {
        // An LMTP server that accepts connections and never answers: every delivery hangs in it.
        using var stalled = new TcpListener(IPAddress.Loopback, 0);
        stalled.Start();
        var port = ((IPEndPoint)stalled.LocalEndpoint).Port;
        await _mta.StopAsync();
        await _mta.DisposeAsync();
        File.WriteAllText(_authd.Dir["mtad.conf"], File.ReadAllText(_authd.Dir["mtad.conf"]).Replace($"127.0.0.1:{_lmtpPort}", $"127.0.0.1:{port}") +
                                                   "\ndestination_concurrency = 3\nmax_deliveries = 10\n");
        _mta = MtaHost.Build(Mail.Shared.Config.MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
        using var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        await c.Send("EHLO sender.test\r\n");
        await c.ExpectLast("250 SMTPUTF8");
        for (int i = 0; i < 8; i++)
        {
            await c.Send($"MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: {i}\r\n\r\nbody\r\n.\r\n");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354"); await c.Expect("250 2.0.0 Ok: queued");
        }
        var held = new List<TcpClient>();
        using var window = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (held.Count < 3) held.Add(await stalled.AcceptTcpClientAsync(window.Token));
            // Five messages wait their turn: no fourth connection while three hang.
            Assert.That(await Wait.UntilAsync(() => stalled.Pending(), TimeSpan.FromSeconds(3)), Is.False, "at most 3 connections to one destination");
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/active"]).Length == 8, TimeSpan.FromSeconds(10)), Is.True,
                "all eight taken into delivery, five of them waiting for the destination");
        }
        finally
        {
            foreach (var h in held) h.Dispose();
        }
    }

    [Test]
    public async Task Lmtp_destination_may_name_a_host_and_a_bad_one_stops_mtad_at_start()
    {
        // "localhost:PORT" once threw inside the delivery and left every local message in active/.
        await RestartMtaAsync($"lmtp_destination = localhost:{_lmtpPort}");
        await SendAsync(new DsnClient(), Message("bob@example.org", "ann@example.org", "to localhost", "by name\n"), submission: false);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1, TimeSpan.FromSeconds(30)), Is.True, "delivered to the LMTP server named localhost");
        Assert.That(_authd.Log(), Does.Contain($"relay=localhost[127.0.0.1]:{_lmtpPort}"));

        foreach (var bad in new[] { "localhost", "unix:", "inet:127.0.0.1:0", "host name:24", "[::1:24" })
        {
            File.AppendAllText(_authd.Dir["mtad.conf"], $"\nlmtp_destination = {bad}\n");
            var config = Mail.Shared.Config.MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable());
            var e = Assert.Throws<Mail.Shared.Config.ConfigException>(() => MtaHost.Build(config), bad);
            Assert.That(e!.Message, Does.Contain("lmtp_destination").And.Contain(bad));
        }
    }

    [Test]
    public async Task Eight_bit_bytes_that_are_not_utf8_pass_sendmail_and_return_unchanged_in_a_bounce()
    {
        // Latin-1 text: "naïve été" as single bytes, which no UTF-8 decoder keeps.
        var r = Python($$"""
            import smtplib, subprocess, os
            env = dict(os.environ, MAIL_PICKUP_SOCKET="{{_authd.Dir["run/pickup"]}}", MAIL_HOSTNAME="host.test")
            p = subprocess.run(["{{Repo.Program("sendmail")}}", "-i", "ann@example.org"], input=b"Subject: latin-1\n\nna\xefve \xe9t\xe9\n", env=env)
            assert p.returncode == 0, p.returncode
            s = smtplib.SMTP("127.0.0.1", {{_mx}}, timeout=30)
            s.sendmail("bob@example.org", ["ann@example.org"], b"Delivered-To: ann@example.org\r\nSubject: caf\xe9\r\n\r\nna\xefve \xe9t\xe9\r\n")
            s.quit()
            """);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(await Wait.UntilAsync(() => Inbox("ann").Length == 1 && Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True, "delivered by sendmail; bounced as a loop");
        var latin1 = new byte[] { (byte)'n', (byte)'a', 0xEF, (byte)'v', (byte)'e', (byte)' ', 0xE9, (byte)'t', 0xE9 };
        var replacement = new byte[] { 0xEF, 0xBF, 0xBD };
        var delivered = File.ReadAllBytes(Inbox("ann")[0]);
        Assert.That(delivered.AsSpan().IndexOf(latin1), Is.GreaterThan(0), "sendmail copied the bytes");
        Assert.That(delivered.AsSpan().IndexOf(replacement), Is.EqualTo(-1));
        var bounce = File.ReadAllBytes(Inbox("bob")[0]);
        Assert.That(System.Text.Encoding.Latin1.GetString(bounce), Does.Contain("Undelivered Mail").And.Contain("Subject: caf\u00e9"));
        // From the MX without a login: the bounce returns the headers only, their 8-bit bytes as they came.
        Assert.That(bounce.AsSpan().IndexOf("Subject: caf\u00e9"u8), Is.EqualTo(-1), "not re-encoded as UTF-8");
        Assert.That(bounce.AsSpan().IndexOf(new byte[] { (byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n' }), Is.GreaterThan(0), "the bounce returns the original's bytes");
        Assert.That(bounce.AsSpan().IndexOf(replacement), Is.EqualTo(-1));
    }

    private RunResult Queue(params string[] args) => Run.Program(Repo.Program("mailctl"), ["queue", .. args, "--mta-config", _authd.Dir["mtad.conf"]]);

    [Test]
    public async Task Queue_commands_go_through_mtad_and_never_touch_a_message_in_delivery()
    {
        // An LMTP server that accepts and never answers: the message stays in delivery.
        using var stalled = new TcpListener(IPAddress.Loopback, 0);
        stalled.Start();
        await RestartMtaAsync($"lmtp_destination = 127.0.0.1:{((IPEndPoint)stalled.LocalEndpoint).Port}");
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "bob@example.org", "--body", "in delivery"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        using var window = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        TcpClient held;
        try { held = await stalled.AcceptTcpClientAsync(window.Token); }
        catch (OperationCanceledException) { Assert.Fail("mtad never tried the LMTP server: " + _authd.Log()); throw; }
        using var _ = held;
        var id = Path.GetFileName(System.IO.Directory.GetFiles(_authd.Dir["spool/active"]).Single());
        // The queue keeps the lines as the client sent them (CRLF): the one line-end conversion
        // between SMTP and the Maildir is lmtpd's.
        var queued = Path.Combine(_authd.Dir["spool/active"], id);
        Assert.That(QueueFileReader.Read(queued, out QueueEnvelope? _unused, out var chunks), Is.EqualTo(QueueFileStatus.Ok));
        var content = Encoding.UTF8.GetString(QueueFileReader.ReadContentPrefix(queued, chunks, 1 << 20));
        Assert.That(content, Does.Contain("\r\nReceived: from ").And.Contain("\r\n\r\nin delivery\r\n"));
        Assert.That(content.Replace("\r\n", ""), Does.Not.Contain("\n"), "no bare LF");

        var list = Queue("list");
        Assert.That(list.Stdout, Does.Contain(id + "*").And.Contain("in 1 Request."), "postqueue's mark for a message in delivery");
        Assert.That(list.Stderr, Is.Empty, "answered by mtad");
        foreach (var verb in new[] { "delete", "hold" })
        {
            var refused = Queue(verb, id);
            Assert.That(refused.ExitCode, Is.EqualTo(75), refused.Stdout + refused.Stderr);
            Assert.That(refused.Stderr, Does.Contain("in delivery now").And.Contain(id));
        }
        Assert.That(File.Exists(Path.Combine(_authd.Dir["spool/active"], id)), Is.True, "still there, still in delivery");

        // Once it is deferred (the LMTP server hangs up and is gone), a delete takes effect at once.
        held.Dispose();
        stalled.Stop();
        Assert.That(await Wait.UntilAsync(() => File.Exists(Path.Combine(_authd.Dir["spool/deferred"], id)), TimeSpan.FromSeconds(30)), Is.True);
        var deleted = Queue("delete", id);
        Assert.That(deleted.ExitCode, Is.EqualTo(0), deleted.Stderr);
        Assert.That(deleted.Stdout, Does.Contain("1 message(s) deleted"));
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]), Is.Empty, "gone when the command returns");
        Assert.That(_authd.Log(), Does.Contain($"{id}: removed by the administrator"));
        Assert.That(Queue("list").Stdout, Does.Contain("Mail queue is empty"));

        // With mtad down, list still reads the spool; a change is refused.
        var r2 = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "bob@example.org", "--body", "second"]);
        Assert.That(r2.ExitCode, Is.EqualTo(0), r2.Stdout);
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]).Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        await _mta.StopAsync();
        var offline = Queue("list");
        Assert.That(offline.ExitCode, Is.EqualTo(0));
        Assert.That(offline.Stdout, Does.Contain("in 1 Request."));
        Assert.That(offline.Stderr, Does.Contain("mtad is not running"));
        var refusedOffline = Queue("delete", "ALL");
        Assert.That(refusedOffline.ExitCode, Is.EqualTo(75));
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]), Has.Length.EqualTo(1), "nothing changed behind mtad's back");
        await RestartMtaAsync(""); // for the tear-down
    }
}
