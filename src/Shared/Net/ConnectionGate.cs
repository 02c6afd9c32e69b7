// Counts open connections, in total and per client IP, so that one client
// cannot take every slot of a server. Memory is bounded by MaxConnections.
using System.Net;

namespace Mail.Shared.Net;

public sealed class ConnectionGate(NetLimits limits)
{
    private readonly Dictionary<IPAddress, int> _perIp = new();
    private int _total;

    public int Open { get { lock (_perIp) return _total; } }

    /// <summary>Three quarters of the slots are taken: sessions get the short stress timeout.</summary>
    public bool Stressed => Volatile.Read(ref _total) * 4L >= limits.MaxConnections * 3L;

    public bool TryEnter(IPAddress? ip, out string why)
    {
        lock (_perIp)
        {
            if (_total >= limits.MaxConnections) { why = "too many connections"; return false; }
            if (ip != null)
            {
                _perIp.TryGetValue(ip, out var n);
                if (n >= limits.MaxConnectionsPerIp) { why = "too many connections from your address"; return false; }
                _perIp[ip] = n + 1;
            }
            _total++;
            why = "";
            return true;
        }
    }

    public void Leave(IPAddress? ip)
    {
        lock (_perIp)
        {
            _total--;
            if (ip != null && _perIp.TryGetValue(ip, out var n))
            {
                if (n <= 1) _perIp.Remove(ip);
                else _perIp[ip] = n - 1;
            }
        }
    }
}
