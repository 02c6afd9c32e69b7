// DMARC aggregate reports (RFC 7489 7.2, appendix C): the evaluations the MX
// kept for a day (DmarcRecorder's lines) become one XML report per domain
// whose record asks for them (rua=mailto:), rows grouped by source address
// and result, gzipped, in a message from our postmaster. A rua address in
// another organization's domain is used only when that domain publishes
// POLICYDOMAIN._report._dmarc.RUADOMAIN (7.1), so that nobody can point our
// reports at a stranger. The recorded lines came from strangers' DNS and
// headers: fields are checked and XML-escaped by the writer.
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Xml;
using MimeKit;

namespace Mail.MailAuth;

/// <summary>One report to send: its domain, the checked mailto: addresses, the message.</summary>
public sealed record DmarcReport(string Domain, IReadOnlyList<string> Recipients, MimeMessage Message, int Rows, int Messages);

public sealed class DmarcReports(DnsResolver dns, PublicSuffixList psl, string hostname, string postmaster)
{
    public const int MaxRecipients = 2, MaxRowsPerReport = 10_000, MaxDomains = 10_000, MaxRows = 200_000;

    private sealed record Line(string Ip, string Domain, string Policy, string Sp, string Pct, string Adkim, string Aspf, string Disposition,
        string DkimAligned, string SpfAligned, string Spf, string Dkim, string Rua);

    /// <summary>The reports for the day of <paramref name="file"/> (a YYYYMMDD.tsv of DmarcRecorder).</summary>
    public async Task<List<DmarcReport>> BuildAsync(string file, CancellationToken ct)
    {
        var day = DateTime.ParseExact(Path.GetFileNameWithoutExtension(file), "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
        var begin = new DateTimeOffset(day, TimeSpan.Zero);
        // Counted while read: a busy MX records a line per message, a day's file is not held whole.
        var domains = new Dictionary<string, (Line Last, Dictionary<(string, string, string, string, string, string), (Line Row, int Count)> Rows)>(StringComparer.Ordinal);
        int totalRows = 0;
        foreach (var raw in File.ReadLines(file))
        {
            var f = raw.Split('\t');
            if (f.Length < 16) continue;
            string V(int i, string key) => f[i].StartsWith(key + "=", StringComparison.Ordinal) ? f[i][(key.Length + 1)..] : "";
            if (!System.Net.IPAddress.TryParse(f[1], out _) || !DnsResolver.IsQueryable(f[2])) continue;
            var line = new Line(f[1], f[2].ToLowerInvariant(), V(4, "p"), V(5, "sp"), V(6, "pct"), V(7, "adkim"), V(8, "aspf"), V(9, "disposition"),
                V(10, "dkim_aligned"), V(11, "spf_aligned"), V(13, "spf"), V(14, "dkim"), V(15, "rua"));
            if (!domains.TryGetValue(line.Domain, out var entry))
            {
                if (domains.Count >= MaxDomains) continue;
                entry = (line, []);
            }
            var key = (line.Ip, line.Disposition, line.DkimAligned, line.SpfAligned, line.Spf, line.Dkim);
            if (entry.Rows.TryGetValue(key, out var counted)) entry.Rows[key] = (counted.Row, counted.Count + 1);
            else if (entry.Rows.Count < MaxRowsPerReport && totalRows < MaxRows) { entry.Rows[key] = (line, 1); totalRows++; }
            domains[line.Domain] = (line, entry.Rows); // the record as it stood at the day's last message
        }
        var reports = new List<DmarcReport>();
        foreach (var (domain, (last, counted)) in domains)
        {
            var recipients = new List<string>();
            foreach (var uri in last.Rua.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Take(MaxRecipients))
            {
                if (!uri.StartsWith("mailto:", StringComparison.OrdinalIgnoreCase)) continue;
                var address = Uri.UnescapeDataString(uri[7..].Split('!')[0]); // "!10m": a size limit, ours are far below
                if (!Mail.Shared.Smtp.MailAddress.TryParse(address, out var parsed)) continue;
                if (!await AcceptsReportsAsync(domain, parsed.Domain, ct)) continue;
                recipients.Add(parsed.ToString());
            }
            if (recipients.Count == 0) continue;
            var rows = counted.Values.ToList();
            var id = $"{domain}.{begin:yyyyMMdd}.{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}";
            var xml = Xml(domain, last, rows, id, begin, begin.AddDays(1).AddSeconds(-1));
            reports.Add(new DmarcReport(domain, recipients, Message(domain, recipients, id, begin, xml), rows.Count, rows.Sum(r => r.Count)));
        }
        return reports;
    }

    /// <summary>RFC 7489 7.1: a rua address outside the policy domain's organization must be vouched for by its own domain.</summary>
    private async Task<bool> AcceptsReportsAsync(string policyDomain, string ruaDomain, CancellationToken ct)
    {
        if (psl.OrganizationalDomain(policyDomain).Equals(psl.OrganizationalDomain(ruaDomain), StringComparison.OrdinalIgnoreCase)) return true;
        var txt = await dns.TxtAsync($"{policyDomain}._report._dmarc.{ruaDomain}", ct).ConfigureAwait(false);
        return txt.Records.Any(r => r.StartsWith("v=DMARC1", StringComparison.Ordinal));
    }

    private byte[] Xml(string domain, Line policy, List<(Line Row, int Count)> rows, string id, DateTimeOffset begin, DateTimeOffset end)
    {
        using var buffer = new MemoryStream();
        using (var w = XmlWriter.Create(buffer, new XmlWriterSettings { Encoding = new UTF8Encoding(false), Indent = true }))
        {
            w.WriteStartDocument();
            w.WriteStartElement("feedback");
            w.WriteStartElement("report_metadata");
            w.WriteElementString("org_name", hostname);
            w.WriteElementString("email", postmaster);
            w.WriteElementString("report_id", id);
            w.WriteStartElement("date_range");
            w.WriteElementString("begin", begin.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
            w.WriteElementString("end", end.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteStartElement("policy_published");
            w.WriteElementString("domain", domain);
            w.WriteElementString("adkim", policy.Adkim is "s" ? "s" : "r");
            w.WriteElementString("aspf", policy.Aspf is "s" ? "s" : "r");
            w.WriteElementString("p", Policy(policy.Policy));
            w.WriteElementString("sp", Policy(policy.Sp.Length > 0 ? policy.Sp : policy.Policy));
            w.WriteElementString("pct", int.TryParse(policy.Pct, out var pct) && pct is >= 0 and <= 100 ? pct.ToString(CultureInfo.InvariantCulture) : "100");
            w.WriteEndElement();
            foreach (var (row, count) in rows)
            {
                w.WriteStartElement("record");
                w.WriteStartElement("row");
                w.WriteElementString("source_ip", row.Ip);
                w.WriteElementString("count", count.ToString(CultureInfo.InvariantCulture));
                w.WriteStartElement("policy_evaluated");
                w.WriteElementString("disposition", Policy(row.Disposition));
                w.WriteElementString("dkim", row.DkimAligned == "pass" ? "pass" : "fail");
                w.WriteElementString("spf", row.SpfAligned == "pass" ? "pass" : "fail");
                w.WriteEndElement();
                w.WriteEndElement();
                w.WriteStartElement("identifiers");
                w.WriteElementString("header_from", domain);
                w.WriteEndElement();
                w.WriteStartElement("auth_results");
                foreach (var sig in row.Dkim.Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    var p = sig.Split(':');
                    if (p.Length != 3 || !DnsResolver.IsQueryable(p[0])) continue;
                    w.WriteStartElement("dkim");
                    w.WriteElementString("domain", p[0]);
                    w.WriteElementString("selector", Printable(p[1]));
                    w.WriteElementString("result", DkimResult(p[2]));
                    w.WriteEndElement();
                }
                var spf = row.Spf.Split(':');
                w.WriteStartElement("spf");
                w.WriteElementString("domain", spf.Length == 2 && DnsResolver.IsQueryable(spf[0]) ? spf[0] : "");
                w.WriteElementString("result", spf.Length == 2 && spf[1] is "none" or "neutral" or "pass" or "fail" or "softfail" or "temperror" or "permerror" ? spf[1] : "none");
                w.WriteEndElement();
                w.WriteEndElement();
                w.WriteEndElement();
            }
            w.WriteEndElement();
            w.WriteEndDocument();
        }
        return buffer.ToArray();
    }

    private static string Policy(string p) => p is "none" or "quarantine" or "reject" ? p : "none";

    private static string DkimResult(string r) => r is "none" or "pass" or "fail" or "policy" or "neutral" or "temperror" or "permerror" ? r : "neutral";

    private static string Printable(string s) => new(s.Where(ch => ch is > ' ' and <= '~').Take(64).ToArray());

    /// <summary>RFC 7489 7.2.1.1: the report gzipped as receiver!policy-domain!begin!end.xml.gz.</summary>
    private MimeMessage Message(string domain, IReadOnlyList<string> recipients, string id, DateTimeOffset begin, byte[] xml)
    {
        using var gz = new MemoryStream();
        using (var zip = new GZipStream(gz, CompressionLevel.Optimal, leaveOpen: true)) zip.Write(xml);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(postmaster));
        foreach (var r in recipients) message.To.Add(MailboxAddress.Parse(r));
        message.Subject = $"Report Domain: {domain} Submitter: {hostname} Report-ID: <{id}>";
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = $"{id}@{hostname}";
        var body = new Multipart("mixed")
        {
            new TextPart("plain") { Text = $"DMARC aggregate report for {domain} from {hostname}, {begin:yyyy-MM-dd} (UTC).\r\n" },
            new MimePart("application", "gzip")
            {
                Content = new MimeContent(new MemoryStream(gz.ToArray())),
                ContentDisposition = new ContentDisposition(ContentDisposition.Attachment),
                ContentTransferEncoding = ContentEncoding.Base64,
                FileName = $"{hostname}!{domain}!{begin.ToUnixTimeSeconds()}!{begin.AddDays(1).AddSeconds(-1).ToUnixTimeSeconds()}.xml.gz",
            },
        };
        message.Body = body;
        return message;
    }
}

/// <summary>One row of a received aggregate report.</summary>
public sealed record DmarcFeedbackRow(string SourceIp, long Count, string Disposition, bool DkimAligned, bool SpfAligned);

/// <summary>An aggregate report others sent us: who sent it, for which domain, its rows.</summary>
public sealed record DmarcFeedback(string Reporter, string Domain, IReadOnlyList<DmarcFeedbackRow> Rows)
{
    public const long MaxXml = 50 << 20;
    public const int MaxRows = 100_000;

    /// <summary>
    /// The report in an attachment's decoded bytes (gzip, zip or plain XML); null when it is none.
    /// A stranger's file: no DTD, bounded size after decompression, bounded rows.
    /// </summary>
    public static DmarcFeedback? Read(byte[] attachment)
    {
        try
        {
            Stream xml;
            if (attachment.Length > 2 && attachment[0] == 0x1f && attachment[1] == 0x8b) xml = new GZipStream(new MemoryStream(attachment), CompressionMode.Decompress);
            else if (attachment.Length > 4 && attachment[0] == 'P' && attachment[1] == 'K')
            {
                var zip = new ZipArchive(new MemoryStream(attachment), ZipArchiveMode.Read);
                var entry = zip.Entries.FirstOrDefault(e => e.Name.EndsWith(".xml", StringComparison.OrdinalIgnoreCase));
                if (entry == null || entry.Length > MaxXml) return null;
                xml = entry.Open();
            }
            else xml = new MemoryStream(attachment);
            using var reader = XmlReader.Create(xml, new XmlReaderSettings
            {
                DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = MaxXml, IgnoreWhitespace = true, IgnoreComments = true,
            });
            string reporter = "", domain = "";
            var rows = new List<DmarcFeedbackRow>();
            string? ip = null, disposition = null, dkim = null, spf = null;
            long count = 0;
            var path = new List<string>();
            while (reader.Read())
            {
                if (reader.NodeType == XmlNodeType.Element)
                {
                    if (!reader.IsEmptyElement) path.Add(reader.LocalName);
                    if (path.Count > 16) return null;
                    if (path is [_, "record"] && reader.LocalName == "record") (ip, disposition, dkim, spf, count) = (null, null, null, null, 0);
                }
                else if (reader.NodeType == XmlNodeType.Text)
                {
                    var at = string.Join('/', path.Skip(1));
                    var text = reader.Value.Trim();
                    switch (at)
                    {
                        case "report_metadata/org_name": reporter = text; break;
                        case "policy_published/domain": domain = text.ToLowerInvariant(); break;
                        case "record/row/source_ip": ip = text; break;
                        case "record/row/count": long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out count); break;
                        case "record/row/policy_evaluated/disposition": disposition = text; break;
                        case "record/row/policy_evaluated/dkim": dkim = text; break;
                        case "record/row/policy_evaluated/spf": spf = text; break;
                    }
                }
                else if (reader.NodeType == XmlNodeType.EndElement)
                {
                    if (path is [_, "record"] && ip != null && System.Net.IPAddress.TryParse(ip, out _) && rows.Count < MaxRows)
                        rows.Add(new DmarcFeedbackRow(ip, count, disposition ?? "none", dkim == "pass", spf == "pass"));
                    if (path.Count > 0) path.RemoveAt(path.Count - 1);
                }
            }
            return domain.Length > 0 && DnsResolver.IsQueryable(domain) ? new DmarcFeedback(reporter, domain, rows) : null;
        }
        catch (Exception e) when (e is XmlException or InvalidDataException or IOException or NotSupportedException) { return null; }
    }
}
