// The host a line-protocol daemon runs in: Kestrel without HTTP, NLog for the
// framework's own logging, and a stopping token that reaches every session
// when SIGTERM arrives, so that each can say goodbye before the host waits
// for it to end (at most ShutdownTimeout). With metrics_listen, it also
// serves the OpenMetrics endpoint (MetricsEndpoint).
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NLog.Extensions.Logging;

namespace Mail.Shared.Net;

public static class LineHost
{
    public static WebApplication Create(Action<KestrelServerOptions, CancellationToken> listen, TimeSpan shutdownTimeout,
        Action<WebApplicationBuilder>? services = null, ListenAddress? metrics = null)
    {
        var stopping = new CancellationTokenSource();
        // No appsettings.json is read for changes: with reloading on, the host watched its working
        // directory and everything under it with inotify (the whole file system under a unit
        // without WorkingDirectory), waking a thread for every file written there.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.Logging.ClearProviders();
        builder.Logging.AddNLog();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            listen(k, stopping.Token);
            if (metrics != null) Metrics.MetricsEndpoint.Listen(k, metrics);
        });
        services?.Invoke(builder);
        var app = builder.Build();
        app.Lifetime.ApplicationStopping.Register(stopping.Cancel);
        app.Lifetime.ApplicationStopped.Register(stopping.Dispose);
        if (metrics != null)
        {
            Metrics.MetricsEndpoint.Map(app);
            if (metrics.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint)
            {
                var path = metrics.ToString()[5..];
                app.Lifetime.ApplicationStarted.Register(() => LineListener.SetSocketMode(path,
                    UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite));
                app.Lifetime.ApplicationStopped.Register(() => { try { File.Delete(path); } catch (IOException) { } });
            }
        }
        return app;
    }
}
