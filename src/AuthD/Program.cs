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

            var app = LineHost.Create((k, stopping) =>
            {
                LineListener.PrepareUnixSocket(grpcSocket);
                k.ListenUnixSocket(grpcSocket, lo => lo.Protocols = HttpProtocols.Http2);
                if (authSocket.Length > 0)
                    k.ListenLines(new LineListenerOptions { Name = "dovecot-auth", Address = new ListenAddress(new System.Net.Sockets.UnixDomainSocketEndPoint(authSocket)), Limits = limits },
                        gate, () => null, stopping, c => new DovecotAuthSession(c, sasl).RunAsync());
                if (userdbSocket.Length > 0)
                    k.ListenLines(new LineListenerOptions { Name = "dovecot-userdb", Address = new ListenAddress(new System.Net.Sockets.UnixDomainSocketEndPoint(userdbSocket)), Limits = limits },
                        gate, () => null, stopping, c => new DovecotMasterSession(c, accounts).RunAsync());
                if (mapSocket.Length > 0)
                    k.ListenLines(new LineListenerOptions { Name = "socketmap", Address = new ListenAddress(new System.Net.Sockets.UnixDomainSocketEndPoint(mapSocket)), Limits = limits },
                        gate, () => null, stopping, c => new SocketmapSession(c, maps).RunAsync());
            }, TimeSpan.FromSeconds(10), metrics: Mail.Shared.Metrics.MetricsEndpoint.Address(config, "authd"), services: builder =>
            {
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
            var sockets = new[] { grpcSocket, authSocket, userdbSocket, mapSocket }.Where(s => s.Length > 0).ToArray();
            app.Lifetime.ApplicationStarted.Register(() => { foreach (var s in sockets) LineListener.SetSocketMode(s, mode); });
            app.Lifetime.ApplicationStopped.Register(() =>
            {
                foreach (var s in sockets) { try { File.Delete(s); } catch (IOException) { } }
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
