// Checks of the connecting client, as Postfix names them: its reverse name
// (reject_unknown_reverse_client_hostname: a PTR record at all), that name
// resolving back to it (reject_unknown_client_hostname, "iprev" in RFC 8601),
// the HELO name's syntax (reject_invalid_helo_hostname) and existence
// (reject_unknown_helo_hostname), and DNS block- and allow-lists with weights
// and reply filters in postscreen_dnsbl_sites syntax, all queried at once.
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Mail.MailAuth;

public enum Check { Pass, Fail, TempError }

/// <param name="Reverse">A PTR record exists.</param>
/// <param name="Forward">A PTR name resolves back to the address (FCrDNS).</param>
public sealed record ReverseOutcome(Check Reverse, Check Forward, string? Name);

public sealed record DnsblOutcome(int Score, IReadOnlyList<string> Listed, IReadOnlyList<string> Errors);

/// <summary>One postscreen_dnsbl_sites entry: domain[=filter][*weight].</summary>
public sealed record DnsblSite(string Domain, string? Filter, int Weight)
{
    public static DnsblSite Parse(string text)
    {
        var t = text.Trim();
        int weight = 1;
        int star = t.LastIndexOf('*');
        if (star > 0)
        {
            if (!int.TryParse(t[(star + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out weight))
                throw new FormatException($"bad weight in DNSBL site '{text}'");
            t = t[..star];
        }
        string? filter = null;
        int eq = t.IndexOf('=');
        if (eq > 0)
        {
            filter = t[(eq + 1)..];
            t = t[..eq];
            try { _ = Matches(filter, IPAddress.Loopback); } // syntax check
            catch (FormatException) { throw new FormatException($"bad reply filter in DNSBL site '{text}'"); }
            if (Octets(filter).Count != 4) throw new FormatException($"bad reply filter in DNSBL site '{text}'");
        }
        if (!DnsResolver.IsQueryable(t)) throw new FormatException($"bad DNSBL domain '{text}'");
        return new DnsblSite(t.ToLowerInvariant(), filter, weight);
    }

    /// <summary>Postfix's reply filter: four octet patterns, each a number, or [n..m] and [a;b] lists in brackets.</summary>
    public static bool Matches(string filter, IPAddress reply)
    {
        var octets = reply.GetAddressBytes();
        var parts = Octets(filter);
        if (octets.Length != 4 || parts.Count != 4) return false;
        for (int i = 0; i < 4; i++)
            if (!OctetMatches(parts[i], octets[i])) return false;
        return true;
    }

    /// <summary>The filter's four parts: split at dots outside brackets ("127.0.0.[2..11]").</summary>
    private static List<string> Octets(string filter)
    {
        var parts = new List<string>();
        int depth = 0, start = 0;
        for (int i = 0; i < filter.Length; i++)
        {
            if (filter[i] == '[') depth++;
            else if (filter[i] == ']') depth--;
            else if (filter[i] == '.' && depth == 0) { parts.Add(filter[start..i]); start = i + 1; }
        }
        parts.Add(filter[start..]);
        return parts;
    }

    private static bool OctetMatches(string pattern, byte value)
    {
        if (pattern.StartsWith('[') && pattern.EndsWith(']'))
        {
            foreach (var item in pattern[1..^1].Split(';'))
            {
                var range = item.Split("..");
                if (range.Length is < 1 or > 2 || range.Any(r => !byte.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
                    throw new FormatException($"bad reply filter '{pattern}'");
                var low = byte.Parse(range[0], CultureInfo.InvariantCulture);
                var high = range.Length == 2 ? byte.Parse(range[1], CultureInfo.InvariantCulture) : low;
                if (value >= low && value <= high) return true;
            }
            return false;
        }
        if (!byte.TryParse(pattern, NumberStyles.None, CultureInfo.InvariantCulture, out var exact)) throw new FormatException($"bad reply filter '{pattern}'");
        return value == exact;
    }
}

public sealed class ClientChecker(DnsResolver dns)
{
    public async Task<ReverseOutcome> ReverseAsync(IPAddress ip, CancellationToken ct)
    {
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        var ptr = await dns.PtrAsync(ip, ct).ConfigureAwait(false);
        if (ptr.Status == DnsStatus.TempError) return new ReverseOutcome(Check.TempError, Check.TempError, null);
        if (ptr.Records.Count == 0) return new ReverseOutcome(Check.Fail, Check.Fail, null);
        bool temp = false;
        foreach (var name in ptr.Records.Take(SpfChecker.NameLimit))
        {
            var a = await dns.AddressesAsync(name, ip.AddressFamily == AddressFamily.InterNetworkV6, ct).ConfigureAwait(false);
            if (a.Status == DnsStatus.TempError) temp = true;
            if (a.Records.Any(x => x.Equals(ip))) return new ReverseOutcome(Check.Pass, Check.Pass, name);
        }
        return new ReverseOutcome(Check.Pass, temp ? Check.TempError : Check.Fail, ptr.Records[0]);
    }

    /// <summary>reject_invalid_helo_hostname: a host name of LDH labels, or an address literal.</summary>
    public static bool IsValidHelo(string helo)
    {
        if (helo.StartsWith('[') && helo.EndsWith(']'))
        {
            var inner = helo[1..^1];
            if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase)) return IPAddress.TryParse(inner[5..], out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
            return IPAddress.TryParse(inner, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork && inner.Count(c => c == '.') == 3;
        }
        var name = helo.EndsWith('.') ? helo[..^1] : helo;
        if (!DnsResolver.IsQueryable(name)) return false;
        foreach (var label in name.Split('.'))
            if (label.StartsWith('-') || label.EndsWith('-') || !label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_')) return false;
        return true;
    }

    /// <summary>reject_unknown_helo_hostname: the name has an A, AAAA or MX record (address literals pass).</summary>
    public async Task<Check> HeloExistsAsync(string helo, CancellationToken ct)
    {
        if (helo.StartsWith('[')) return Check.Pass;
        if (!IsValidHelo(helo)) return Check.Fail;
        var checks = await Task.WhenAll(
            Has(dns.AddressesAsync(helo, false, ct)), Has(dns.AddressesAsync(helo, true, ct)), Has(dns.MxAsync(helo, ct))).ConfigureAwait(false);
        return checks.Contains(Check.Pass) ? Check.Pass : checks.Contains(Check.TempError) ? Check.TempError : Check.Fail;
    }

    private static async Task<Check> Has<T>(Task<DnsAnswer<T>> query)
    {
        var a = await query.ConfigureAwait(false);
        return a.Status == DnsStatus.Ok ? Check.Pass : a.Status == DnsStatus.TempError ? Check.TempError : Check.Fail;
    }

    /// <summary>Every list at once; the score is the sum of the weights of the lists whose answer passes their filter.</summary>
    public async Task<DnsblOutcome> DnsblAsync(IPAddress ip, IReadOnlyList<DnsblSite> sites, CancellationToken ct)
    {
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        var reversed = ReversedLabels(ip);
        var answers = await Task.WhenAll(sites.Select(async s => (Site: s, Answer: await dns.AddressesAsync($"{reversed}.{s.Domain}", false, ct).ConfigureAwait(false))))
            .ConfigureAwait(false);
        int score = 0;
        var listed = new List<string>();
        var errors = new List<string>();
        foreach (var (site, answer) in answers)
        {
            if (answer.Status == DnsStatus.TempError) { errors.Add(site.Domain); continue; }
            // 127.0.0.0/8 only: anything else is a list's error signal, not a listing.
            var replies = answer.Records.Where(a => a.GetAddressBytes()[0] == 127).ToList();
            if (replies.Count == 0) continue;
            if (site.Filter != null && !replies.Any(r => DnsblSite.Matches(site.Filter, r))) continue;
            score += site.Weight;
            listed.Add(site.Weight == 1 ? site.Domain : $"{site.Domain}*{site.Weight}");
        }
        return new DnsblOutcome(score, listed, errors);
    }

    /// <summary>The address's labels in reverse, as DNS lists are queried: 4.3.2.1, or 32 nibbles for IPv6.</summary>
    public static string ReversedLabels(IPAddress ip)
    {
        var arpa = ip.GetArpaName().TrimEnd('.');
        return arpa[..arpa.LastIndexOf('.', arpa.LastIndexOf('.') - 1)];
    }
}
