// SPF (RFC 7208): check_host() for the MAIL FROM and HELO identities. Every
// mechanism (all, include, a, mx, ptr, ip4, ip6, exists) and modifier
// (redirect, exp; others ignored), macros with transformers and delimiters,
// the limits of 4.6.4 (10 DNS-querying terms, 2 void look-ups, 10 MX and 10
// PTR names per term) and the errors as 2.6 defines them. A record with a
// syntax error anywhere is permerror before anything in it is evaluated.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mail.MailAuth;

public enum SpfResult { None, Neutral, Pass, Fail, SoftFail, TempError, PermError }

/// <param name="Identity">"mailfrom" or "helo".</param>
/// <param name="Domain">The domain checked.</param>
/// <param name="Mechanism">The mechanism that matched, or why the result is what it is.</param>
/// <param name="Explanation">The exp= text of a fail, expanded.</param>
public sealed record SpfOutcome(SpfResult Result, string Identity, string Domain, string Sender, string? Mechanism, string? Explanation = null)
{
    public static string Name(SpfResult r) => r switch
    {
        SpfResult.SoftFail => "softfail",
        SpfResult.TempError => "temperror",
        SpfResult.PermError => "permerror",
        _ => r.ToString().ToLowerInvariant(),
    };
}

public sealed class SpfChecker(DnsResolver dns, string receiver)
{
    public const int LookupLimit = 10, VoidLimit = 2, NameLimit = 10;

    /// <summary>The MAIL FROM identity (RFC 7208 2.4); an empty sender is checked as postmaster@HELO.</summary>
    public Task<SpfOutcome> CheckMailFromAsync(IPAddress ip, string sender, string helo, CancellationToken ct)
    {
        if (sender.Length == 0) sender = "postmaster@" + helo;
        int at = sender.LastIndexOf('@');
        var domain = at < 0 ? helo : sender[(at + 1)..];
        if (at == 0) sender = "postmaster" + sender;
        return CheckAsync(ip, sender, domain, helo, "mailfrom", ct);
    }

    /// <summary>The HELO identity (RFC 7208 2.3); none for an address literal.</summary>
    public Task<SpfOutcome> CheckHeloAsync(IPAddress ip, string helo, CancellationToken ct)
    {
        if (helo.StartsWith('[') || IPAddress.TryParse(helo, out _))
            return Task.FromResult(new SpfOutcome(SpfResult.None, "helo", helo, "postmaster@" + helo, "address literal"));
        return CheckAsync(ip, "postmaster@" + helo, helo, helo, "helo", ct);
    }

    private async Task<SpfOutcome> CheckAsync(IPAddress ip, string sender, string domain, string helo, string identity, CancellationToken ct)
    {
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        var c = new Context(ip, sender, domain, helo, ct);
        try
        {
            var (result, mechanism, exp) = await CheckHostAsync(c, domain).ConfigureAwait(false);
            return new SpfOutcome(result, identity, domain, sender, mechanism, exp);
        }
        catch (PermErrorException e) { return new SpfOutcome(SpfResult.PermError, identity, domain, sender, e.Message); }
        catch (TempErrorException e) { return new SpfOutcome(SpfResult.TempError, identity, domain, sender, e.Message); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return new SpfOutcome(SpfResult.TempError, identity, domain, sender, "time-out"); }
    }

    private sealed class Context(IPAddress ip, string sender, string domain, string helo, CancellationToken ct)
    {
        public IPAddress Ip { get; } = ip;
        public string Sender { get; } = sender;
        public string Local { get; } = sender[..sender.LastIndexOf('@')] is { Length: > 0 } l ? l : "postmaster";
        public string SenderDomain { get; } = domain;
        public string Helo { get; } = helo;
        public CancellationToken Ct { get; } = ct;
        public int Lookups, Voids;
        public string? ValidatedPtr;

        public void CountLookup()
        {
            if (++Lookups > LookupLimit) throw new PermErrorException("too many DNS look-ups");
        }

        public void CountVoid<T>(DnsAnswer<T> answer)
        {
            if (answer.Status == DnsStatus.TempError) throw new TempErrorException(answer.Error ?? "DNS error");
            if (answer.Void && ++Voids > VoidLimit) throw new PermErrorException("too many void DNS look-ups");
        }
    }

    private sealed class PermErrorException(string message) : Exception(message);
    private sealed class TempErrorException(string message) : Exception(message);

    private enum Kind { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists }

    private sealed record Term(char Qualifier, Kind Kind, string? DomainSpec, IPAddress? Network, int Cidr4, int Cidr6, string Text);

    private sealed record Record(List<Term> Terms, string? Redirect, string? Exp);

    /// <summary>check_host() (RFC 7208 4): the result, the matching term, and the explanation of a fail.</summary>
    private async Task<(SpfResult, string?, string?)> CheckHostAsync(Context c, string domain)
    {
        if (!IsValidDomain(domain)) return (SpfResult.None, "invalid domain", null);
        var txt = await dns.TxtAsync(domain, c.Ct).ConfigureAwait(false);
        if (txt.Status == DnsStatus.TempError) return (SpfResult.TempError, $"DNS error for {domain}: {txt.Error}", null);
        var spf = txt.Records.Where(IsSpfRecord).ToList();
        if (spf.Count == 0) return (SpfResult.None, "no SPF record", null);
        if (spf.Count > 1) return (SpfResult.PermError, "more than one SPF record", null);
        var record = Parse(spf[0]);
        foreach (var term in record.Terms)
        {
            if (await MatchesAsync(c, domain, term).ConfigureAwait(false))
            {
                var result = term.Qualifier switch { '-' => SpfResult.Fail, '~' => SpfResult.SoftFail, '?' => SpfResult.Neutral, _ => SpfResult.Pass };
                string? exp = result == SpfResult.Fail && record.Exp != null ? await ExplainAsync(c, domain, record.Exp).ConfigureAwait(false) : null;
                return (result, term.Text, exp);
            }
        }
        if (record.Redirect != null)
        {
            c.CountLookup();
            var target = await ExpandAsync(c, domain, record.Redirect, explain: false).ConfigureAwait(false);
            var (result, mechanism, exp) = await CheckHostAsync(c, target).ConfigureAwait(false);
            return result == SpfResult.None ? (SpfResult.PermError, $"redirect to {target} without an SPF record", null) : (result, mechanism, exp);
        }
        return (SpfResult.Neutral, "default", null);
    }

    private static bool IsSpfRecord(string txt) =>
        txt.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase) && (txt.Length == 6 || txt[6] == ' ');

    private async Task<bool> MatchesAsync(Context c, string domain, Term t)
    {
        switch (t.Kind)
        {
            case Kind.All:
                return true;
            case Kind.Ip4:
            case Kind.Ip6:
                return InNetwork(c.Ip, t.Network!, t.Kind == Kind.Ip4 ? t.Cidr4 : t.Cidr6);
            case Kind.Include:
            {
                c.CountLookup();
                var target = await ExpandAsync(c, domain, t.DomainSpec!, explain: false).ConfigureAwait(false);
                var (result, _, _) = await CheckHostAsync(c, target).ConfigureAwait(false);
                return result switch
                {
                    SpfResult.Pass => true,
                    SpfResult.TempError => throw new TempErrorException($"include:{target}: temporary error"),
                    SpfResult.PermError or SpfResult.None => throw new PermErrorException($"include:{target}: {(result == SpfResult.None ? "no SPF record" : "permanent error")}"),
                    _ => false,
                };
            }
            case Kind.A:
            {
                c.CountLookup();
                var target = t.DomainSpec == null ? domain : await ExpandAsync(c, domain, t.DomainSpec, explain: false).ConfigureAwait(false);
                return await AddressMatchesAsync(c, target, t, countVoid: true).ConfigureAwait(false);
            }
            case Kind.Mx:
            {
                c.CountLookup();
                var target = t.DomainSpec == null ? domain : await ExpandAsync(c, domain, t.DomainSpec, explain: false).ConfigureAwait(false);
                var mx = await dns.MxAsync(target, c.Ct).ConfigureAwait(false);
                c.CountVoid(mx);
                if (mx.Records.Count > NameLimit) throw new PermErrorException($"mx:{target}: more than {NameLimit} MX records");
                foreach (var host in mx.Records)
                    if (await AddressMatchesAsync(c, host.Host, t, countVoid: false).ConfigureAwait(false)) return true;
                return false;
            }
            case Kind.Ptr:
            {
                c.CountLookup();
                var target = t.DomainSpec == null ? domain : await ExpandAsync(c, domain, t.DomainSpec, explain: false).ConfigureAwait(false);
                foreach (var name in await ValidatedNamesAsync(c).ConfigureAwait(false))
                    if (name.Equals(target, StringComparison.OrdinalIgnoreCase) || name.EndsWith("." + target, StringComparison.OrdinalIgnoreCase)) return true;
                return false;
            }
            case Kind.Exists:
            {
                c.CountLookup();
                var target = await ExpandAsync(c, domain, t.DomainSpec!, explain: false).ConfigureAwait(false);
                var a = await dns.AddressesAsync(target, ipv6: false, c.Ct).ConfigureAwait(false);
                c.CountVoid(a);
                return a.Records.Count > 0;
            }
        }
        return false;
    }

    private async Task<bool> AddressMatchesAsync(Context c, string host, Term t, bool countVoid)
    {
        bool v6 = c.Ip.AddressFamily == AddressFamily.InterNetworkV6;
        var a = await dns.AddressesAsync(host, v6, c.Ct).ConfigureAwait(false);
        if (countVoid) c.CountVoid(a);
        else if (a.Status == DnsStatus.TempError) throw new TempErrorException(a.Error ?? "DNS error");
        foreach (var address in a.Records)
            if (InNetwork(c.Ip, address, v6 ? t.Cidr6 : t.Cidr4)) return true;
        return false;
    }

    /// <summary>The client's names that resolve back to its address (RFC 7208 5.5); at most 10 are tried.</summary>
    private async Task<List<string>> ValidatedNamesAsync(Context c)
    {
        var ptr = await dns.PtrAsync(c.Ip, c.Ct).ConfigureAwait(false);
        var names = new List<string>();
        if (ptr.Status == DnsStatus.TempError) return names; // a DNS error here is no match (5.5)
        foreach (var name in ptr.Records.Take(NameLimit))
        {
            var a = await dns.AddressesAsync(name, c.Ip.AddressFamily == AddressFamily.InterNetworkV6, c.Ct).ConfigureAwait(false);
            if (a.Records.Any(x => x.Equals(c.Ip))) names.Add(name);
        }
        return names;
    }

    public static bool InNetwork(IPAddress ip, IPAddress network, int bits)
    {
        if (ip.AddressFamily != network.AddressFamily) return false;
        Span<byte> a = stackalloc byte[16], b = stackalloc byte[16];
        ip.TryWriteBytes(a, out int n);
        network.TryWriteBytes(b, out _);
        for (int i = 0; i < n && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xFF : (0xFF << (8 - bits)) & 0xFF;
            if ((a[i] & mask) != (b[i] & mask)) return false;
        }
        return true;
    }

    /// <summary>exp= (RFC 7208 6.2): one TXT record, expanded; any problem means no explanation.</summary>
    private async Task<string?> ExplainAsync(Context c, string domain, string spec)
    {
        try
        {
            var target = await ExpandAsync(c, domain, spec, explain: false).ConfigureAwait(false);
            var txt = await dns.TxtAsync(target, c.Ct).ConfigureAwait(false);
            if (txt.Status != DnsStatus.Ok || txt.Records.Count != 1) return null;
            var text = await ExpandAsync(c, domain, txt.Records[0], explain: true).ConfigureAwait(false);
            return text.All(ch => ch is >= ' ' and <= '~') ? text : null;
        }
        catch (PermErrorException) { return null; }
    }

    // ---- parsing (RFC 7208 12) ----

    /// <summary>Whether a record parses (for the fuzz target); a syntax error is permerror's message.</summary>
    internal static bool TryParse(string text, out string? error)
    {
        error = null;
        if (!IsSpfRecord(text)) { error = "not an SPF record"; return false; }
        try { Parse(text); return true; }
        catch (PermErrorException e) { error = e.Message; return false; }
    }

    private static Record Parse(string text)
    {
        var terms = new List<Term>();
        string? redirect = null, exp = null;
        foreach (var raw in text[6..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = raw.IndexOf('=');
            int colon = raw.IndexOf(':');
            int slash = raw.IndexOf('/');
            if (eq > 0 && (colon < 0 || eq < colon) && (slash < 0 || eq < slash) && IsModifierName(raw.AsSpan(0, eq)))
            {
                var name = raw[..eq].ToLowerInvariant();
                var value = raw[(eq + 1)..];
                CheckMacroString(value);
                if (name == "redirect")
                {
                    if (redirect != null) throw new PermErrorException("more than one redirect=");
                    redirect = RequireDomainSpec(value, "redirect");
                }
                else if (name == "exp")
                {
                    if (exp != null) throw new PermErrorException("more than one exp=");
                    exp = RequireDomainSpec(value, "exp");
                }
                continue; // unknown modifiers are ignored (6)
            }
            terms.Add(ParseDirective(raw));
        }
        // redirect= is ignored when the record has "all" (6.1).
        if (terms.Any(t => t.Kind == Kind.All)) redirect = null;
        return new Record(terms, redirect, exp);
    }

    private static bool IsModifierName(ReadOnlySpan<char> name)
    {
        if (name.Length == 0 || !char.IsAsciiLetter(name[0])) return false;
        foreach (var ch in name)
            if (!(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')) return false;
        return true;
    }

    private static Term ParseDirective(string raw)
    {
        var text = raw;
        char q = '+';
        if (text.Length > 0 && text[0] is '+' or '-' or '~' or '?') { q = text[0]; text = text[1..]; }
        int end = text.IndexOfAny([':', '/']);
        var name = (end < 0 ? text : text[..end]).ToLowerInvariant();
        var rest = end < 0 ? "" : text[end..];
        switch (name)
        {
            case "all":
                if (rest.Length > 0) throw new PermErrorException($"bad term '{raw}'");
                return new Term(q, Kind.All, null, null, 32, 128, raw);
            case "include":
            case "exists":
                if (!rest.StartsWith(':')) throw new PermErrorException($"'{name}' needs a domain");
                return new Term(q, name == "include" ? Kind.Include : Kind.Exists, RequireDomainSpec(rest[1..], name), null, 32, 128, raw);
            case "a":
            case "mx":
            {
                var (spec, c4, c6) = DualCidr(rest, raw);
                return new Term(q, name == "a" ? Kind.A : Kind.Mx, spec, null, c4, c6, raw);
            }
            case "ptr":
                if (rest.Length > 0 && !rest.StartsWith(':')) throw new PermErrorException($"bad term '{raw}'");
                return new Term(q, Kind.Ptr, rest.Length > 0 ? RequireDomainSpec(rest[1..], name) : null, null, 32, 128, raw);
            case "ip4":
            case "ip6":
            {
                if (!rest.StartsWith(':')) throw new PermErrorException($"'{name}' needs an address");
                var value = rest[1..];
                int max = name == "ip4" ? 32 : 128;
                int bits = max;
                int s = value.IndexOf('/');
                if (s >= 0)
                {
                    bits = ParseCidr(value[(s + 1)..], max, raw);
                    value = value[..s];
                }
                var family = name == "ip4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
                if (!IPAddress.TryParse(value, out var net) || net.AddressFamily != family || (family == AddressFamily.InterNetwork && value.Count(ch => ch == '.') != 3))
                    throw new PermErrorException($"bad address in '{raw}'");
                return new Term(q, name == "ip4" ? Kind.Ip4 : Kind.Ip6, null, net, bits, bits, raw);
            }
            default:
                throw new PermErrorException($"unknown mechanism '{raw}'");
        }
    }

    /// <summary>[":" domain-spec] [ip4-cidr-length] ["/" ip6-cidr-length]</summary>
    private static (string? Spec, int Cidr4, int Cidr6) DualCidr(string rest, string raw)
    {
        int c4 = 32, c6 = 128;
        int dd = rest.LastIndexOf("//", StringComparison.Ordinal);
        if (dd >= 0 && rest[(dd + 2)..].All(char.IsAsciiDigit))
        {
            c6 = ParseCidr(rest[(dd + 2)..], 128, raw);
            rest = rest[..dd];
        }
        int s = rest.LastIndexOf('/');
        if (s >= 0 && rest[(s + 1)..].All(char.IsAsciiDigit))
        {
            c4 = ParseCidr(rest[(s + 1)..], 32, raw);
            rest = rest[..s];
        }
        if (rest.Length == 0) return (null, c4, c6);
        if (!rest.StartsWith(':')) throw new PermErrorException($"bad term '{raw}'");
        return (RequireDomainSpec(rest[1..], raw), c4, c6);
    }

    private static int ParseCidr(string text, int max, string raw)
    {
        if (text.Length is 0 or > 3 || (text.Length > 1 && text[0] == '0') || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > max)
            throw new PermErrorException($"bad prefix length in '{raw}'");
        return n;
    }

    private static string RequireDomainSpec(string spec, string what)
    {
        if (spec.Length == 0) throw new PermErrorException($"'{what}' needs a domain");
        CheckMacroString(spec);
        // domain-end (RFC 7208 7.1): ends in a macro or in a top label that is not all digits.
        if (!spec.EndsWith('}'))
        {
            var labels = spec.TrimEnd('.').Split('.');
            var top = labels[^1];
            if (labels.Length < 2 || top.Length == 0 || top.All(char.IsAsciiDigit) || top.StartsWith('-') || top.EndsWith('-')
                || !top.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '-'))
                throw new PermErrorException($"bad domain '{spec}' in '{what}'");
        }
        return spec;
    }

    private static void CheckMacroString(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char ch = value[i];
            if (ch is < '!' or > '~') throw new PermErrorException("bad character in macro string");
            if (ch != '%') continue;
            if (i + 1 >= value.Length) throw new PermErrorException("'%' at end of macro string");
            char next = value[++i];
            if (next is '%' or '_' or '-') continue;
            if (next != '{') throw new PermErrorException($"bad macro '%{next}'");
            int close = value.IndexOf('}', i);
            if (close < 0) throw new PermErrorException("unterminated macro");
            ParseMacro(value.AsSpan(i + 1, close - i - 1), explain: true);
            i = close;
        }
    }

    // ---- macros (RFC 7208 7) ----

    private static (char Letter, int Digits, bool Reverse, string Delimiters) ParseMacro(ReadOnlySpan<char> body, bool explain)
    {
        if (body.Length == 0) throw new PermErrorException("empty macro");
        char letter = body[0];
        var known = explain ? "slodiphvcrtSLODIPHVCRT" : "slodiphvSLODIPHV";
        if (!known.Contains(letter)) throw new PermErrorException($"bad macro letter '{letter}'");
        int i = 1;
        int digits = 0;
        int start = i;
        while (i < body.Length && char.IsAsciiDigit(body[i])) i++;
        if (i > start)
        {
            if (i - start > 3 || !int.TryParse(body[start..i], NumberStyles.None, CultureInfo.InvariantCulture, out digits) || digits == 0 || digits > 128)
                throw new PermErrorException("bad macro transformer");
        }
        bool reverse = false;
        if (i < body.Length && body[i] is 'r' or 'R') { reverse = true; i++; }
        var delimiters = body[i..];
        foreach (var d in delimiters)
            if (!".-+,/_=".Contains(d)) throw new PermErrorException($"bad macro delimiter '{d}'");
        return (letter, digits, reverse, delimiters.Length == 0 ? "." : delimiters.ToString());
    }

    private async Task<string> ExpandAsync(Context c, string domain, string spec, bool explain)
    {
        // The "p" macro needs the client's validated name (RFC 7208 7.3): looked up once, counted as one look-up.
        if (c.ValidatedPtr == null && spec.Contains("%{p", StringComparison.OrdinalIgnoreCase))
        {
            c.CountLookup();
            var names = await ValidatedNamesAsync(c).ConfigureAwait(false);
            c.ValidatedPtr = names.FirstOrDefault(n => n.Equals(domain, StringComparison.OrdinalIgnoreCase) || n.EndsWith("." + domain, StringComparison.OrdinalIgnoreCase))
                ?? names.FirstOrDefault() ?? "unknown";
        }
        return Expand(c, domain, spec, explain);
    }

    private string Expand(Context c, string domain, string spec, bool explain)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < spec.Length; i++)
        {
            char ch = spec[i];
            if (ch != '%') { sb.Append(ch); continue; }
            if (i + 1 >= spec.Length) throw new PermErrorException("'%' at end of macro string");
            char next = spec[++i];
            if (next == '%') { sb.Append('%'); continue; }
            if (next == '_') { sb.Append(' '); continue; }
            if (next == '-') { sb.Append("%20"); continue; }
            if (next != '{') throw new PermErrorException($"bad macro '%{next}'");
            int close = spec.IndexOf('}', i);
            if (close < 0) throw new PermErrorException("unterminated macro");
            var (letter, digits, reverse, delimiters) = ParseMacro(spec.AsSpan(i + 1, close - i - 1), explain);
            i = close;
            var value = char.ToLowerInvariant(letter) switch
            {
                's' => c.Sender,
                'l' => c.Local,
                'o' => c.SenderDomain,
                'd' => domain,
                'i' => DottedAddress(c.Ip),
                'p' => c.ValidatedPtr ?? "unknown",
                'h' => c.Helo,
                'v' => c.Ip.AddressFamily == AddressFamily.InterNetwork ? "in-addr" : "ip6",
                'c' => c.Ip.ToString(),
                'r' => receiver,
                't' => DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
                _ => "",
            };
            var parts = value.Split(delimiters.ToCharArray());
            if (reverse) Array.Reverse(parts);
            if (digits > 0 && digits < parts.Length) parts = parts[^digits..];
            var joined = string.Join('.', parts);
            sb.Append(char.IsAsciiLetterUpper(letter) ? Uri.EscapeDataString(joined) : joined);
        }
        var result = sb.ToString();
        if (!explain)
        {
            // RFC 7208 7.3: past 253 characters, labels are dropped from the left.
            while (result.Length > 253 && result.IndexOf('.') is var dot and >= 0) result = result[(dot + 1)..];
        }
        return result;
    }

    /// <summary>The "i" macro: dotted quad, or IPv6 as 32 dot-separated nibbles.</summary>
    private static string DottedAddress(IPAddress ip)
    {
        if (ip.AddressFamily == AddressFamily.InterNetwork) return ip.ToString();
        var bytes = ip.GetAddressBytes();
        var sb = new StringBuilder(63);
        foreach (var b in bytes)
        {
            if (sb.Length > 0) sb.Append('.');
            sb.Append("0123456789abcdef"[b >> 4]).Append('.').Append("0123456789abcdef"[b & 15]);
        }
        return sb.ToString();
    }

    /// <summary>RFC 7208 4.3: a domain that is not a multi-label name of legal labels gives "none".</summary>
    private static bool IsValidDomain(string domain)
    {
        if (!DnsResolver.IsQueryable(domain)) return false;
        return domain.TrimEnd('.').Contains('.');
    }

    /// <summary>The Received-SPF header (RFC 7208 9.1), without its name.</summary>
    public string ReceivedSpf(SpfOutcome o, IPAddress ip, string helo)
    {
        var comment = o.Result switch
        {
            SpfResult.Pass => $"{receiver}: domain of {o.Sender} designates {ip} as permitted sender",
            SpfResult.Fail => $"{receiver}: domain of {o.Sender} does not designate {ip} as permitted sender",
            SpfResult.SoftFail => $"{receiver}: domain of transitioning {o.Sender} does not designate {ip} as permitted sender",
            SpfResult.Neutral => $"{receiver}: {ip} is neither permitted nor denied by domain of {o.Sender}",
            SpfResult.None => $"{receiver}: domain of {o.Sender} does not provide an SPF record",
            SpfResult.TempError => $"{receiver}: temporary error in processing during lookup of {o.Sender}",
            _ => $"{receiver}: permanent error in processing domain of {o.Sender}: {o.Mechanism}",
        };
        return $"{SpfOutcome.Name(o.Result)} ({AuthResults.CommentSafe(comment)}) client-ip={ip}; envelope-from=\"{AuthResults.QuoteSafe(o.Sender)}\"; " +
               $"helo={AuthResults.ValueSafe(helo)}; receiver={receiver}; identity={o.Identity};" +
               (o.Mechanism != null && o.Mechanism != "default" && o.Result is SpfResult.Pass or SpfResult.Fail or SpfResult.SoftFail or SpfResult.Neutral ? $" mechanism=\"{AuthResults.QuoteSafe(o.Mechanism)}\";" : "");
    }
}
