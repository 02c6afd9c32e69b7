// The limits every line-protocol listener enforces on its clients.
namespace Mail.Shared.Net;

public sealed class NetLimits
{
    /// <summary>Longest line accepted, without CRLF.</summary>
    public int MaxLineLength { get; init; } = 4096;
    /// <summary>A line (or a read, or a transfer's start) that takes longer than this ends the session.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>The timeout while three quarters of MaxConnections are taken (Postfix's stress-dependent smtpd_timeout).</summary>
    public TimeSpan StressTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Bytes per second a transfer (DATA, BDAT, literals) must keep up to earn more time (Postfix's smtpd_min_data_rate).</summary>
    public int MinDataRate { get; init; } = 500;
    /// <summary>Connections open at once on all listeners of one server.</summary>
    public int MaxConnections { get; init; } = 1000;
    /// <summary>Connections open at once from one client IP (Unix sockets are not counted).</summary>
    public int MaxConnectionsPerIp { get; init; } = 50;
}
