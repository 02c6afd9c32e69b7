// Hosts a line protocol on Kestrel: TCP or Unix-socket endpoints, implicit
// TLS as connection middleware, the connection gate, and graceful shutdown
// (the stopping token reaches every session's next read).
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using System.Security.Cryptography.X509Certificates;
using Mail.Shared.Logging;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using NLog;

namespace Mail.Shared.Net;

/// <summary>Where a listener binds: "127.0.0.1:2525", "[::1]:25", "*:25" or "unix:/run/x.sock".</summary>
public sealed record ListenAddress(EndPoint EndPoint)
{
    public static ListenAddress Parse(string text)
    {
        if (!TryParse(text, out var a)) throw new FormatException($"bad listen address '{text}'");
        return a!;
    }

    public static bool TryParse(string text, out ListenAddress? address)
    {
        address = null;
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text[5..];
            if (path.Length == 0 || path.Length > 100) return false;
            address = new ListenAddress(new UnixDomainSocketEndPoint(path));
            return true;
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), out var port) || port < 0 || port > 65535) return false;
        var host = text[..colon].Trim('[', ']');
        IPAddress ip;
        if (host == "*") ip = IPAddress.Any;
        else if (!IPAddress.TryParse(host, out ip!)) return false;
        address = new ListenAddress(new IPEndPoint(ip, port));
        return true;
    }

    public override string ToString() => EndPoint is UnixDomainSocketEndPoint u ? "unix:" + u : EndPoint.ToString()!;
}

public sealed class LineListenerOptions
{
    public required string Name { get; init; }
    public required ListenAddress Address { get; init; }
    public bool ImplicitTls { get; init; }
    public NetLimits Limits { get; init; } = new();
    /// <summary>The line sent to a client turned away by the connection gate, or null for none.</summary>
    public string? BusyReply { get; init; }
    /// <summary>Mode of a Unix socket, e.g. 0660.</summary>
    public UnixFileMode SocketMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
}

public static class LineListener
{
    private static readonly Logger Log = MailLog.For("net");

    /// <summary>
    /// Adds a listener that runs <paramref name="session"/> for every accepted
    /// connection. The session owns the connection; when it returns, the
    /// connection closes.
    /// </summary>
    public static void ListenLines(this KestrelServerOptions kestrel, LineListenerOptions options, ConnectionGate gate,
        Func<X509Certificate2?> certificate, CancellationToken stopping, Func<LineConnection, Task> session)
    {
        void Configure(ListenOptions lo)
        {
            lo.Protocols = HttpProtocols.Http1;
            if (options.ImplicitTls)
            {
                lo.UseHttps(new TlsHandshakeCallbackOptions
                {
                    OnConnection = _ => ValueTask.FromResult(new System.Net.Security.SslServerAuthenticationOptions
                    {
                        ServerCertificate = certificate() ?? throw new InvalidOperationException("no TLS certificate"),
                        ApplicationProtocols = null,
                    }),
                    HandshakeTimeout = options.Limits.IdleTimeout,
                });
            }
            lo.Run(context => ServeAsync(new LineConnection(context, options.Name, options.Limits, stopping, options.ImplicitTls, () => gate.Stressed),
                options, gate, session));
        }

        switch (options.Address.EndPoint)
        {
            case UnixDomainSocketEndPoint unix:
                var path = unix.ToString()!;
                PrepareUnixSocket(path);
                kestrel.ListenUnixSocket(path, Configure);
                break;
            case IPEndPoint ip:
                kestrel.Listen(ip, Configure);
                break;
            default:
                throw new ArgumentException("unsupported endpoint");
        }
    }

    /// <summary>
    /// One connection from start to end: admitted by the gate (or told it is busy), counted,
    /// served by <paramref name="session"/>, its failures logged, and disposed.
    /// </summary>
    internal static async Task ServeAsync(LineConnection conn, LineListenerOptions options, ConnectionGate gate, Func<LineConnection, Task> session)
    {
        try
        {
            if (!gate.TryEnter(conn.IsUnixSocket ? null : conn.RemoteIp, out var why))
            {
                Metrics.MailMetrics.ConnectionsTurnedAway.WithLabels(options.Name).Inc();
                Log.Warn($"{conn.SessionId}: {options.Name}: reject {conn.ClientDescription}: {why}");
                if (options.BusyReply != null)
                {
                    try { await conn.WriteLineAsync(options.BusyReply).ConfigureAwait(false); } catch (IOException) { }
                }
                return;
            }
            Metrics.MailMetrics.Connections.WithLabels(options.Name).Inc();
            var open = Metrics.MailMetrics.ConnectionsOpen.WithLabels(options.Name);
            open.Inc();
            try
            {
                await session(conn).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException)
            {
                Log.Info($"{conn.SessionId}: {options.Name}: lost connection with {conn.ClientDescription}: {e.Message}");
            }
            catch (Exception e)
            {
                Log.Error(e, $"{conn.SessionId}: {options.Name}: session with {conn.ClientDescription} failed");
            }
            finally
            {
                open.Dec();
                gate.Leave(conn.IsUnixSocket ? null : conn.RemoteIp);
            }
        }
        finally
        {
            await conn.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Removes a stale socket file and makes its folder.</summary>
    public static void PrepareUnixSocket(string path)
    {
        var dir = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        if (File.Exists(path)) File.Delete(path);
    }

    /// <summary>Sets a Unix socket's mode once the server has bound it.</summary>
    public static void SetSocketMode(string path, UnixFileMode mode)
    {
        if (File.Exists(path)) File.SetUnixFileMode(path, mode);
    }
}
