// The DNS look-ups of the mail-authentication checks, through DnsClient. Each
// answer is one of: records, no such domain, no records of the type (both
// "void" for SPF's limit), or a temporary error (time-out, SERVFAIL, a
// malformed or truncated reply that TCP could not complete, a CNAME loop).
// Answers are cached by us: those with records for their least TTL, those
// without for the SOA's negative TTL (RFC 2308), both at most five minutes.
// Only records for the name asked, or for the names its CNAME chain leads
// to, are taken: an answer for another name counts as none. Sizes are bounded: TXT records
// past MaxTxt characters are dropped as if absent.
using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Mail.MailAuth;

public enum DnsStatus { Ok, NxDomain, NoData, TempError }

public sealed record MxHost(int Preference, string Host);

public sealed record SrvTarget(int Priority, int Weight, int Port, string Target);

public readonly record struct DnsAnswer<T>(DnsStatus Status, IReadOnlyList<T> Records, string? Error = null)
{
    public bool Void => Status is DnsStatus.NxDomain or DnsStatus.NoData;
    public static DnsAnswer<T> Temp(string error) => new(DnsStatus.TempError, [], error);
}

public sealed class DnsResolver
{
    public const int MaxTxt = 16 * 1024;
    private const int MaxCnameChain = 8;
    private readonly LookupClient _client;
    // Answers with no records (NXDOMAIN, or no records of the type) for as long as the zone's SOA
    // allows (RFC 2308), at most NegativeMax: DnsClient keeps only answers that hold records.
    private static readonly TimeSpan NegativeMax = TimeSpan.FromMinutes(5);
    private const int NegativeEntries = 10_000;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, QueryType), (DnsStatus Status, long Until)> _negative = new();
    // Answers with records, as we took them from DnsClient (CNAME chain checked, records picked), for
    // their least TTL, at most NegativeMax: the checks of every message ask the same few names.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, QueryType), (object Answer, long Until)> _positive = new();

    /// <param name="servers">host[:port] of the DNS servers; none: the system's (/etc/resolv.conf).</param>
    /// <param name="timeout">How long one query waits for its answer (one retry follows).</param>
    public DnsResolver(IReadOnlyList<string> servers, TimeSpan timeout)
    {
        var endpoints = servers.Select(s => !IPEndPoint.TryParse(s, out var ep) ? throw new FormatException($"bad DNS server '{s}'")
            : ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep).ToArray();
        var options = endpoints.Length > 0 ? new LookupClientOptions(endpoints) : new LookupClientOptions();
        options.UseCache = true;
        options.Timeout = timeout;
        options.Retries = 1;
        options.UseTcpFallback = true;
        options.ContinueOnDnsError = false;
        options.ContinueOnEmptyResponse = false;
        options.ThrowDnsErrors = false;
        options.EnableAuditTrail = false;
        _client = new LookupClient(options);
    }

    public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken ct) =>
        QueryAsync(name, QueryType.TXT, r => r is TxtRecord t ? Join(t) : null, ct);

    private static string? Join(TxtRecord t)
    {
        // One record's strings are one text (RFC 7208 3.3, RFC 6376 3.6.2.2).
        int length = t.Text.Sum(s => s.Length);
        return length > MaxTxt ? null : string.Concat(t.Text);
    }

    public Task<DnsAnswer<IPAddress>> AddressesAsync(string name, bool ipv6, CancellationToken ct) =>
        QueryAsync(name, ipv6 ? QueryType.AAAA : QueryType.A, r => r switch
        {
            ARecord a when !ipv6 => a.Address,
            AaaaRecord a when ipv6 => a.Address,
            _ => null,
        }, ct);

    public Task<DnsAnswer<MxHost>> MxAsync(string name, CancellationToken ct) =>
        QueryAsync(name, QueryType.MX, r => r is MxRecord m ? new MxHost(m.Preference, Trim(m.Exchange.Value)) : null, ct);

    public Task<DnsAnswer<SrvTarget>> SrvAsync(string name, CancellationToken ct) =>
        QueryAsync(name, QueryType.SRV, r => r is SrvRecord s ? new SrvTarget(s.Priority, s.Weight, s.Port, Trim(s.Target.Value)) : null, ct);

    public Task<DnsAnswer<string>> PtrAsync(IPAddress ip, CancellationToken ct) =>
        QueryAsync(ReverseName(ip), QueryType.PTR, r => r is PtrRecord p ? Trim(p.PtrDomainName.Value) : null, ct);

    /// <summary>The in-addr.arpa or ip6.arpa name of an address.</summary>
    public static string ReverseName(IPAddress ip) => ip.GetArpaName();

    private static string Trim(string name) => name.TrimEnd('.');

    private async Task<DnsAnswer<T>> QueryAsync<T>(string name, QueryType type, Func<DnsResourceRecord, T?> pick, CancellationToken ct) where T : class
    {
        if (!IsQueryable(name)) return new(DnsStatus.NxDomain, [], "invalid name");
        var key = (name.TrimEnd('.').ToLowerInvariant(), type);
        if (_negative.TryGetValue(key, out var cached))
        {
            if (cached.Until > Environment.TickCount64) return new(cached.Status, []);
            _negative.TryRemove(key, out _);
        }
        if (_positive.TryGetValue(key, out var kept) && kept.Answer is DnsAnswer<T> known)
        {
            if (kept.Until > Environment.TickCount64) return known;
            _positive.TryRemove(key, out _);
        }
        var (answer, ttl) = await QueryOnceAsync(name, type, pick, ct).ConfigureAwait(false);
        if (answer.Void && answer.Error == null && ttl > TimeSpan.Zero)
        {
            if (_negative.Count >= NegativeEntries) _negative.Clear();
            _negative[key] = (answer.Status, Environment.TickCount64 + (long)ttl.TotalMilliseconds);
        }
        else if (answer.Status == DnsStatus.Ok && ttl > TimeSpan.Zero)
        {
            if (_positive.Count >= NegativeEntries) _positive.Clear();
            _positive[key] = (answer, Environment.TickCount64 + (long)ttl.TotalMilliseconds);
        }
        return answer;
    }

    private async Task<(DnsAnswer<T> Answer, TimeSpan Ttl)> QueryOnceAsync<T>(string name, QueryType type, Func<DnsResourceRecord, T?> pick, CancellationToken ct) where T : class
    {
        IDnsQueryResponse response;
        try { response = await _client.QueryAsync(name, type, QueryClass.IN, ct).ConfigureAwait(false); }
        catch (DnsResponseException e) { return (DnsAnswer<T>.Temp(e.Message), default); }
        catch (ArgumentException e) { return (new(DnsStatus.NxDomain, [], e.Message), default); }
        catch (IOException e) { return (DnsAnswer<T>.Temp(e.Message), default); }
        catch (System.Net.Sockets.SocketException e) { return (DnsAnswer<T>.Temp(e.Message), default); }
        if (response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain) return (new(DnsStatus.NxDomain, []), NegativeTtl(response));
        if (response.HasError) return (DnsAnswer<T>.Temp($"{response.Header.ResponseCode}: {response.ErrorMessage}"), default);
        // Follow the CNAME chain inside the answer; take records only for the names on it.
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { Trim(name) };
        var current = Trim(name);
        for (int i = 0; ; i++)
        {
            var next = response.Answers.OfType<CNameRecord>().FirstOrDefault(c => Trim(c.DomainName.Value).Equals(current, StringComparison.OrdinalIgnoreCase));
            if (next == null) break;
            current = Trim(next.CanonicalName.Value);
            if (!names.Add(current) || i >= MaxCnameChain) return (DnsAnswer<T>.Temp($"CNAME loop at {name}"), default);
        }
        var records = new List<T>();
        long ttl = (long)NegativeMax.TotalSeconds;
        foreach (var r in response.Answers)
        {
            if (!names.Contains(Trim(r.DomainName.Value))) continue;
            ttl = Math.Min(ttl, Math.Max(0, r.TimeToLive)); // the chain's CNAMEs expire too
            if (r is not CNameRecord && pick(r) is { } value) records.Add(value);
        }
        return records.Count > 0 ? (new(DnsStatus.Ok, records), TimeSpan.FromSeconds(ttl)) : (new(DnsStatus.NoData, []), NegativeTtl(response));
    }

    /// <summary>RFC 2308 5: the lesser of the SOA's TTL and its MINIMUM field, capped; none without an SOA.</summary>
    private static TimeSpan NegativeTtl(IDnsQueryResponse response)
    {
        var soa = response.Authorities.OfType<SoaRecord>().FirstOrDefault();
        if (soa == null) return TimeSpan.Zero;
        var seconds = Math.Min((long)soa.InitialTimeToLive, (long)soa.Minimum);
        return TimeSpan.FromSeconds(Math.Clamp(seconds, 0, (long)NegativeMax.TotalSeconds));
    }

    /// <summary>A name DNS can carry: labels of 1 to 63 octets, 253 in all.</summary>
    public static bool IsQueryable(string name)
    {
        var n = name.TrimEnd('.');
        if (n.Length == 0 || n.Length > 253) return false;
        foreach (var label in n.Split('.'))
            if (label.Length is 0 or > 63) return false;
        return true;
    }
}
