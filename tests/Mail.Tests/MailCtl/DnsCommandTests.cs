using System.Text.RegularExpressions;
using Mail.Tests.Support;

namespace Mail.Tests.MailCtl;

/// <summary>
/// `mailctl dns DOMAIN` prints the records to publish; served by NSD as printed, `mailctl dns
/// check` finds them right; a broken zone gets one FAIL line per fault an administrator would
/// otherwise look for by hand.
/// </summary>
[NonParallelizable]
public sealed class DnsCommandTests
{
    private TempDir _dir = null!;
    private string Conf => _dir["mtad.conf"];

    [OneTimeSetUp]
    public void Start()
    {
        _dir = new TempDir();
        File.WriteAllText(Conf, $"""
            hostname = mx.example.org
            dkim_key_dir = {_dir["dkim"]}
            dnsbl_sites = bl.test=127.0.0.[2..11]*3
            """);
        var made = Mailctl("dkim", "keygen", "example.org");
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
    }

    [OneTimeTearDown]
    public void Stop() => _dir.Dispose();

    private RunResult Mailctl(params string[] args) => Run.Program(Repo.Program("mailctl"), [.. args, "--mta-config", Conf]);

    /// <summary>NSD serving lines of a zone file: each record in the zone its name belongs to.</summary>
    private static ZoneServer Serve(IEnumerable<string> lines, string reverse = "", string blocklist = "")
    {
        var records = lines.Where(l => l.Length > 0 && !l.StartsWith(';')).ToList();
        string In(string zone) => string.Join('\n', records.Where(r => r.Split(' ')[0].EndsWith("." + zone + ".") || r.Split(' ')[0] == zone + "."));
        return ZoneServer.Start(("example.org", In("example.org")), ("0.0.127.in-addr.arpa", reverse.Length > 0 ? reverse : In("0.0.127.in-addr.arpa")),
            ("bl.test", blocklist));
    }

    [Test]
    public void The_printed_records_once_published_are_found_right()
    {
        var printed = Mailctl("dns", "example.org", "--address", "127.0.0.7");
        Assert.That(printed.ExitCode, Is.Zero, printed.Stderr);
        var lines = printed.Stdout.Split('\n');
        Assert.That(lines, Does.Contain("example.org. IN MX 10 mx.example.org."));
        Assert.That(lines, Does.Contain("mx.example.org. IN A 127.0.0.7"));
        Assert.That(lines, Does.Contain("example.org. IN TXT \"v=spf1 mx -all\""));
        Assert.That(lines, Does.Contain("_dmarc.example.org. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\""));
        Assert.That(lines, Does.Contain("7.0.0.127.in-addr.arpa. IN PTR mx.example.org."));
        Assert.That(lines, Does.Contain("_submissions._tcp.example.org. IN SRV 0 1 465 mx.example.org."));
        Assert.That(lines.Count(l => Regex.IsMatch(l, @"^\d{6}[re]\._domainkey\.example\.org\. IN TXT ""v=DKIM1; k=(rsa|ed25519); p=")), Is.EqualTo(2));
        using var dns = Serve(lines);
        var check = Mailctl("dns", "check", "example.org", "--dns", dns.Address);
        Assert.That(check.ExitCode, Is.Zero, check.Stdout + check.Stderr);
        Assert.That(check.Stdout, Does.Not.Contain("FAIL").And.Not.Contain("warn"));
        Assert.That(check.Stdout, Does.Contain("ok    SPF: \"v=spf1 mx -all\" passes for 127.0.0.7"));
        Assert.That(Regex.Matches(check.Stdout, @"ok    DKIM: \d{6}[re]\._domainkey\.example\.org matches"), Has.Count.EqualTo(2));
        Assert.That(check.Stdout, Does.Contain("ok    PTR: 127.0.0.7 names mx.example.org, which resolves back"));
        Assert.That(check.Stdout, Does.EndWith("all records are right\n"));
    }

    [Test]
    public void A_broken_zone_gets_a_line_for_each_fault()
    {
        var printed = Mailctl("dns", "example.org", "--address", "127.0.0.7").Stdout.Split('\n');
        // The RSA key cut at 255 characters, the Ed25519 key not published, SPF over 10 look-ups,
        // two DMARC records, no PTR, and the server's address on the block list.
        var rsa = printed.Single(l => l.Contains("k=rsa"));
        var cut = rsa[..(rsa.IndexOf('"') + 256)] + "\"";
        var spf = "example.org. IN TXT \"v=spf1 " + string.Join(' ', Enumerable.Range(1, 6).Select(i => $"include:i{i}.example.org")) + " \" \"" +
            string.Join(' ', Enumerable.Range(7, 5).Select(i => $"include:i{i}.example.org")) + " mx -all\"";
        var broken = printed.Where(l => !l.Contains("_domainkey") && !l.StartsWith("example.org. IN TXT") && !l.StartsWith("_dmarc")).Append(cut).Append(spf)
            .Concat(Enumerable.Range(1, 11).Select(i => $"i{i}.example.org. IN TXT \"v=spf1 -all\""))
            .Append("_dmarc.example.org. IN TXT \"v=DMARC1; p=reject\"").Append("_dmarc.example.org. IN TXT \"v=DMARC1; p=none\"");
        using var dns = Serve(broken, reverse: "8 PTR other.example.net.", blocklist: "7.0.0.127 A 127.0.0.2");
        var check = Mailctl("dns", "check", "example.org", "--dns", dns.Address);
        Assert.That(check.ExitCode, Is.EqualTo(1), check.Stdout + check.Stderr);
        var fails = check.Stdout.Split('\n').Where(l => l.StartsWith("FAIL")).ToList();
        Assert.That(fails, Has.Some.Match(@"^FAIL  SPF: permerror for this server's address 127\.0\.0\.7: over 10 DNS look-ups"));
        Assert.That(fails, Has.Some.Match(@"^FAIL  DKIM: \d{6}r\._domainkey\.example\.org: the key is cut short after \d+ of \d+ characters: a TXT string holds at most 255"));
        Assert.That(fails, Has.Some.Match(@"^FAIL  DKIM: \d{6}e\._domainkey\.example\.org: none: publish"));
        Assert.That(fails, Has.Some.Match(@"^FAIL  DMARC: 2 records"));
        Assert.That(fails, Has.Some.Match(@"^FAIL  PTR: 127\.0\.0\.7 has no PTR record"));
        Assert.That(fails, Has.Some.Match(@"^FAIL  DNSBL: 127\.0\.0\.7 is listed on bl\.test"));
        Assert.That(check.Stdout, Does.EndWith($"{fails.Count} problems found\n"));
        Assert.That(fails, Has.Count.EqualTo(6), check.Stdout);
    }
}
