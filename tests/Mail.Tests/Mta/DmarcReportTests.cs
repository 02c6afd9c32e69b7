using System.IO.Compression;
using System.Net;
using System.Text;
using System.Xml.Linq;
using Mail.MailAuth;
using Mail.Mta;
using Mail.Queue;
using Mail.Tests.Support;
using MimeKit;
using MimeKit.Cryptography;

namespace Mail.Tests.Mta;

/// <summary>
/// DMARC aggregate reports: a finished day's evaluations, kept as the MX recorded them, become one
/// gzipped XML report per domain that asks, queued from our postmaster and DKIM-signed (python3-dkim
/// verifies it); a rua address in another organization's domain is used only when that domain
/// vouches for it (RFC 7489 7.1).
/// </summary>
[NonParallelizable]
public sealed class DmarcReportTests
{
    [Test]
    public async Task A_finished_day_becomes_one_signed_report_per_domain_that_asks()
    {
        using var dir = new TempDir();
        var keyDir = dir["dkim"];
        var key = DkimSigningKey.Generate(keyDir, "example.org", "rep", DkimSignatureAlgorithm.RsaSha256);
        using var dns = ZoneServer.Start(
            ("example.org", $"rep._domainkey TXT {string.Join(' ', key.TxtRecord().Chunk(200).Select(c => "\"" + new string(c) + "\""))}\n" +
                            "sender.test._report._dmarc TXT \"v=DMARC1\""),
            ("sender.test", ""), ("other.test", ""), ("stranger.test", ""));
        var spool = new Mail.Queue.Spool(dir["spool"]);
        var recorder = new DmarcRecorder(Path.Combine(spool.Root, "dmarc"));
        var spf = new SpfOutcome(SpfResult.Pass, "mailfrom", "sender.test", "alice@sender.test", "ip4:127.0.0.1");
        var dkim = new List<DkimOutcome> { new("pass", null, "sender.test", "s1", "rsa-sha256", "abcdefgh", null, true) };
        var askingRecord = DmarcRecord.Parse("v=DMARC1; p=reject; rua=mailto:reports@example.org")!;
        var pass = new DmarcOutcome("pass", "sender.test", askingRecord, DmarcPolicy.Reject, DmarcPolicy.None, true, true, null);
        var forged = new DmarcOutcome("fail", "sender.test", askingRecord, DmarcPolicy.Reject, DmarcPolicy.Reject, false, false, null);
        recorder.Record(IPAddress.Parse("127.0.0.1"), "alice@sender.test", spf, dkim, pass);
        recorder.Record(IPAddress.Parse("127.0.0.1"), "alice@sender.test", spf, dkim, pass);
        recorder.Record(IPAddress.Parse("192.0.2.66"), "x@forger.test", spf with { Result = SpfResult.Fail }, [], forged);
        // Another domain points its reports at a stranger that does not vouch for them: none is sent.
        var other = DmarcRecord.Parse("v=DMARC1; p=none; rua=mailto:victim@stranger.test")!;
        recorder.Record(IPAddress.Parse("127.0.0.1"), "bob@other.test", spf with { Domain = "other.test" }, [],
            new DmarcOutcome("pass", "other.test", other, DmarcPolicy.None, DmarcPolicy.None, true, false, null));
        var today = Directory.GetFiles(Path.Combine(spool.Root, "dmarc"), "*.tsv").Single();
        var yesterday = DateTimeOffset.UtcNow.AddDays(-1);
        File.Move(today, Path.Combine(spool.Root, "dmarc", yesterday.ToString("yyyyMMdd") + ".tsv"));

        int woken = 0;
        var reports = new DmarcReports(new DnsResolver([dns.Address], TimeSpan.FromSeconds(2)), new PublicSuffixList(PublicSuffixList.DebianPath),
            "mx.example.org", "postmaster@example.org");
        var reporter = new DmarcReporter(spool, reports, new DkimKeyring(keyDir), "postmaster@example.org", () => woken++);
        Assert.That(await reporter.SendDueAsync(DateTimeOffset.UtcNow, CancellationToken.None), Is.EqualTo(1));
        Assert.That(woken, Is.EqualTo(1), "the queue manager is told");
        Assert.That(await reporter.SendDueAsync(DateTimeOffset.UtcNow, CancellationToken.None), Is.Zero, "a day is reported once");

        var queued = Directory.GetFiles(spool.DirPath(QueueDir.Incoming)).Single();
        Assert.That(QueueFileReader.Read(queued, out var envelope, out var chunks), Is.EqualTo(QueueFileStatus.Ok));
        Assert.That((envelope!.Sender, envelope.Recipients.Single()), Is.EqualTo(("postmaster@example.org", "reports@example.org")));
        var content = Encoding.ASCII.GetBytes(Encoding.UTF8.GetString(QueueFileReader.ReadContentPrefix(queued, chunks, 1 << 20)));
        Assert.That(PythonDkim.Verify(dns, content), Is.EqualTo("True"), "python3-dkim verifies our signature");
        var message = MimeMessage.Load(new MemoryStream(content));
        Assert.That(message.Subject, Does.Match(@"^Report Domain: sender\.test Submitter: mx\.example\.org Report-ID: <sender\.test\.\d{8}\.[0-9a-f]{8}>$"));
        var gz = message.Attachments.OfType<MimePart>().Single();
        Assert.That(gz.FileName, Does.Match(@"^mx\.example\.org!sender\.test!\d+!\d+\.xml\.gz$"));
        using var raw = new MemoryStream();
        gz.Content.DecodeTo(raw);
        raw.Position = 0;
        var xml = XDocument.Load(new GZipStream(raw, CompressionMode.Decompress));
        var published = xml.Root!.Element("policy_published")!;
        Assert.That((published.Element("domain")!.Value, published.Element("p")!.Value), Is.EqualTo(("sender.test", "reject")));
        var rows = xml.Root.Elements("record").Select(r => r.Element("row")!).ToDictionary(r => r.Element("source_ip")!.Value);
        Assert.That(rows["127.0.0.1"].Element("count")!.Value, Is.EqualTo("2"));
        Assert.That(rows["127.0.0.1"].Element("policy_evaluated")!.Element("dkim")!.Value, Is.EqualTo("pass"));
        Assert.That(rows["192.0.2.66"].Element("policy_evaluated")!.Element("disposition")!.Value, Is.EqualTo("reject"));
        Assert.That(rows["192.0.2.66"].Element("policy_evaluated")!.Element("spf")!.Value, Is.EqualTo("fail"));
        Assert.That(File.Exists(Path.Combine(spool.Root, "dmarc", yesterday.ToString("yyyyMMdd") + ".tsv.done")), Is.True);

        // Received, as our postmaster would: this report, another in a zip from another reporter,
        // and a hostile one (an XML entity that would read a file): mailctl sums up the first two.
        var inbox = Directory.CreateDirectory(dir["postmaster/new"]).FullName;
        Directory.CreateDirectory(dir["postmaster/cur"]);
        File.WriteAllBytes(Path.Combine(inbox, "1.mx"), content);
        MimeMessage Received(string name, string type, byte[] attachment) => new(
            [new MailboxAddress("", "noreply@reporter.test")], [new MailboxAddress("", "reports@example.org")], "Report Domain: sender.test",
            new Multipart("mixed") { new MimePart(type) { Content = new MimeContent(new MemoryStream(attachment)), FileName = name, ContentTransferEncoding = ContentEncoding.Base64 } });
        var zipped = new MemoryStream();
        using (var zip = new ZipArchive(zipped, ZipArchiveMode.Create, leaveOpen: true))
        using (var entry = new StreamWriter(zip.CreateEntry("reporter.test!sender.test!1!2.xml").Open()))
            entry.Write("<?xml version=\"1.0\"?><feedback><report_metadata><org_name>reporter.test</org_name></report_metadata>" +
                        "<policy_published><domain>sender.test</domain><p>reject</p></policy_published><record><row><source_ip>198.51.100.7</source_ip>" +
                        "<count>5</count><policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row></record></feedback>");
        Received("r.zip", "application/zip", zipped.ToArray()).WriteTo(Path.Combine(inbox, "2.mx"));
        Received("x.xml", "text/xml", Encoding.ASCII.GetBytes("<?xml version=\"1.0\"?><!DOCTYPE f [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><feedback><policy_published><domain>&x;</domain></policy_published></feedback>"))
            .WriteTo(Path.Combine(inbox, "3.mx"));
        var summary = Run.Program(Repo.Program("mailctl"), ["dmarc", "reports", "--maildir", dir["postmaster"]]);
        Assert.That(summary.ExitCode, Is.Zero, summary.Stderr);
        var lines = summary.Stdout.Split('\n');
        Assert.That(lines[0], Is.EqualTo("sender.test: 2 reports from mx.example.org, reporter.test; 8 messages: 2 pass DMARC, 6 fail"));
        Assert.That(lines.Select(l => System.Text.RegularExpressions.Regex.Replace(l.Trim(), @"\s+", " ")),
            Is.SupersetOf(new[] { "198.51.100.7 5 0 5 reject", "127.0.0.1 2 2 0 none", "192.0.2.66 1 0 1 reject" }));
        Assert.That(summary.Stdout, Does.Not.Contain("root:"));
    }
}
