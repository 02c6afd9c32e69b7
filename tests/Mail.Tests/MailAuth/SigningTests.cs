using System.Text;
using Mail.Mta;
using Mail.Queue;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.MailAuth;

/// <summary>
/// DKIM signing of our users' mail: keys made by `mailctl dkim keygen`, messages sent by Python's
/// smtplib through submission (and from mynetworks), the delivered copies verified by python3-dkim,
/// by OpenDKIM and by our own verifier against the records keygen printed, served by NSD.
/// </summary>
[NonParallelizable]
public sealed class SigningTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private WebApplication _mta = null!;
    private ZoneServer _dns = null!;
    private int _mx, _submission;
    private string[] _records = [];

    private string KeyDir => _authd.Dir["dkim"];

    [OneTimeSetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "localhost");
        (_mx, _submission) = (Ports.Free(), Ports.Free());
        _dns = ZoneServer.Start(("example.org", ""));
        File.WriteAllText(_authd.Dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{_mx}
            submission_listen = 127.0.0.1:{_submission}
            submissions_listen =
            tls_cert = {_authd.Dir["cert.pem"]}
            tls_key = {_authd.Dir["key.pem"]}
            mynetworks = 127.0.0.1/32
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            pickup_socket =
            lmtp_destination = 127.0.0.1:{_lmtp.Port}
            defer_transports = smtp
            hostname = mx.example.org
            dns_servers = {_dns.Address}
            dkim_key_dir = {KeyDir}
            """);
        var made = Mailctl("keygen", "example.org");
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        _records = made.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        _dns.Dispose();
        _dns = ZoneServer.Start(("example.org", string.Join('\n', _records.Select(r => r.Replace(".example.org. IN TXT", " TXT")))));
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, _authd.Dir["mtad.conf"], new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        if (_lmtp != null) await _lmtp.DisposeAsync();
        if (_authd != null) await _authd.DisposeAsync();
        _dns?.Dispose();
    }

    private RunResult Mailctl(params string[] args) =>
        Run.Program(Repo.Program("mailctl"), ["dkim", .. args, "--mta-config", _authd.Dir["mtad.conf"]]);

    [Test]
    public void Keygen_writes_private_keys_for_mtad_alone_and_prints_the_records_to_publish()
    {
        Assert.That(_records, Has.Length.EqualTo(2));
        Assert.That(_records[0], Does.Match(@"^\d{6}r\._domainkey\.example\.org\. IN TXT ""v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"" ""[A-Za-z0-9+/=]+""$"), "RSA-2048: two strings");
        Assert.That(_records[1], Does.Match(@"^\d{6}e\._domainkey\.example\.org\. IN TXT ""v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=""$"));
        var folder = Path.Combine(KeyDir, "example.org");
        Assert.That(File.GetUnixFileMode(KeyDir), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        Assert.That(File.GetUnixFileMode(folder), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        var keys = System.IO.Directory.GetFiles(folder);
        Assert.That(keys, Has.Length.EqualTo(2));
        Assert.That(keys.Select(File.GetUnixFileMode), Has.All.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        // A selector's key is never replaced; list prints what keygen printed.
        var selector = _records[0].Split('.')[0];
        var again = Mailctl("keygen", "example.org", "--selector", selector, "--algorithm", "rsa");
        Assert.That((again.ExitCode, again.Stderr), Is.EqualTo((73, $"mailctl: {Path.Combine(folder, selector + ".key")} exists: a selector's key is never replaced (choose another selector)\n")));
        var list = Mailctl("list");
        Assert.That(list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(), Is.EqualTo(_records.Order()));

        // The key files are PKCS#8 as OpenSSL reads them: OpenDKIM signs with each (test mode).
        using var dir = new TempDir();
        File.WriteAllText(dir["m.eml"], "From: bob@example.org\r\nTo: ann@example.net\r\nSubject: keys\r\n\r\nHi.\r\n");
        foreach (var (record, algorithm) in new[] { (_records[0], "rsa-sha256"), (_records[1], "ed25519-sha256") })
        {
            var sel = record.Split('.')[0];
            File.WriteAllText(dir["KeyTable"], $"k example.org:{sel}:{Path.Combine(folder, sel + ".key")}\n");
            File.WriteAllText(dir["SigningTable"], "*@example.org k\n");
            File.WriteAllText(dir["opendkim.conf"], $"Mode s\nKeyTable {dir["KeyTable"]}\nSigningTable refile:{dir["SigningTable"]}\nSignatureAlgorithm {algorithm}\n" +
                "InternalHosts 127.0.0.1\nRequireSafeKeys false\nSyslog no\n");
            var signed = Run.Program(Peers.Require("opendkim"), ["-x", dir["opendkim.conf"], "-t", dir["m.eml"]]);
            Assert.That(signed.Stdout + signed.Stderr, Does.Contain($"a={algorithm};"), $"OpenDKIM signs with {sel}.key");
        }
    }

    /// <summary>smtplib through submission (STARTTLS, AUTH as bob), a message of bob's to himself.</summary>
    private void Submit(byte[] message)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["m.eml"], message);
        var script = """
            import smtplib, ssl, sys
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
            s.starttls(context=ctx)
            s.login('bob@example.org', 'bob pass')
            s.sendmail('bob@example.org', ['bob@example.org'], open(sys.argv[2], 'rb').read(), mail_options=['BODY=8BITMIME'])
            s.quit()
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, _submission.ToString(), dir["m.eml"]]);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
    }

    /// <summary>The delivered copy with <paramref name="subject"/>, with CRLF line ends (Maildir files end lines in LF).</summary>
    private async Task<byte[]> DeliveredAsync(string subject)
    {
        var folder = Path.Combine(_authd.Dir["mail"], "example.org", "bob", "new");
        byte[]? found = null;
        var marker = Encoding.ASCII.GetBytes(subject);
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.Exists(folder) &&
            (found = System.IO.Directory.GetFiles(folder).Select(File.ReadAllBytes).FirstOrDefault(m => m.AsSpan().IndexOf(marker) >= 0)) != null,
            TimeSpan.FromSeconds(30)), Is.True, $"'{subject}' was not delivered: {File.ReadAllText(_authd.LogFile)}");
        var crlf = new List<byte>(found!.Length + 100);
        foreach (var b in found!)
        {
            if (b == '\n') crlf.Add((byte)'\r');
            crlf.Add(b);
        }
        return [.. crlf];
    }

    private string PythonVerifies(byte[] message) => PythonDkim.Verify(_dns, message);

    /// <summary>OpenDKIM's test mode (opendkim -t), keys from the same records: the dkim clauses of its Authentication-Results.</summary>
    private string[] OpenDkimVerifies(byte[] message)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["m.eml"], message);
        File.WriteAllText(dir["dnsdata"], string.Join('\n', _records.Select(r => r.Split(' ')[0].TrimEnd('.') + " " + string.Concat(System.Text.RegularExpressions.Regex.Matches(r, "\"([^\"]*)\"").Select(m => m.Groups[1].Value)))) + "\n");
        File.WriteAllText(dir["opendkim.conf"], $"TestDNSData file:{dir["dnsdata"]}\nMode v\nSyslog no\n");
        var run = Run.Program(Peers.Require("opendkim"), ["-x", dir["opendkim.conf"], "-t", dir["m.eml"], "-vv"]);
        Assert.That(run.ExitCode, Is.Zero, run.Stdout + run.Stderr);
        return System.Text.RegularExpressions.Regex.Matches(run.Stdout + run.Stderr, @"dkim=(\w+)(?: \([^)]*\))? header\.d=example\.org[^;]*header\.a=([\w-]+)")
            .Select(m => m.Groups[1].Value + " " + m.Groups[2].Value).Order().ToArray();
    }

    private static readonly string LongSubject = "A long subject line " + string.Concat(Enumerable.Range(0, 30).Select(i => $"word{i} "));
    private static readonly string ManyRecipients = string.Join(",\r\n ", Enumerable.Range(0, 12).Select(i => $"Person {i} <person{i}@example.net>"));

    private static IEnumerable<TestCaseData> Messages()
    {
        yield return new TestCaseData("plain", "From: Bob <bob@example.org>\r\nTo: bob@example.org\r\nSubject: plain\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <plain@example.org>\r\n\r\nHello.\r\n").SetArgDisplayNames("plain");
        yield return new TestCaseData("8bit", "From: Bob <bob@example.org>\r\nTo: bob@example.org\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
            "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — ünïcödé, 日本語.  Trailing spaces   \r\n\r\n\r\n").SetArgDisplayNames("8bit");
        yield return new TestCaseData(LongSubject.Trim(), $"From: Bob <bob@example.org>\r\nTo: {ManyRecipients}\r\nSubject: {LongSubject.Trim()}\r\nMIME-Version: 1.0\r\n" +
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe text part.\r\n" +
            "--b1\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            Convert.ToBase64String(Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray(), Base64FormattingOptions.InsertLineBreaks) + "\r\n--b1--\r\n")
            .SetArgDisplayNames("multipart, long header fields");
    }

    [TestCaseSource(nameof(Messages))]
    public async Task Submitted_mail_carries_rsa_and_ed25519_signatures_that_python_dkim_opendkim_and_ours_accept(string subject, string message)
    {
        Submit(Encoding.UTF8.GetBytes(message));
        var delivered = await DeliveredAsync(subject);
        var text = Encoding.UTF8.GetString(delivered);
        var signatures = System.Text.RegularExpressions.Regex.Matches(text, @"^DKIM-Signature:([^\r\n]*(\r\n[ \t][^\r\n]*)*)", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.That(signatures.Select(s => System.Text.RegularExpressions.Regex.Match(s.Value, @"a=([\w-]+)").Groups[1].Value), Is.EquivalentTo(new[] { "rsa-sha256", "ed25519-sha256" }));
        foreach (var s in signatures.Select(s => System.Text.RegularExpressions.Regex.Replace(s.Value, @"\s", "")))
        {
            Assert.That(s, Does.Contain("c=relaxed/relaxed;").And.Contain("d=example.org;"));
            var h = System.Text.RegularExpressions.Regex.Match(s, "h=([^;]*)").Groups[1].Value.ToLowerInvariant().Split(':');
            // From, To and Subject named once more than they occur: adding one breaks the signature.
            Assert.That(h.Count(x => x == "from"), Is.EqualTo(2), s);
            Assert.That(h.Count(x => x == "to"), Is.EqualTo(2), s);
            Assert.That(h.Count(x => x == "subject"), Is.EqualTo(2), s);
        }
        Assert.That(PythonVerifies(delivered), Is.EqualTo("True True"));
        Assert.That(OpenDkimVerifies(delivered), Is.EqualTo(new[] { "pass ed25519-sha256", "pass rsa-sha256" }));
        using var dir = new TempDir();
        File.WriteAllBytes(dir["m.eml"], delivered);
        var ours = Run.Program(Repo.Program("mailctl"), ["check", "dkim", dir["m.eml"], "--mta-config", _authd.Dir["mtad.conf"], "--dns", _dns.Address]);
        Assert.That(ours.Stdout.Split('\n').Count(l => l.StartsWith("d=example.org ") && l.EndsWith(": pass")), Is.EqualTo(2), ours.Stdout + ours.Stderr);

        // A second Subject added on the way (oversigned) fails both signatures.
        var added = Encoding.UTF8.GetBytes("Subject: added later\r\n").Concat(delivered).ToArray();
        Assert.That(PythonVerifies(added), Is.EqualTo("False False"));
    }

    [Test]
    public async Task Mail_from_mynetworks_is_signed_and_a_strangers_is_not()
    {
        string Send(string source, string subject)
        {
            var script = """
                import smtplib, sys
                s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), source_address=(sys.argv[2], 0), timeout=30)
                s.sendmail('bob@example.org', ['bob@example.org'], ('From: bob@example.org\r\nTo: bob@example.org\r\nSubject: %s\r\n\r\nHi.\r\n' % sys.argv[3]).encode())
                s.quit()
                """;
            var run = Run.Program("/usr/bin/python3", ["-c", script, _mx.ToString(), source, subject]);
            return run.ExitCode == 0 ? "sent" : run.Stderr;
        }
        Assert.That(Send("127.0.0.1", "from mynetworks"), Is.EqualTo("sent"));
        Assert.That(Send("127.0.0.2", "from a stranger"), Is.EqualTo("sent"));
        var trusted = Encoding.UTF8.GetString(await DeliveredAsync("from mynetworks"));
        var stranger = Encoding.UTF8.GetString(await DeliveredAsync("from a stranger"));
        Assert.That(System.Text.RegularExpressions.Regex.Matches(trusted, "^DKIM-Signature:", System.Text.RegularExpressions.RegexOptions.Multiline), Has.Count.EqualTo(2));
        Assert.That(stranger, Does.Not.Contain("DKIM-Signature:"));
    }
}
