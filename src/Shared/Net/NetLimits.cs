// The limits every line-protocol listener enforces on its clients.
namespace Mail.Shared.Net;

public sealed class NetLimits
{
    /// <summary>Longest line accepted, without CRLF.</summary>
    public int MaxLineLength { get; init; } = 4096;
    /// <summary>A read that waits longer than this ends the session.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Connections open at once on all listeners of one server.</summary>
    public int MaxConnections { get; init; } = 1000;
    /// <summary>Connections open at once from one client IP (Unix sockets are not counted).</summary>
    public int MaxConnectionsPerIp { get; init; } = 50;
}
