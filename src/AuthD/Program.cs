// AuthD: the only reader of the user directory. Serves SASL, user look-ups
// and recipient resolution over gRPC on a Unix socket (mode 0660).
using System.Globalization;
using Mail.AuthD;
using Mail.AuthD.DovecotAuth;
using Mail.AuthD.Sasl;
using Mail.AuthD.Socketmap;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.UserDirectory;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using NLog.Extensions.Logging;

// Every AuthD request is a short line answered from memory or one directory query: it is
// answered fastest on the socket's own event thread, without a hop to the thread pool and back
// for each read (half of AuthD's CPU went to those thread switches under Dovecot's logins). One
// event thread, as Dovecot's auth has one event loop: with two, a connection accepted on one was
// served on the other, and each login woke both (a paced Dovecot-style login cost 0.9-1.0 ms
// with two, 0.5-0.6 with one). Set before the first socket exists; costly password schemes still
// run on the pool (Credentials), so one slow check never holds up the loop.
foreach (var (name, value) in new[] { ("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1"), ("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", "1") })
    if (Environment.GetEnvironmentVariable(name) == null) Environment.SetEnvironmentVariable(name, value);
return await Daemon.RunAsync("authd", AuthDSettings.Settings, args, AuthDHost.Build,
    config => $"directory={config.Get("directory_driver")}, grpc=unix:{config.GetPath("grpc_socket")}, dovecot-auth=unix:{config.GetPath("dovecot_auth_socket")}, socketmap=unix:{config.GetPath("socketmap_socket")}");

namespace Mail.AuthD
{
    internal static class AuthDHost
    {
        /// <summary>Builds the AuthD web host from its configuration (tests start it in-process).</summary>
        public static WebApplication Build(MailConfig config)
        {
            var grpcSocket = config.GetPath("grpc_socket");
            var authSocket = config.GetPath("dovecot_auth_socket");
            var mapSocket = config.GetPath("socketmap_socket");
            var userdbSocket = config.GetPath("dovecot_userdb_socket");
            var mode = ParseMode(config.Get("socket_mode"));

            var directory = DirectoryFactory.Open(config);
            var accounts = new Accounts(directory, new AccountDefaults(
                config.GetPath("mail_root"), (uint)config.GetInt("mail_uid"), (uint)config.GetInt("mail_gid"),
                config.GetSize("default_quota"), config.Get("recipient_delimiter")));
            var throttle = new LoginThrottle(config.GetDuration("auth_failure_delay"),
                config.GetDuration("auth_failure_delay_max"), config.GetDuration("auth_failure_window"));
            var mechanisms = config.GetList("auth_mechanisms").Select(m => m.ToUpperInvariant()).ToList();
            foreach (var m in mechanisms)
                if (!SaslMechanism.Known.Contains(m))
                    throw new ConfigException($"authd: unknown SASL mechanism '{m}' in 'auth_mechanisms'");
            var sasl = new SaslServer(new Credentials(directory, new LoginCache(config.GetDuration("auth_cache_ttl"))),
                throttle, mechanisms, config.Get("hostname"));
            var resolver = new RecipientResolver(accounts,
                (int)config.GetInt("alias_recursion_limit"), (int)config.GetInt("alias_expansion_limit"));
            var maps = new SocketmapMaps(accounts);
            // Auth clients (Postfix's smtpd) keep their connection open for long.
            var limits = new NetLimits { MaxLineLength = 16384, IdleTimeout = TimeSpan.FromHours(1), MaxConnections = 4000 };
            var gate = new ConnectionGate(limits);

            var app = LineHost.Create((k, _) =>
            {
                LineListener.PrepareUnixSocket(grpcSocket);
                k.ListenUnixSocket(grpcSocket, lo => lo.Protocols = HttpProtocols.Http2);
            }, TimeSpan.FromSeconds(10), metrics: Mail.Shared.Metrics.MetricsEndpoint.Address(config, "authd"), services: builder =>
            {
                // Kestrel's side of the same: a connection's reads continue where the socket completed.
                builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
                builder.Services.AddGrpc(o =>
                {
                    o.MaxReceiveMessageSize = 64 * 1024;
                    o.MaxSendMessageSize = 1 << 20;
                    o.EnableDetailedErrors = false;
                });
                builder.Services.AddSingleton(accounts);
                builder.Services.AddSingleton(sasl);
                builder.Services.AddSingleton(resolver);
            });
            // Each call counts as activity for the idle trim (gRPC does not read through LineConnection).
            app.Use((context, next) => { IdleMemoryTrim.Touch(); return next(context); });
            app.MapGrpcService<AuthService>();
            app.Lifetime.ApplicationStarted.Register(() => IdleMemoryTrim.Start(app.Lifetime.ApplicationStopping));
            app.Lifetime.ApplicationStarted.Register(() => LineListener.SetSocketMode(grpcSocket, mode));
            // The line protocols' clients connect for a request or two each (Dovecot's login and mail
            // processes): served off Kestrel, each on the thread its socket event came in on (UnixLineListener).
            var lines = new List<UnixLineListener>();
            void Serve(string name, string path, Func<LineConnection, Task> session)
            {
                if (path.Length > 0)
                    lines.Add(UnixLineListener.Bind(new LineListenerOptions { Name = name, Address = new ListenAddress(new System.Net.Sockets.UnixDomainSocketEndPoint(path)), Limits = limits },
                        mode, gate, session));
            }
            Serve("dovecot-auth", authSocket, c => new DovecotAuthSession(c, sasl).RunAsync());
            Serve("dovecot-userdb", userdbSocket, c => new DovecotMasterSession(c, accounts).RunAsync());
            Serve("socketmap", mapSocket, c => new SocketmapSession(c, maps).RunAsync());
            app.Lifetime.ApplicationStarted.Register(() => { foreach (var l in lines) l.Start(app.Lifetime.ApplicationStopping); });
            app.Lifetime.ApplicationStopped.Register(() =>
            {
                foreach (var l in lines) l.WaitStopped(TimeSpan.FromSeconds(10));
                try { File.Delete(grpcSocket); } catch (IOException) { }
                (directory as IAsyncDisposable)?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
            });
            return app;
        }

        private static UnixFileMode ParseMode(string text)
        {
            try
            {
                var mode = Convert.ToInt32(text, 8);
                if (mode is >= 0 and <= 0x1FF) return (UnixFileMode)mode;
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { }
            throw new ConfigException($"authd: bad value '{text}' for 'socket_mode': must be an octal mode such as 0660");
        }
    }
}
