// The OpenMetrics endpoint of a daemon: `metrics_listen` names a loopback
// address (127.0.0.1:9xxx) or a Unix socket (unix:/run/mail/NAME.metrics),
// empty for none (the default). GET /metrics answers in the OpenMetrics text
// format when the scraper asks for it (Prometheus does) and in Prometheus's
// 0.0.4 text format otherwise (curl). The endpoint is served by the daemon's
// own Kestrel over HTTP/1.1 (its bounds on a request's headers and their time);
// nothing else is served on it.
using System.Net;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Prometheus;

namespace Mail.Shared.Metrics;

public static class MetricsEndpoint
{
    public const string Key = "metrics_listen";

    public static Setting Setting { get; } = Setting.Text(Key, "",
        "OpenMetrics endpoint for Prometheus: a loopback host:port or unix:/path (GET /metrics); empty: none");

    /// <summary>The configured endpoint, checked: loopback or a Unix socket only; null when off.</summary>
    public static ListenAddress? Address(MailConfig config, string program) => Address(config.Get(Key), config.FilePath, program);

    /// <summary>A metrics_listen value as written in <paramref name="configFile"/> (a relative socket path is taken from its folder).</summary>
    public static ListenAddress? Address(string text, string? configFile, string program)
    {
        if (text.Length == 0) return null;
        if (text.StartsWith("unix:", StringComparison.Ordinal) && !Path.IsPathRooted(text[5..]))
        {
            var baseDir = configFile != null ? Path.GetDirectoryName(Path.GetFullPath(configFile))! : Environment.CurrentDirectory;
            text = "unix:" + Path.GetFullPath(Path.Combine(baseDir, text[5..]));
        }
        if (!ListenAddress.TryParse(text, out var address))
            throw new ConfigException($"{program}: bad value '{text}' for '{Key}': expected 127.0.0.1:PORT or unix:/path");
        if (address!.EndPoint is IPEndPoint ip && !IPAddress.IsLoopback(ip.Address))
            throw new ConfigException($"{program}: '{Key}' must be a loopback address or a Unix socket, not {text}: the counters name clients and users");
        return address;
    }

    /// <summary>Binds the endpoint on the daemon's Kestrel (called from its listen callback).</summary>
    public static void Listen(KestrelServerOptions kestrel, ListenAddress address)
    {
        // Kestrel's own bounds hold (32 KB of headers read within 30 s, at most 100 of them).
        void Http1(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions lo) => lo.Protocols = HttpProtocols.Http1;
        switch (address.EndPoint)
        {
            case System.Net.Sockets.UnixDomainSocketEndPoint:
                var path = address.ToString()[5..];
                LineListener.PrepareUnixSocket(path);
                kestrel.ListenUnixSocket(path, Http1);
                break;
            case IPEndPoint ip:
                kestrel.Listen(ip, Http1);
                break;
        }
    }

    /// <summary>Maps GET /metrics; the daemon's other HTTP listener (AuthD's gRPC) speaks HTTP/2 only and is not served.</summary>
    public static void Map(IEndpointRouteBuilder app) => app.MapGet("/metrics", (RequestDelegate)ServeAsync);

    private static async Task ServeAsync(HttpContext context)
    {
        if (!HttpProtocol.IsHttp11(context.Request.Protocol) && !HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var openMetrics = context.Request.Headers.Accept.Any(a => a?.Contains("application/openmetrics-text", StringComparison.OrdinalIgnoreCase) == true);
        context.Response.ContentType = openMetrics
            ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
            : "text/plain; version=0.0.4; charset=utf-8";
        await MailMetrics.Registry.CollectAndExportAsTextAsync(context.Response.Body,
            openMetrics ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText, context.RequestAborted).ConfigureAwait(false);
    }
}
