using Mail.Mta;
using Mail.Queue;
using Mail.Shared.Config;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.MailAuth;

/// <summary>
/// Mail from strangers on the MX, checked as an administrator would check it: messages signed by
/// python3-dkim's dkimsign and arcsign, zones served by NSD, sent by Python's smtplib from
/// 127.0.0.1 (the sending domain's server), 127.0.0.2 (a stranger) and 127.0.0.3 (a forwarder).
/// </summary>
[NonParallelizable]
public sealed class InboundTests
{
    private TempDir _keys = null!;
    private ZoneServer _dns = null!;
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private WebApplication _mta = null!;
    private int _mx;

    private static string Txt(string text) =>
        string.Join(' ', text.Chunk(200).Select(c => "\"" + new string(c) + "\""));

    [OneTimeSetUp]
    public async Task Start()
    {
        _keys = new TempDir();
        foreach (var (name, type) in new[] { ("s1", "rsa"), ("e1", "ed25519"), ("fwd", "rsa"), ("other", "rsa") })
        {
            var made = Run.Program(Peers.Require("dknewkey"), ["--ktype", type, _keys[name]]);
            Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        }
        string Key(string name) => Txt(File.ReadAllText(_keys[name + ".dns"]).Trim());
        _dns = ZoneServer.Start(
            ("sender.test", $"""
                @ TXT "v=spf1 ip4:127.0.0.1 -all"
                _dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test"
                s1._domainkey TXT {Key("s1")}
                e1._domainkey TXT {Key("e1")}
                mail A 127.0.0.1
                """),
            ("example.org", """
                @ TXT "v=spf1 ip4:127.0.0.1 -all"
                _dmarc TXT "v=DMARC1; p=reject"
                """),
            ("quarantine.test", """
                _dmarc TXT "v=DMARC1; p=quarantine"
                """),
            ("forwarder.test", $"""
                @ TXT "v=spf1 ip4:127.0.0.3 -all"
                fwd._domainkey TXT {Key("fwd")}
                """),
            ("other.test", $"""
                @ TXT "v=spf1 ip4:127.0.0.3 -all"
                other._domainkey TXT {Key("other")}
                """),
            ("stranger.test", ""),
            ("bl.test", "5.0.0.127 A 127.0.0.2\n6.0.0.127 A 127.0.0.4"),
            ("wl.test", "3.0.0.127 A 127.0.0.2\n6.0.0.127 A 127.0.0.3"),
            ("0.0.127.in-addr.arpa", "1 PTR mail.sender.test."));
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        _mx = Ports.Free();
        File.WriteAllText(_authd.Dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{_mx}
            submission_listen =
            submissions_listen =
            mynetworks = 192.0.2.0/24
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            pickup_socket =
            lmtp_destination = 127.0.0.1:{_lmtp.Port}
            defer_transports = smtp
            hostname = mx.test
            dns_servers = {_dns.Address}
            spf_action = reject
            dnsbl_sites = bl.test=127.0.0.[2..11]*3, wl.test=127.0.[0..255].[1..3]*-2
            dnsbl_threshold = 3
            arc_trusted_sealers = forwarder.test
            """);
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        // Whatever the set-up got to: a failed start must not leave a DNS server running.
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        if (_lmtp != null) await _lmtp.DisposeAsync();
        if (_authd != null) await _authd.DisposeAsync();
        _dns?.Dispose();
        _keys?.Dispose();
    }

    private static string Message(string from, string subject, string body = "Hello.\r\n", string extraHeaders = "") =>
        $"{extraHeaders}From: {from}\r\nTo: bob@example.org\r\nSubject: {subject}\r\nDate: Mon, 07 Dec 2026 03:00:00 +0000\r\n" +
        $"Message-ID: <{Guid.NewGuid():N}@test>\r\n\r\n{body}";

    /// <summary>Signs with python3-dkim's dkimsign.</summary>
    private string Sign(string message, string selector, string domain, string algorithm = "rsa-sha256")
    {
        var run = Run.Program(Peers.Require("dkimsign"), ["--signalg", algorithm, "--bcanon", "relaxed", selector, domain, _keys[selector + ".key"]], message);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout;
    }

    /// <summary>Seals with python3-dkim's arcsign, as a forwarder whose own checks are in Authentication-Results.</summary>
    private string Seal(string message, string selector, string domain)
    {
        var run = Run.Program(Peers.Require("arcsign"), [selector, domain, _keys[selector + ".key"], "in." + domain], message);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout;
    }

    /// <summary>Python's smtplib from <paramref name="source"/>: "250 accepted" or the refusal's code and text.</summary>
    private string Send(string source, string helo, string sender, string message)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["m.eml"], message);
        var script = """
            import smtplib, sys
            port, src, helo, sender, path = sys.argv[1:6]
            s = smtplib.SMTP('127.0.0.1', int(port), local_hostname=helo, source_address=(src, 0), timeout=60)
            try:
                s.sendmail(sender, ['bob@example.org'], open(path, 'rb').read())
                print('250 accepted')
            except smtplib.SMTPRecipientsRefused as e:
                code, msg = list(e.recipients.values())[0]; print(code, msg.decode())
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
                print(e.smtp_code, e.smtp_error.decode())
            s.quit()
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, _mx.ToString(), source, helo, sender, dir["m.eml"]]);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout.Trim();
    }

    private string[] Delivered(string folder = "") =>
        System.IO.Directory.Exists(Path.Combine(_authd.Dir["mail"], "example.org", "bob", folder, "new"))
            ? System.IO.Directory.GetFiles(Path.Combine(_authd.Dir["mail"], "example.org", "bob", folder, "new")).Select(f => File.ReadAllText(f).Replace("\n", "\r\n")).ToArray() // Maildir files end lines in LF
            : [];

    private async Task<string> DeliveredWith(string subject, string folder = "")
    {
        string? found = null;
        Assert.That(await Wait.UntilAsync(() => (found = Delivered(folder).FirstOrDefault(m => m.Contains("Subject: " + subject + "\r\n"))) != null,
            TimeSpan.FromSeconds(30)), Is.True, $"'{subject}' was not delivered to {(folder == "" ? "INBOX" : folder)}: {File.ReadAllText(_authd.LogFile)}");
        return found!;
    }

    private static string AuthenticationResults(string message)
    {
        var header = message[..message.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        var start = header.IndexOf("Authentication-Results: mx.test;", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), message);
        var end = start + 1;
        while ((end = header.IndexOf("\r\n", end, StringComparison.Ordinal)) >= 0 && end + 2 < header.Length && header[end + 2] is ' ' or '\t') end += 2;
        return header[start..(end < 0 ? header.Length : end)];
    }

    [Test]
    public void A_forged_from_of_our_domain_from_a_foreign_address_is_refused_by_its_dmarc_policy()
    {
        var reply = Send("127.0.0.2", "stranger.test", "x@stranger.test", Message("CEO <ceo@example.org>", "forged ceo"));
        Assert.That(reply, Is.EqualTo("550 5.7.1 Rejected by DMARC policy for example.org"));
        Assert.That(Delivered().Any(m => m.Contains("forged ceo")), Is.False);
        // One line with every result, as OpenDKIM and OpenDMARC log.
        var logged = new System.Text.RegularExpressions.Regex(@"auth: client=\S*\[127\.0\.0\.2\].*spf=none .*dmarc=fail \(from=example\.org p=reject dis=reject\).*action=reject");
        Assert.That(Wait.UntilAsync(() => logged.IsMatch(File.ReadAllText(_authd.LogFile)), TimeSpan.FromSeconds(10)).Result, Is.True, File.ReadAllText(_authd.LogFile));
        // Kept for the aggregate report to example.org's owner.
        var records = System.IO.Directory.GetFiles(Path.Combine(_authd.Dir["spool"], "dmarc"), "*.tsv").SelectMany(File.ReadAllLines);
        Assert.That(records.Any(r => r.Split('\t') is var f && f[1] == "127.0.0.2" && f[2] == "example.org" && f.Contains("disposition=reject") && f.Contains("spf_aligned=fail")),
            Is.True, string.Join('\n', records));
    }

    [Test]
    public async Task Mail_signed_with_rsa_and_ed25519_arrives_with_spf_dkim_and_dmarc_pass()
    {
        var signed = Sign(Sign(Message("Alice <alice@sender.test>", "signed twice"), "s1", "sender.test"), "e1", "sender.test", "ed25519-sha256");
        Assert.That(Send("127.0.0.1", "mail.sender.test", "alice@sender.test", signed), Is.EqualTo("250 accepted"));
        var delivered = await DeliveredWith("signed twice");
        var results = AuthenticationResults(delivered);
        Assert.That(results, Does.Contain("iprev=pass (mail.sender.test) policy.iprev=127.0.0.1"));
        Assert.That(results, Does.Contain("spf=pass smtp.mailfrom=alice@sender.test"));
        Assert.That(results, Does.Match(@"dkim=pass header\.d=sender\.test header\.s=s1 header\.a=rsa-sha256 header\.b=\S{8}"));
        Assert.That(results, Does.Match(@"dkim=pass header\.d=sender\.test header\.s=e1 header\.a=ed25519-sha256"));
        Assert.That(results, Does.Contain("dmarc=pass (p=reject dis=none) header.from=sender.test"));
        Assert.That(delivered, Does.Contain("Received-SPF: pass (mx.test: domain of alice@sender.test designates 127.0.0.1 as permitted sender)"));
        // python3-dkim, verifying the message as delivered against the same zone, agrees.
        Assert.That(PythonVerifies(delivered), Is.EqualTo("True True"));
    }

    private string PythonVerifies(string message) => PythonDkim.Verify(_dns, System.Text.Encoding.UTF8.GetBytes(message));

    private string PythonArcVerifies(string message) => PythonDkim.ArcVerify(_dns, System.Text.Encoding.UTF8.GetBytes(message));

    [Test]
    public async Task A_body_changed_after_signing_fails_dkim_here_and_in_python_dkim()
    {
        var signed = Sign(Message("Alice <alice@sender.test>", "tampered"), "s1", "sender.test").Replace("Hello.", "Hello, changed.");
        Assert.That(Send("127.0.0.1", "mail.sender.test", "alice@sender.test", signed), Is.EqualTo("250 accepted"));
        var delivered = await DeliveredWith("tampered");
        Assert.That(AuthenticationResults(delivered), Does.Match(@"dkim=fail \(body hash did not verify\) header\.d=sender\.test"));
        Assert.That(AuthenticationResults(delivered), Does.Contain("dmarc=pass"), "SPF is aligned");
        Assert.That(PythonVerifies(delivered), Is.EqualTo("False"));
    }

    [Test]
    public async Task A_forwarded_message_whose_dmarc_fails_is_delivered_when_a_trusted_sealer_vouches_for_it()
    {
        // The list changed the subject (breaking the DKIM signature) and sends from its own address.
        var original = Sign(Message("Alice <alice@sender.test>", "to the list"), "s1", "sender.test");
        var forwarded = "Authentication-Results: in.forwarder.test; dkim=pass header.d=sender.test; spf=pass smtp.mailfrom=alice@sender.test; dmarc=pass header.from=sender.test\r\n"
                        + original.Replace("Subject: to the list", "Subject: [list] to the list");
        var sealedByTrusted = Seal(forwarded, "fwd", "forwarder.test");
        Assert.That(PythonArcVerifies(sealedByTrusted), Is.EqualTo("pass"), "python3-dkim's ARC verifier on the same input");
        Assert.That(Send("127.0.0.3", "mail.forwarder.test", "list-bounces@forwarder.test", sealedByTrusted), Is.EqualTo("250 accepted"));
        var results = AuthenticationResults(await DeliveredWith("[list] to the list"));
        Assert.That(results, Does.Contain("arc=pass (i=1 d=forwarder.test)"));
        Assert.That(results, Does.Contain("dmarc=fail (p=reject dis=none override=trusted_forwarder) header.from=sender.test"));

        // The same, sealed by a forwarder nobody listed: the sender's p=reject stands.
        var sealedByOther = Seal(forwarded.Replace("[list]", "[other]"), "other", "other.test");
        Assert.That(Send("127.0.0.3", "mail.other.test", "list-bounces@other.test", sealedByOther), Is.EqualTo("550 5.7.1 Rejected by DMARC policy for sender.test"));
    }

    [Test]
    public async Task A_client_on_a_blocklist_is_refused_at_rcpt_unless_an_allow_list_weighs_against_it()
    {
        Assert.That(Send("127.0.0.5", "stranger.test", "x@stranger.test", Message("x@stranger.test", "listed")),
            Is.EqualTo("554 5.7.1 Service unavailable; client [127.0.0.5] blocked using bl.test*3"));
        // On both lists: 3 - 2 is under the threshold of 3.
        Assert.That(Send("127.0.0.6", "stranger.test", "x@stranger.test", Message("x@stranger.test", "listed and allowed")), Is.EqualTo("250 accepted"));
        Assert.That(await DeliveredWith("listed and allowed"), Does.Contain("X-Spam-Status: No, tags="));
    }

    [Test]
    public void Spf_fail_is_refused_at_rcpt_when_spf_action_is_reject()
    {
        var reply = Send("127.0.0.4", "stranger.test", "alice@sender.test", Message("Alice <alice@sender.test>", "spf fail"));
        Assert.That(reply, Does.StartWith("550 5.7.23 <alice@sender.test>: Recipient address rejected: SPF fail - not authorized"));
    }

    [Test]
    public async Task Dmarc_quarantine_files_the_message_in_junk()
    {
        Assert.That(Send("127.0.0.4", "stranger.test", "x@stranger.test", Message("Q <q@quarantine.test>", "quarantined")), Is.EqualTo("250 accepted"));
        var delivered = await DeliveredWith("quarantined", ".Junk");
        Assert.That(delivered, Does.Contain("X-Spam-Flag: YES\r\n"));
        Assert.That(File.ReadAllText(Path.Combine(_authd.Dir["mail"], "example.org", "bob", "subscriptions")), Does.Contain("Junk"));
        Assert.That(Delivered().Any(m => m.Contains("Subject: quarantined")), Is.False);
    }

    [Test]
    public async Task Authentication_results_in_our_name_that_a_message_brings_are_removed()
    {
        var message = Message("Alice <alice@sender.test>", "brought its own results",
            extraHeaders: "Authentication-Results: mx.test;\r\n\tdkim=pass header.d=example.org\r\nAuthentication-Results: elsewhere.test; spf=pass\r\n");
        Assert.That(Send("127.0.0.1", "mail.sender.test", "alice@sender.test", message), Is.EqualTo("250 accepted"));
        var delivered = await DeliveredWith("brought its own results");
        Assert.That(delivered, Does.Not.Contain("header.d=example.org"));
        Assert.That(delivered, Does.Contain("Authentication-Results: elsewhere.test; spf=pass"));
        Assert.That(System.Text.RegularExpressions.Regex.Count(delivered, "Authentication-Results: mx.test;"), Is.EqualTo(1), "exactly one in our name");
    }

    private RunResult Mailctl(params string[] args) =>
        Run.Program(Repo.Program("mailctl"), ["check", .. args, "--mta-config", _authd.Dir["mtad.conf"], "--dns", _dns.Address]);

    [Test]
    public async Task Mailctl_check_prints_what_mtad_writes_for_the_same_input()
    {
        // SPF: the same Received-SPF and spf clause mtad put in the delivered message.
        var spf = Mailctl("spf", "127.0.0.1", "alice@sender.test", "--helo", "mail.sender.test");
        Assert.That(spf.ExitCode, Is.Zero, spf.Stderr);
        Assert.That(spf.Stdout, Does.StartWith("mailfrom: pass (ip4:127.0.0.1)\n"));
        Assert.That(spf.Stdout, Does.Contain("Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=alice@sender.test"));
        var message = Sign(Message("Alice <alice@sender.test>", "checked by hand"), "s1", "sender.test");
        Assert.That(Send("127.0.0.1", "mail.sender.test", "alice@sender.test", message), Is.EqualTo("250 accepted"));
        var delivered = await DeliveredWith("checked by hand");
        var receivedSpf = spf.Stdout[spf.Stdout.IndexOf("Received-SPF:", StringComparison.Ordinal)..spf.Stdout.IndexOf("Authentication-Results:", StringComparison.Ordinal)];
        Assert.That(delivered, Does.Contain(receivedSpf));

        // DKIM: one line per signature, and the dkim clause.
        using var dir = new TempDir();
        File.WriteAllText(dir["signed.eml"], message);
        var dkim = Mailctl("dkim", dir["signed.eml"]);
        Assert.That(dkim.ExitCode, Is.Zero, dkim.Stderr + dkim.Stdout);
        Assert.That(dkim.Stdout, Does.StartWith("d=sender.test s=s1 a=rsa-sha256: pass\n"));
        var clause = System.Text.RegularExpressions.Regex.Match(dkim.Stdout, @"dkim=pass header\.d=sender\.test header\.s=s1 header\.a=rsa-sha256 header\.b=\S{8}").Value;
        Assert.That(AuthenticationResults(delivered), Does.Contain(clause).And.Not.Empty);
        File.WriteAllText(dir["tampered.eml"], message.Replace("Hello.", "Bye."));
        Assert.That(Mailctl("dkim", dir["tampered.eml"]).Stdout, Does.StartWith("d=sender.test s=s1 a=rsa-sha256: fail (body hash did not verify)"));

        // DMARC: the whole decision, here a refusal at the end of DATA.
        File.WriteAllText(dir["forged.eml"], Message("CEO <ceo@example.org>", "forged"));
        var dmarc = Mailctl("dmarc", dir["forged.eml"], "--ip", "127.0.0.2", "--mail-from", "x@stranger.test", "--helo", "stranger.test");
        Assert.That(dmarc.ExitCode, Is.EqualTo(1), dmarc.Stderr);
        Assert.That(dmarc.Stdout, Does.Contain("mtad would refuse it at the end of DATA: 550 5.7.1 Rejected by DMARC policy for example.org"));
        Assert.That(dmarc.Stdout, Does.Contain("dmarc=fail (p=reject dis=reject) header.from=example.org"));
    }
}
