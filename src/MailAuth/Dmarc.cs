// DMARC (RFC 7489): the policy record of the From domain or, failing that,
// of its organizational domain (Public Suffix List), relaxed or strict
// alignment of the SPF and DKIM identities, p, sp and pct; and ARC (RFC 8617)
// with MimeKit's verifier, whose chain a forwarder we trust can use to vouch
// for a message that failed DMARC after it was forwarded (as the large
// providers count it: the override is "trusted_forwarder", RFC 7489 B.2.2).
using System.Globalization;
using MimeKit;
using MimeKit.Cryptography;

namespace Mail.MailAuth;

public enum DmarcPolicy { None, Quarantine, Reject }

public sealed record DmarcRecord(DmarcPolicy P, DmarcPolicy? Sp, int Pct, bool StrictDkim, bool StrictSpf, string Rua)
{
    /// <summary>Parses a TXT record; null when it is not a usable DMARC record (RFC 7489 6.6.3).</summary>
    public static DmarcRecord? Parse(string text)
    {
        if (!text.StartsWith("v=DMARC1", StringComparison.Ordinal)) return null;
        var first = text.Split(';')[0].Trim();
        if (first != "v=DMARC1") return null;
        var tags = Tags.Parse(text);
        static DmarcPolicy? Policy(string? v) => v?.ToLowerInvariant() switch
        {
            "none" => DmarcPolicy.None, "quarantine" => DmarcPolicy.Quarantine, "reject" => DmarcPolicy.Reject, _ => null,
        };
        tags.TryGetValue("rua", out var rua);
        var p = Policy(tags.GetValueOrDefault("p"));
        if (p == null)
        {
            if (string.IsNullOrEmpty(rua)) return null;
            p = DmarcPolicy.None; // 6.6.3: an invalid p with a valid rua is p=none
        }
        int pct = 100;
        if (tags.TryGetValue("pct", out var pctText) && int.TryParse(pctText, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) pct = Math.Clamp(n, 0, 100);
        return new DmarcRecord(p.Value, Policy(tags.GetValueOrDefault("sp")), pct,
            tags.GetValueOrDefault("adkim", "r").Equals("s", StringComparison.OrdinalIgnoreCase),
            tags.GetValueOrDefault("aspf", "r").Equals("s", StringComparison.OrdinalIgnoreCase), rua ?? "");
    }

    public static string Name(DmarcPolicy p) => p.ToString().ToLowerInvariant();
}

/// <param name="Result">pass, fail, none, temperror or permerror.</param>
/// <param name="Disposition">What the policy asks for this message, after pct and any override.</param>
public sealed record DmarcOutcome(string Result, string FromDomain, DmarcRecord? Record, DmarcPolicy Policy, DmarcPolicy Disposition,
    bool SpfAligned, bool DkimAligned, string? Reason, string? Override = null);

public sealed record ArcOutcome(string Result, int Instances, string? SealerDomain, string? Reason, bool ClaimsDmarcPass);

public sealed class DmarcChecker(DnsResolver dns, PublicSuffixList psl)
{
    public PublicSuffixList Suffixes => psl;

    public async Task<DmarcOutcome> CheckAsync(MimeMessage message, SpfOutcome spf, IReadOnlyList<DkimOutcome> dkim, CancellationToken ct)
    {
        var fromHeaders = message.Headers.Count(h => h.Id == HeaderId.From);
        var domains = message.From.Mailboxes.Select(m => m.Domain.ToLowerInvariant().TrimEnd('.')).Where(d => d.Length > 0).Distinct().ToList();
        if (fromHeaders != 1 || domains.Count != 1)
            return new DmarcOutcome("permerror", domains.FirstOrDefault() ?? "", null, DmarcPolicy.None, DmarcPolicy.None, false, false,
                fromHeaders == 0 || domains.Count == 0 ? "no author domain in From" : "more than one From domain");
        var from = domains[0];
        var org = psl.OrganizationalDomain(from);
        var (status, record) = await LookupAsync(from, ct).ConfigureAwait(false);
        bool atOrg = false;
        if (status == DnsStatus.TempError) return new DmarcOutcome("temperror", from, null, DmarcPolicy.None, DmarcPolicy.None, false, false, "DNS error");
        if (record == null && !org.Equals(from, StringComparison.OrdinalIgnoreCase))
        {
            (status, record) = await LookupAsync(org, ct).ConfigureAwait(false);
            if (status == DnsStatus.TempError) return new DmarcOutcome("temperror", from, null, DmarcPolicy.None, DmarcPolicy.None, false, false, "DNS error");
            atOrg = true;
        }
        bool Aligned(string domain, bool strict) =>
            strict ? domain.Equals(from, StringComparison.OrdinalIgnoreCase) : psl.OrganizationalDomain(domain).Equals(org, StringComparison.OrdinalIgnoreCase);
        bool spfAligned = spf.Result == SpfResult.Pass && Aligned(spf.Domain, record?.StrictSpf ?? false);
        bool dkimAligned = dkim.Any(d => d.Trusted && Aligned(d.Domain, record?.StrictDkim ?? false));
        if (record == null) return new DmarcOutcome("none", from, null, DmarcPolicy.None, DmarcPolicy.None, spfAligned, dkimAligned, "no DMARC record");
        var policy = atOrg && record.Sp is { } sp ? sp : record.P;
        if (spfAligned || dkimAligned) return new DmarcOutcome("pass", from, record, policy, DmarcPolicy.None, spfAligned, dkimAligned, null);
        var disposition = policy;
        // pct (6.6.4): a message outside the sample gets the next policy down.
        if (record.Pct < 100 && Random.Shared.Next(100) >= record.Pct)
            disposition = policy == DmarcPolicy.Reject ? DmarcPolicy.Quarantine : DmarcPolicy.None;
        return new DmarcOutcome("fail", from, record, policy, disposition, false, false, null);
    }

    private async Task<(DnsStatus, DmarcRecord?)> LookupAsync(string domain, CancellationToken ct)
    {
        var txt = await dns.TxtAsync("_dmarc." + domain, ct).ConfigureAwait(false);
        if (txt.Status == DnsStatus.TempError) return (DnsStatus.TempError, null);
        var records = txt.Records.Where(r => r.StartsWith("v=DMARC1", StringComparison.Ordinal)).ToList();
        return records.Count == 1 ? (DnsStatus.Ok, DmarcRecord.Parse(records[0])) : (txt.Status, null); // several records: none applies (6.6.3)
    }

    /// <summary>The ARC chain (RFC 8617), and whether its newest set vouches for DMARC.</summary>
    public static async Task<ArcOutcome> VerifyArcAsync(DnsResolver dns, MimeMessage message, CancellationToken ct)
    {
        var sets = message.Headers.Count(h => h.Id == HeaderId.ArcSeal);
        if (sets == 0) return new ArcOutcome("none", 0, null, null, false);
        var locator = new DkimChecker.KeyLocator(dns, ct);
        ArcValidationResult result;
        try { result = await new ArcVerifier(locator).VerifyAsync(message, ct).ConfigureAwait(false); }
        catch (DkimChecker.KeyException e) { return new ArcOutcome(e.Temporary ? "temperror" : "fail", sets, null, e.Message, false); }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or Org.BouncyCastle.Crypto.CryptoException)
        {
            return new ArcOutcome("fail", sets, null, e.Message, false);
        }
        if (result.Chain != ArcSignatureValidationResult.Pass)
            return new ArcOutcome(result.Chain == ArcSignatureValidationResult.None ? "none" : "fail", sets, null,
                result.ChainErrors.ToString(), false);
        // The newest set: its sealer, and what its ARC-Authentication-Results said on arrival there.
        var seal = message.Headers.Where(h => h.Id == HeaderId.ArcSeal).Select(h => Tags.Parse(h.Value))
            .OrderByDescending(t => int.TryParse(t.GetValueOrDefault("i"), out var i) ? i : 0).First();
        var instance = seal.GetValueOrDefault("i", "");
        var aar = message.Headers.Where(h => h.Id == HeaderId.ArcAuthenticationResults)
            .FirstOrDefault(h => Tags.Parse(h.Value).GetValueOrDefault("i") == instance)?.Value ?? "";
        bool dmarcPass = aar.Split(';').Any(c => c.Trim().StartsWith("dmarc=pass", StringComparison.OrdinalIgnoreCase));
        return new ArcOutcome("pass", sets, seal.GetValueOrDefault("d"), null, dmarcPass);
    }
}

/// <summary>
/// Every DMARC evaluation, one line each, for the aggregate reports the outbound side sends
/// (RFC 7489 7.2): a file per day, tab-separated, appended without fsync (a report is a summary).
/// </summary>
public sealed class DmarcRecorder(string directory)
{
    private readonly Lock _lock = new();

    public void Record(System.Net.IPAddress ip, string envelopeFrom, SpfOutcome spf, IReadOnlyList<DkimOutcome> dkim, DmarcOutcome dmarc)
    {
        if (dmarc.Record == null) return;
        var now = DateTimeOffset.UtcNow;
        var r = dmarc.Record;
        var line = string.Join('\t',
            now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture), ip.ToString(), dmarc.FromDomain, Clean(envelopeFrom),
            $"p={DmarcRecord.Name(r.P)}", $"sp={(r.Sp is { } sp ? DmarcRecord.Name(sp) : "")}", $"pct={r.Pct}",
            $"adkim={(r.StrictDkim ? "s" : "r")}", $"aspf={(r.StrictSpf ? "s" : "r")}",
            $"disposition={DmarcRecord.Name(dmarc.Disposition)}", $"dkim_aligned={(dmarc.DkimAligned ? "pass" : "fail")}",
            $"spf_aligned={(dmarc.SpfAligned ? "pass" : "fail")}", $"override={dmarc.Override ?? ""}",
            $"spf={spf.Domain}:{SpfOutcome.Name(spf.Result)}",
            "dkim=" + string.Join(',', dkim.Select(d => $"{d.Domain}:{d.Selector}:{d.Result}")), $"rua={Clean(r.Rua)}");
        try
        {
            lock (_lock)
            {
                Directory.CreateDirectory(directory);
                File.AppendAllText(Path.Combine(directory, now.ToString("yyyyMMdd", CultureInfo.InvariantCulture) + ".tsv"), line + "\n");
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static string Clean(string s) => new(s.Where(ch => ch is > ' ' and <= '~').Take(320).ToArray());
}
