// The checks of mail arriving on the MX, in the order SMTP gives their
// inputs: the client (reverse DNS, HELO, DNS lists) from the connection on,
// SPF once MAIL FROM is known (its verdict applied at RCPT, as Postfix's
// policy services are), and DKIM, ARC and DMARC at the end of the data. Each
// check has an action (reject, junk, tag, off); a temporary DNS failure never
// rejects for good: it is a 4xx where the check would reject, else a tag.
// mtad and mailctl's `check` commands both run this code.
using System.Net;
using Mail.Shared.Smtp;
using MimeKit;

namespace Mail.MailAuth;

public enum CheckAction { Off, Tag, Junk, Reject }

public sealed record InboundPolicy(
    CheckAction Spf, CheckAction Dkim, CheckAction Dmarc, CheckAction ReverseClient, CheckAction ClientHostname,
    CheckAction HeloSyntax, CheckAction HeloHostname, CheckAction Dnsbl, IReadOnlyList<DnsblSite> DnsblSites, int DnsblThreshold,
    IReadOnlyList<string> ArcTrustedSealers, TimeSpan Deadline)
{
    /// <summary>As a careful administrator starts: DMARC policy honoured, the rest tagged.</summary>
    public static readonly InboundPolicy Default = new(CheckAction.Tag, CheckAction.Tag, CheckAction.Reject, CheckAction.Tag, CheckAction.Tag,
        CheckAction.Tag, CheckAction.Tag, CheckAction.Reject, [], 1, [], TimeSpan.FromSeconds(20));

    public static CheckAction ParseAction(string text) => text.Trim().ToLowerInvariant() switch
    {
        "off" or "no" => CheckAction.Off, "tag" => CheckAction.Tag, "junk" => CheckAction.Junk, "reject" => CheckAction.Reject,
        _ => throw new FormatException($"'{text}' is not one of reject, junk, tag, off"),
    };
}

/// <summary>What is known of the client before its first RCPT.</summary>
public sealed record ClientResults(IPAddress Ip, string Helo, ReverseOutcome? Reverse, Check? HeloExists, DnsblOutcome? Dnsbl);

/// <summary>A decision: go on (with tags), or refuse with this reply.</summary>
public sealed record Verdict(SmtpReply? Refusal, IReadOnlyList<string> Junk, IReadOnlyList<string> Tags, string Log)
{
    public bool Refused => Refusal != null;
}

public sealed record MessageResults(Verdict Verdict, string Headers, IReadOnlyList<DkimOutcome> Dkim, ArcOutcome Arc, DmarcOutcome? Dmarc);

public sealed class InboundChecks(DnsResolver dns, PublicSuffixList psl, string hostname, InboundPolicy policy, DmarcRecorder? recorder)
{
    private readonly SpfChecker _spf = new(dns, hostname);
    private readonly DkimChecker _dkim = new(dns);
    private readonly DmarcChecker _dmarc = new(dns, psl);
    private readonly ClientChecker _client = new(dns);

    public InboundPolicy Policy => policy;
    public SpfChecker Spf => _spf;
    public string Hostname => hostname;

    private CancellationTokenSource Deadline(CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(policy.Deadline);
        return cts;
    }

    /// <summary>Reverse DNS and DNS lists of the address; started when the client connects.</summary>
    public async Task<(ReverseOutcome? Reverse, DnsblOutcome? Dnsbl)> CheckAddressAsync(IPAddress ip, CancellationToken ct)
    {
        using var cts = Deadline(ct);
        var reverse = policy.ReverseClient != CheckAction.Off || policy.ClientHostname != CheckAction.Off ? Guard(_client.ReverseAsync(ip, cts.Token), new ReverseOutcome(Check.TempError, Check.TempError, null)) : null;
        var dnsbl = policy.Dnsbl != CheckAction.Off && policy.DnsblSites.Count > 0 ? Guard(_client.DnsblAsync(ip, policy.DnsblSites, cts.Token), new DnsblOutcome(0, [], ["time-out"])) : null;
        return (reverse == null ? null : await reverse.ConfigureAwait(false), dnsbl == null ? null : await dnsbl.ConfigureAwait(false));
    }

    public async Task<Check?> CheckHeloAsync(string helo, CancellationToken ct)
    {
        if (policy.HeloHostname == CheckAction.Off) return null;
        using var cts = Deadline(ct);
        return await Guard(_client.HeloExistsAsync(helo, cts.Token), Check.TempError).ConfigureAwait(false);
    }

    private static async Task<T> Guard<T>(Task<T> task, T onTimeout)
    {
        try { return await task.ConfigureAwait(false); }
        catch (OperationCanceledException) { return onTimeout; }
    }

    /// <summary>SPF for MAIL FROM (or HELO when the sender is empty), and for HELO.</summary>
    public async Task<(SpfOutcome MailFrom, SpfOutcome Helo)> CheckSpfAsync(IPAddress ip, string sender, string helo, CancellationToken ct)
    {
        using var cts = Deadline(ct);
        var heloTask = _spf.CheckHeloAsync(ip, helo, cts.Token);
        var mailFrom = sender.Length == 0 ? await heloTask.ConfigureAwait(false) : await _spf.CheckMailFromAsync(ip, sender, helo, cts.Token).ConfigureAwait(false);
        return (mailFrom, await heloTask.ConfigureAwait(false));
    }

    /// <summary>The verdict at RCPT: client checks and SPF (RFC 7208 8, RFC 7372 for the codes).</summary>
    public Verdict AtRcpt(ClientResults client, SpfOutcome? spf)
    {
        var junk = new List<string>();
        var tags = new List<string>();
        SmtpReply? refusal = null;
        var ip = client.Ip;
        void Act(CheckAction action, string name, SmtpReply reject, bool temporary)
        {
            if (action == CheckAction.Off) return;
            if (action == CheckAction.Reject) { refusal ??= reject; return; }
            if (action == CheckAction.Junk && !temporary) junk.Add(name);
            else tags.Add(name);
        }
        if (policy.HeloSyntax != CheckAction.Off && !ClientChecker.IsValidHelo(client.Helo))
            Act(policy.HeloSyntax, "helo-invalid", new SmtpReply(501, "5.5.2", $"<{Printable(client.Helo)}>: Helo command rejected: Invalid name"), false);
        if (client.Dnsbl is { } bl && bl.Score >= policy.DnsblThreshold && bl.Listed.Count > 0)
            Act(policy.Dnsbl, "dnsbl", new SmtpReply(554, "5.7.1", $"Service unavailable; client [{ip}] blocked using {string.Join(", ", bl.Listed)}"), false);
        if (client.Reverse is { } rev)
        {
            if (rev.Reverse != Check.Pass)
                Act(policy.ReverseClient, "no-ptr", new SmtpReply(450, "4.7.25", $"Client host rejected: cannot find your reverse hostname, [{ip}]"), rev.Reverse == Check.TempError);
            else if (rev.Forward != Check.Pass)
                Act(policy.ClientHostname, "no-fcrdns", new SmtpReply(450, "4.7.25", $"Client host rejected: cannot find your hostname, [{ip}]"), rev.Forward == Check.TempError);
        }
        if (client.HeloExists is { } helo && helo != Check.Pass)
            Act(policy.HeloHostname, "helo-unknown", new SmtpReply(450, "4.7.1", $"<{Printable(client.Helo)}>: Helo command rejected: Host not found"), helo == Check.TempError);
        if (spf != null && policy.Spf != CheckAction.Off)
        {
            var who = Printable(spf.Sender);
            if (spf.Result == SpfResult.Fail)
                Act(policy.Spf, "spf-fail", new SmtpReply(550, "5.7.23", $"<{who}>: Recipient address rejected: SPF fail - not authorized" +
                    (spf.Explanation != null ? ": " + Printable(spf.Explanation) : $". Please see http://www.open-spf.org/Why;id={who};ip={ip};r={hostname}")), false);
            else if (spf.Result == SpfResult.TempError && policy.Spf == CheckAction.Reject)
                refusal ??= new SmtpReply(451, "4.7.24", $"<{who}>: Recipient address rejected: SPF temporary error, try again later");
            else if (spf.Result == SpfResult.SoftFail) tags.Add("spf-softfail");
        }
        return new Verdict(refusal, junk, tags, "");
    }

    /// <summary>DKIM, ARC and DMARC of the whole message, the verdict, and the headers to add (Authentication-Results, Received-SPF).</summary>
    public async Task<MessageResults> CheckMessageAsync(MimeMessage message, ClientResults client, string sender, SpfOutcome? spf, SpfOutcome? heloSpf, Verdict atRcpt, CancellationToken ct)
    {
        using var cts = Deadline(ct);
        var dkim = policy.Dkim == CheckAction.Off && policy.Dmarc == CheckAction.Off ? [] : await GuardList(_dkim.VerifyAsync(message, cts.Token)).ConfigureAwait(false);
        var arc = policy.Dmarc == CheckAction.Off ? new ArcOutcome("none", 0, null, null, false)
            : await Guard(DmarcChecker.VerifyArcAsync(dns, message, cts.Token), new ArcOutcome("temperror", 0, null, "time-out", false)).ConfigureAwait(false);
        DmarcOutcome? dmarc = null;
        if (policy.Dmarc != CheckAction.Off && spf != null)
        {
            dmarc = await Guard(_dmarc.CheckAsync(message, spf, dkim, cts.Token),
                new DmarcOutcome("temperror", "", null, DmarcPolicy.None, DmarcPolicy.None, false, false, "time-out")).ConfigureAwait(false);
            if (dmarc.Result == "fail" && dmarc.Disposition != DmarcPolicy.None && arc.Result == "pass" && arc.ClaimsDmarcPass
                && arc.SealerDomain is { } sealer && policy.ArcTrustedSealers.Contains(sealer, StringComparer.OrdinalIgnoreCase))
                dmarc = dmarc with { Disposition = DmarcPolicy.None, Override = "trusted_forwarder" };
            recorder?.Record(client.Ip, sender, spf, dkim, dmarc);
        }

        var junk = new List<string>(atRcpt.Junk);
        var tags = new List<string>(atRcpt.Tags);
        SmtpReply? refusal = null;
        if (dmarc is { Result: "fail" } failed && failed.Disposition != DmarcPolicy.None)
        {
            var honoured = policy.Dmarc == CheckAction.Reject && failed.Disposition == DmarcPolicy.Reject;
            if (honoured) refusal = new SmtpReply(550, "5.7.1", $"Rejected by DMARC policy for {Printable(failed.FromDomain)}");
            else if (policy.Dmarc is CheckAction.Reject or CheckAction.Junk) junk.Add("dmarc-" + DmarcRecord.Name(failed.Disposition));
            else tags.Add("dmarc-fail");
        }
        bool dkimFailed = dkim.Count > 0 && !dkim.Any(d => d.Result == "pass") && dkim.Any(d => d.Result == "fail");
        if (dkimFailed && policy.Dkim != CheckAction.Off)
        {
            if (policy.Dkim == CheckAction.Reject) refusal ??= new SmtpReply(550, "5.7.20", "No passing DKIM signature found");
            else if (policy.Dkim == CheckAction.Junk) junk.Add("dkim-fail");
            else tags.Add("dkim-fail");
        }

        var results = new AuthResults(hostname);
        if (client.Reverse is { } rev)
            results.Add("iprev", rev.Forward switch { Check.Pass => "pass", Check.TempError => "temperror", _ => rev.Reverse == Check.TempError ? "temperror" : "fail" },
                rev.Name, ("policy.iprev", client.Ip.ToString()));
        if (spf != null) AddSpf(results, spf, heloSpf, sender, client.Helo);
        if (policy.Dkim != CheckAction.Off || policy.Dmarc != CheckAction.Off) AddDkim(results, dkim);
        if (arc.Instances > 0) results.Add("arc", arc.Result, arc.SealerDomain != null ? $"i={arc.Instances} d={arc.SealerDomain}" : arc.Reason);
        if (dmarc != null)
        {
            var reason = dmarc.Record == null ? dmarc.Reason
                : $"p={DmarcRecord.Name(dmarc.Policy)} dis={DmarcRecord.Name(dmarc.Disposition)}" + (dmarc.Override != null ? $" override={dmarc.Override}" : "");
            results.Add("dmarc", dmarc.Result, reason, ("header.from", dmarc.FromDomain));
        }

        var headers = new System.Text.StringBuilder();
        if (spf != null) headers.Append(ReceivedSpfHeader(sender.Length > 0 || heloSpf == null ? spf : heloSpf, client.Ip, client.Helo));
        headers.Append(results.Header);
        if (refusal == null && junk.Count > 0)
            headers.Append("X-Spam-Flag: YES\r\nX-Spam-Status: Yes, reasons=").Append(string.Join(',', junk.Concat(tags))).Append("\r\n");
        else if (refusal == null && tags.Count > 0)
            headers.Append("X-Spam-Status: No, tags=").Append(string.Join(',', tags)).Append("\r\n");

        var log = $"iprev={(client.Reverse == null ? "off" : client.Reverse.Forward.ToString().ToLowerInvariant())}" +
                  $", spf={(spf == null ? "off" : SpfOutcome.Name(spf.Result) + " (" + spf.Identity + " " + Printable(spf.Sender) + ")")}" +
                  $", dkim={(dkim.Count == 0 ? "none" : string.Join(' ', dkim.Select(d => $"{d.Result}(d={Printable(d.Domain)} s={Printable(d.Selector)})")))}" +
                  $", arc={arc.Result}{(arc.SealerDomain != null ? "(d=" + Printable(arc.SealerDomain) + ")" : "")}" +
                  $", dmarc={(dmarc == null ? "off" : $"{dmarc.Result} (from={Printable(dmarc.FromDomain)} p={(dmarc.Record == null ? "-" : DmarcRecord.Name(dmarc.Policy))} dis={DmarcRecord.Name(dmarc.Disposition)}{(dmarc.Override != null ? " override=" + dmarc.Override : "")})")}" +
                  $", dnsbl={(client.Dnsbl == null ? "off" : client.Dnsbl.Score.ToString(System.Globalization.CultureInfo.InvariantCulture))}" +
                  $", action={(refusal != null ? "reject" : junk.Count > 0 ? "junk" : "accept")}" +
                  (junk.Count + tags.Count > 0 ? $" ({string.Join(',', junk.Concat(tags))})" : "");
        return new MessageResults(new Verdict(refusal, junk, tags, log), headers.ToString(), dkim, arc, dmarc);
    }

    /// <summary>The spf clauses: smtp.mailfrom, and smtp.helo when it says something (or stands in for an empty sender).</summary>
    public static void AddSpf(AuthResults results, SpfOutcome mailFrom, SpfOutcome? helo, string sender, string heloName)
    {
        if (sender.Length > 0) results.Add("spf", SpfOutcome.Name(mailFrom.Result), null, ("smtp.mailfrom", sender));
        if (helo != null && (sender.Length == 0 || helo.Result != SpfResult.None)) results.Add("spf", SpfOutcome.Name(helo.Result), null, ("smtp.helo", heloName));
    }

    /// <summary>One dkim clause per signature (RFC 8601 2.7.1, with header.a and header.b as RFC 6008 adds), or dkim=none.</summary>
    public static void AddDkim(AuthResults results, IReadOnlyList<DkimOutcome> dkim)
    {
        if (dkim.Count == 0) results.Add("dkim", "none", null);
        foreach (var d in dkim)
            results.Add("dkim", d.Result, d.Reason, ("header.d", d.Domain), ("header.s", d.Selector), ("header.a", d.Algorithm), ("header.b", d.SignaturePrefix));
    }

    /// <summary>The Received-SPF header line, folded, ending in CRLF.</summary>
    public string ReceivedSpfHeader(SpfOutcome spf, IPAddress ip, string helo) => "Received-SPF: " + Fold(_spf.ReceivedSpf(spf, ip, helo)) + "\r\n";

    /// <summary>Every DKIM signature of a message, within the deadline.</summary>
    public async Task<List<DkimOutcome>> VerifyDkimAsync(MimeMessage message, CancellationToken ct)
    {
        using var cts = Deadline(ct);
        return await GuardList(_dkim.VerifyAsync(message, cts.Token)).ConfigureAwait(false);
    }

    private static async Task<List<DkimOutcome>> GuardList(Task<List<DkimOutcome>> task)
    {
        try { return await task.ConfigureAwait(false); }
        catch (OperationCanceledException) { return [new DkimOutcome("temperror", "time-out", "", "", "", "", null, false)]; }
    }

    /// <summary>Folds a long structured header value at its "; " separators.</summary>
    private static string Fold(string value) => value.Length <= 900 ? value.Replace("; ", ";\r\n\t") : value[..900];

    /// <summary>Client or DNS text for a reply or log: printable ASCII only, bounded.</summary>
    public static string Printable(string text) => new(text.Select(ch => ch is >= ' ' and <= '~' ? ch : '?').Take(200).ToArray());
}
