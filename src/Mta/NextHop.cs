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
/// <param name="NextHop">The relay host as configured, or the destination domain: the password table's key.</param>
internal sealed record Route(List<Hop> Hops, string? Dsn = null, string? Why = null, bool Permanent = false, string NextHop = "");

internal sealed class NextHop
{
    private readonly ILookupClient _dns;
    private readonly string? _relayHost;
    private readonly string? _relayText;
    private readonly bool _relayMx;
    private readonly int _port, _relayPort;

    /// <param name="relayHost">Postfix's relayhost syntax, or empty.</param>
    /// <param name="port">The SMTP port of MX hosts (25; tests use another).</param>
    /// <param name="dnsServers">host[:port] of the DNS servers to ask; none: the system's (/etc/resolv.conf).</param>
    public NextHop(string relayHost, int port, IReadOnlyList<string> dnsServers)
    {
        _port = _relayPort = port;
        if (relayHost.Length > 0)
        {
            (_relayHost, _relayMx, _relayPort) = ParseRelay(relayHost, port);
            _relayText = relayHost;
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

    /// <summary>Postfix's relayhost syntax: "[host]:port" as it stands, "host" or "host:port" by its MX records.</summary>
    public static (string Host, bool Mx, int Port) ParseRelay(string text, int defaultPort)
    {
        int relayPort = defaultPort;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0) throw new ArgumentException($"bad relayhost '{text}'");
            if (close + 1 < text.Length && (text[close + 1] != ':' || !int.TryParse(text.AsSpan(close + 2), out relayPort))) throw new ArgumentException($"bad relayhost '{text}'");
            return (text[1..close], false, relayPort);
        }
        var colon = text.LastIndexOf(':');
        if (colon > 0 && !int.TryParse(text.AsSpan(colon + 1), out relayPort)) throw new ArgumentException($"bad relayhost '{text}'");
        return (colon > 0 ? text[..colon] : text, true, relayPort);
    }

    /// <param name="relay">The relay host for this message (sender_dependent_relayhost_maps) instead of relayhost.</param>
    public async Task<Route> ResolveAsync(string domain, CancellationToken ct, string? relay = null)
    {
        var (host, mx, port) = relay != null ? ParseRelay(relay, _port) : (_relayHost, _relayMx, _relayPort);
        if (host != null)
        {
            var route = IPAddress.TryParse(host, out var literal) ? new Route([new Hop(host, literal, port)])
                : mx ? await ByMxAsync(host, ct, port) : await ByAddressAsync(host, host, ct, port);
            return route with { NextHop = relay ?? _relayText ?? host };
        }
        if (domain.StartsWith('[') && domain.EndsWith(']') && IPAddress.TryParse(domain[1..^1], out var ip)) return new Route([new Hop(domain, ip, _port)], NextHop: domain);
        return await ByMxAsync(domain, ct, _port) with { NextHop = domain };
    }

    private async Task<Route> ByMxAsync(string domain, CancellationToken ct, int port)
    {
        IDnsQueryResponse mx;
        try { mx = await _dns.QueryAsync(domain, QueryType.MX, cancellationToken: ct); }
        catch (DnsResponseException e) { return Temporary(domain, "MX", e.Message); }
        if (mx.HasError)
            return mx.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain
                ? new Route([], "5.4.4", $"Host or domain name not found. Name service error for name={domain} type=MX: Host not found", true)
                : Temporary(domain, "MX", mx.ErrorMessage);
        var records = mx.Answers.MxRecords().ToList();
        if (records.Count == 0) return await ByAddressAsync(domain, domain, ct, port); // implicit MX
        if (records.Count == 1 && records[0].Exchange.Value is "." or "")
            return new Route([], "5.1.10", $"Domain {domain} does not accept mail (nullMX)", true);
        var hops = new List<Hop>();
        string? lastError = null;
        foreach (var group in records.GroupBy(r => r.Preference).OrderBy(g => g.Key))
            foreach (var record in group.OrderBy(_ => Random.Shared.Next()))
            {
                var host = record.Exchange.Value.TrimEnd('.');
                var route = await ByAddressAsync(host, host, ct, port);
                hops.AddRange(route.Hops);
                lastError ??= route.Why;
            }
        return hops.Count > 0 ? new Route(hops) : new Route([], "4.4.3", lastError ?? $"no address for the MX hosts of {domain}");
    }

    private async Task<Route> ByAddressAsync(string host, string name, CancellationToken ct, int port)
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
            foreach (var a in r.Answers.OfType<AddressRecord>()) hops.Add(new Hop(name, a.Address, port));
        }
        return hops.Count > 0 ? new Route(hops) : new Route([], "5.4.4", $"Host or domain name not found. Name service error for name={host}: no address", true);
    }

    private static Route Temporary(string name, string type, string why) =>
        new([], "4.4.3", $"Host or domain name not found. Name service error for name={name} type={type}: {why}");
}
