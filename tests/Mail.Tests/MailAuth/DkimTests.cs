using System.Text;
using Mail.MailAuth;
using Mail.Tests.Support;
using MimeKit;

namespace Mail.Tests.MailAuth;

/// <summary>
/// DKIM's finer rules, on messages signed by python3-dkim and keys served by NSD: l= as OpenDKIM
/// treats it, x= expiry, the key's t=y and h= restrictions, rsa-sha1 reported but not trusted.
/// </summary>
[NonParallelizable]
public sealed class DkimTests
{
    private TempDir _keys = null!;
    private ZoneServer _dns = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _keys = new TempDir();
        var made = Run.Program(Peers.Require("dknewkey"), ["--ktype", "rsa", _keys["k"]]);
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        var p = File.ReadAllText(_keys["k.dns"]).Trim().Split("p=")[1];
        string Txt(string text) => string.Join(' ', text.Chunk(200).Select(c => "\"" + new string(c) + "\""));
        _dns = ZoneServer.Start(("dkim.test", $"""
            k._domainkey TXT {Txt("v=DKIM1; k=rsa; p=" + p)}
            testing._domainkey TXT {Txt("v=DKIM1; t=y; k=rsa; p=" + p)}
            sha1only._domainkey TXT {Txt("v=DKIM1; h=sha1; k=rsa; p=" + p)}
            revoked._domainkey TXT "v=DKIM1; k=rsa; p="
            """));
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _dns.Dispose();
        _keys.Dispose();
    }

    private const string Plain = "From: a@dkim.test\r\nTo: b@example.org\r\nSubject: dkim\r\nMessage-ID: <1@dkim.test>\r\n\r\nThe signed body.\r\n";

    /// <summary>python3-dkim's dkim.sign with the given selector, algorithm and body length tag.</summary>
    private string Sign(string selector, string algorithm = "rsa-sha256", bool length = false)
    {
        var script = """
            import sys, dkim
            m = sys.stdin.buffer.read()
            sig = dkim.sign(m, sys.argv[1].encode(), b'dkim.test', open(sys.argv[2], 'rb').read(),
                            canonicalize=(b'relaxed', b'relaxed'), signature_algorithm=sys.argv[3].encode(), length=sys.argv[4] == '1')
            sys.stdout.buffer.write(sig + m)
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, selector, _keys["k.key"], algorithm, length ? "1" : "0"], Plain);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout;
    }

    private async Task<DkimOutcome> Verify(string message)
    {
        var checker = new DkimChecker(new DnsResolver([_dns.Address], TimeSpan.FromSeconds(2)));
        var outcomes = await checker.VerifyAsync(MimeMessage.Load(new MemoryStream(Encoding.ASCII.GetBytes(message))), CancellationToken.None);
        Assert.That(outcomes, Has.Count.EqualTo(1));
        return outcomes[0];
    }

    // Folded and oddly spaced fields, a field name repeated, a Content-Type (MimeKit keeps it
    // with the body), an oversigned name with no field, and trailing whitespace and blank lines in the body.
    private const string Awkward = "X-Note: first\r\n" +
        "X-Note: second,\r\n\tfolded\r\n" +
        "From:   Ann  Example <a@dkim.test>  \r\n" +
        "To: b@example.org,\r\n  c@example.org\r\n" +
        "Subject:  folded \t subject\r\n   continued here\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain;\r\n\tcharset=utf-8\r\n" +
        "\r\nA body  with  spaces \t\r\n\r\nand trailing blank lines\r\n\r\n\r\n";

    /// <summary>
    /// Each canonicalization of an awkward message, signed by python3-dkim: ours passes it, and a
    /// change of whitespace in a signed field (which relaxed allows and simple does not) or of a
    /// signed field's text gives the same result here as in python3-dkim's verifier.
    /// </summary>
    [TestCase("simple", "simple")]
    [TestCase("relaxed", "simple")]
    [TestCase("simple", "relaxed")]
    [TestCase("relaxed", "relaxed")]
    public async Task Every_canonicalization_agrees_with_python_dkim(string header, string body)
    {
        var script = """
            import sys, dkim
            m = sys.stdin.buffer.read()
            sig = dkim.sign(m, b'k', b'dkim.test', open(sys.argv[1], 'rb').read(), canonicalize=(sys.argv[2].encode(), sys.argv[3].encode()),
                            include_headers=[b'from', b'from', b'to', b'subject', b'x-note', b'x-note', b'content-type', b'x-absent'])
            sys.stdout.buffer.write(sig + m)
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, _keys["k.key"], header, body], Awkward);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        var signed = run.Stdout;
        Assert.That(signed, Does.Contain("x-absent"), "the signature names a field the message lacks");
        var respaced = signed.Replace("Subject:  folded \t subject", "Subject: folded subject");
        var changed = signed.Replace("continued here", "continued there");
        var moved = signed.Replace("b@example.org,\r\n  c@example.org", "b@example.org,\r\n\tc@example.org");
        foreach (var (name, message) in new[] { ("as signed", signed), ("respaced", respaced), ("changed", changed), ("refolded", moved) })
        {
            var ours = await Verify(message);
            Assert.That(ours.Result == "pass", Is.EqualTo(PythonVerifies(message)), $"{header}/{body}, {name}: ours {ours.Result} ({ours.Reason})");
            if (name == "as signed") Assert.That(ours.Result, Is.EqualTo("pass"), ours.Reason);
            if (name is "respaced" or "refolded") Assert.That(ours.Result, Is.EqualTo(header == "relaxed" ? "pass" : "fail"), name);
            if (name == "changed") Assert.That((ours.Result, ours.Reason), Is.EqualTo(("fail", "signature did not verify")));
        }
    }

    /// <summary>python3-dkim's verification of a message against the same key.</summary>
    private bool PythonVerifies(string message)
    {
        var script = """
            import sys, dkim
            m = sys.stdin.buffer.read()
            rec = open(sys.argv[1], 'rb').read()
            print(dkim.verify(m, dnsfunc=lambda name, timeout=5: rec))
            """;
        File.WriteAllText(_keys["k.txt"], "v=DKIM1; k=rsa; p=" + File.ReadAllText(_keys["k.dns"]).Trim().Split("p=")[1]);
        var run = Run.Program("/usr/bin/python3", ["-c", script, _keys["k.txt"]], message);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout.Trim() == "True";
    }

    [Test]
    public async Task A_plain_signature_passes_and_is_trusted()
    {
        var o = await Verify(Sign("k"));
        Assert.That((o.Result, o.Trusted, o.Domain, o.Selector), Is.EqualTo(("pass", true, "dkim.test", "k")));
    }

    [Test]
    public async Task Body_length_covering_the_body_passes_and_content_added_after_it_is_not_trusted()
    {
        var signed = Sign("k", length: true);
        Assert.That(signed, Does.Contain(" l="));
        Assert.That((await Verify(signed)).Result, Is.EqualTo("pass"));
        var appended = await Verify(signed + "\r\nBuy now: an appended advertisement.\r\n");
        Assert.That((appended.Result, appended.Trusted), Is.EqualTo(("policy", false)));
        Assert.That(appended.Reason, Does.Contain("unsigned bytes after l="));
    }

    [Test]
    public async Task An_expired_signature_is_a_permanent_error()
    {
        var signed = Sign("k").Replace("DKIM-Signature: v=1;", "DKIM-Signature: v=1; x=1000000000;");
        var o = await Verify(signed);
        Assert.That((o.Result, o.Reason), Is.EqualTo(("permerror", "signature expired")));
    }

    [Test]
    public async Task A_testing_key_verifies_but_is_not_trusted()
    {
        var o = await Verify(Sign("testing"));
        Assert.That((o.Result, o.Reason, o.Trusted), Is.EqualTo(("policy", "key in testing mode", false)));
    }

    [Test]
    public async Task A_key_limited_to_sha1_refuses_a_sha256_signature()
    {
        var o = await Verify(Sign("sha1only"));
        Assert.That((o.Result, o.Reason), Is.EqualTo(("permerror", "key does not allow sha256")));
    }

    [Test]
    public async Task Rsa_sha1_is_checked_and_reported_but_never_trusted()
    {
        var o = await Verify(Sign("k", algorithm: "rsa-sha1"));
        Assert.That((o.Result, o.Reason, o.Trusted), Is.EqualTo(("policy", "rsa-sha1 verified but not trusted", false)));
    }

    [Test]
    public async Task A_revoked_or_missing_key_is_a_permanent_error()
    {
        Assert.That((await Verify(Sign("k").Replace("s=k;", "s=revoked;"))).Reason, Is.EqualTo("key revoked"));
        var missing = await Verify(Sign("k").Replace("s=k;", "s=absent;"));
        Assert.That((missing.Result, missing.Reason), Is.EqualTo(("permerror", "no key for signature (absent._domainkey.dkim.test)")));
    }
}
