// Where mail for another domain goes (RFC 5321 5.1): the relay host when one
// is set ("[host]:port" as it stands, "host" or "host:port" by its MX
// records, as Postfix's relayhost), otherwise the domain's MX hosts by
// preference (equal preferences in random order), each by its addresses; a
// domain without MX records is its own host (implicit MX). A null MX
// (RFC 7505) and a domain that does not exist fail for good; a DNS server
// that does not answer is a temporary failure.
using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Mail.Mta;

internal sealed record Hop(string Name, IPAddress Address, int Port)
{
    public override string ToString() => $"{Name}[{Address}]:{Port}";
}

/// <summary>The hosts to try in order, or why there are none (Permanent: bounce; otherwise defer).</summary>
internal sealed record Route(List<Hop> Hops, string? Dsn = null, string? Why = null, bool Permanent = false);

internal sealed class NextHop
{
    private readonly ILookupClient _dns;
    private readonly string? _relayHost;
    private readonly bool _relayMx;
    private readonly int _port;

    /// <param name="relayHost">Postfix's relayhost syntax, or empty.</param>
    /// <param name="port">The SMTP port of MX hosts (25; tests use another).</param>
    /// <param name="dnsServers">host[:port] of the DNS servers to ask; none: the system's (/etc/resolv.conf).</param>
    public NextHop(string relayHost, int port, IReadOnlyList<string> dnsServers)
    {
        _port = port;
        if (relayHost.Length > 0)
        {
            var text = relayHost;
            int relayPort = port;
            if (text.StartsWith('['))
            {
                var close = text.IndexOf(']');
                if (close < 0) throw new ArgumentException($"bad relayhost '{relayHost}'");
                if (close + 1 < text.Length && (text[close + 1] != ':' || !int.TryParse(text.AsSpan(close + 2), out relayPort))) throw new ArgumentException($"bad relayhost '{relayHost}'");
                _relayHost = text[1..close];
                _relayMx = false;
            }
            else
            {
                var colon = text.LastIndexOf(':');
                if (colon > 0 && !int.TryParse(text.AsSpan(colon + 1), out relayPort)) throw new ArgumentException($"bad relayhost '{relayHost}'");
                _relayHost = colon > 0 ? text[..colon] : text;
                _relayMx = true;
            }
            _port = relayPort;
        }
        var servers = dnsServers.Select(s => !IPEndPoint.TryParse(s, out var ep) ? throw new FormatException($"bad DNS server '{s}'")
            : ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep).ToArray();
        var options = servers.Length > 0 ? new LookupClientOptions(servers) : new LookupClientOptions();
        options.UseCache = true;
        options.Timeout = TimeSpan.FromSeconds(5);
        options.Retries = 2;
        options.ContinueOnDnsError = false;
        options.ThrowDnsErrors = false;
        _dns = new LookupClient(options);
    }

    public async Task<Route> ResolveAsync(string domain, CancellationToken ct)
    {
        if (_relayHost != null)
        {
            if (IPAddress.TryParse(_relayHost, out var literal)) return new Route([new Hop(_relayHost, literal, _port)]);
            return _relayMx ? await ByMxAsync(_relayHost, ct) : await ByAddressAsync(_relayHost, _relayHost, ct);
        }
        if (domain.StartsWith('[') && domain.EndsWith(']') && IPAddress.TryParse(domain[1..^1], out var ip)) return new Route([new Hop(domain, ip, _port)]);
        return await ByMxAsync(domain, ct);
    }

    private async Task<Route> ByMxAsync(string domain, CancellationToken ct)
    {
        IDnsQueryResponse mx;
        try { mx = await _dns.QueryAsync(domain, QueryType.MX, cancellationToken: ct); }
        catch (DnsResponseException e) { return Temporary(domain, "MX", e.Message); }
        if (mx.HasError)
            return mx.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain
                ? new Route([], "5.4.4", $"Host or domain name not found. Name service error for name={domain} type=MX: Host not found", true)
                : Temporary(domain, "MX", mx.ErrorMessage);
        var records = mx.Answers.MxRecords().ToList();
        if (records.Count == 0) return await ByAddressAsync(domain, domain, ct); // implicit MX
        if (records.Count == 1 && records[0].Exchange.Value is "." or "")
            return new Route([], "5.1.10", $"Domain {domain} does not accept mail (nullMX)", true);
        var hops = new List<Hop>();
        string? lastError = null;
        foreach (var group in records.GroupBy(r => r.Preference).OrderBy(g => g.Key))
            foreach (var record in group.OrderBy(_ => Random.Shared.Next()))
            {
                var host = record.Exchange.Value.TrimEnd('.');
                var route = await ByAddressAsync(host, host, ct);
                hops.AddRange(route.Hops);
                lastError ??= route.Why;
            }
        return hops.Count > 0 ? new Route(hops) : new Route([], "4.4.3", lastError ?? $"no address for the MX hosts of {domain}");
    }

    private async Task<Route> ByAddressAsync(string host, string name, CancellationToken ct)
    {
        var hops = new List<Hop>();
        foreach (var type in new[] { QueryType.A, QueryType.AAAA })
        {
            IDnsQueryResponse r;
            try { r = await _dns.QueryAsync(host, type, cancellationToken: ct); }
            catch (DnsResponseException e) { return Temporary(host, type.ToString(), e.Message); }
            if (r.HasError)
            {
                if (r.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
                    return new Route([], "5.4.4", $"Host or domain name not found. Name service error for name={host} type={type}: Host not found", true);
                return Temporary(host, type.ToString(), r.ErrorMessage);
            }
            foreach (var a in r.Answers.OfType<AddressRecord>()) hops.Add(new Hop(name, a.Address, _port));
        }
        return hops.Count > 0 ? new Route(hops) : new Route([], "5.4.4", $"Host or domain name not found. Name service error for name={host}: no address", true);
    }

    private static Route Temporary(string name, string type, string why) =>
        new([], "4.4.3", $"Host or domain name not found. Name service error for name={name} type={type}: {why}");
}
