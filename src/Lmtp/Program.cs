// lmtpd: the LMTP delivery agent (RFC 2033). Delivers into Dovecot-compatible
// Maildir; asks AuthD about every recipient. Listens on TCP and a Unix socket.
using Mail.Lmtp;
using Microsoft.Extensions.Hosting;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using Mail.Shared.Net;

return await Daemon.RunAsync("lmtpd", LmtpSettings.Settings, args, LmtpHost.Build,
    config => $"listen={config.Get("listen")}, socket={config.GetPath("socket")}, auth={AuthClient.Describe(config)}");

namespace Mail.Lmtp
{
    internal static class LmtpHost
    {
        public static Microsoft.AspNetCore.Builder.WebApplication Build(MailConfig config)
        {
            var limits = new NetLimits
            {
                MaxLineLength = 4096,
                IdleTimeout = config.GetDuration("idle_timeout"),
                MaxConnections = (int)config.GetInt("max_connections"),
                MaxConnectionsPerIp = (int)config.GetInt("max_connections"),
            };
            var options = new LmtpOptions(config.Get("hostname"), config.GetSize("max_message_size"),
                (int)config.GetInt("max_recipients"), config.Get("recipient_delimiter"), config.GetBool("quota_temporary"),
                new UserCache(config.GetDuration("user_cache_ttl")));
            var auth = AuthClient.FromConfig(config);
            var sieve = SieveDelivery.Configure(config) is { } sieveOptions ? new SieveDelivery(sieveOptions) : null;
            var gate = new ConnectionGate(limits);
            var socket = config.GetPath("socket");
            var modeText = config.Get("socket_mode");
            UnixFileMode mode;
            try { mode = (UnixFileMode)Convert.ToInt32(modeText, 8); }
            catch (Exception e) when (e is FormatException or ArgumentException) { throw new ConfigException($"lmtpd: bad value '{modeText}' for 'socket_mode'"); }
            var addresses = config.GetList("listen").Select(a => ListenAddress.TryParse(a, out var la)
                ? la! : throw new ConfigException($"lmtpd: bad value '{a}' in 'listen': expected host:port")).ToList();
            if (socket.Length > 0) addresses.Add(ListenAddress.Parse("unix:" + socket));
            var app = LineHost.Create((k, stopping) =>
            {
                foreach (var a in addresses)
                    k.ListenLines(new LineListenerOptions { Name = "lmtp", Address = a, Limits = limits, BusyReply = "421 4.3.2 Too many connections" },
                        gate, () => null, stopping, c => new LmtpSession(c, auth, options, sieve).RunAsync());
            }, TimeSpan.FromSeconds(30), metrics: Mail.Shared.Metrics.MetricsEndpoint.Address(config, "lmtpd"));
            app.Lifetime.ApplicationStarted.Register(() => { if (socket.Length > 0) LineListener.SetSocketMode(socket, mode); });
            app.Lifetime.ApplicationStopped.Register(() => { auth.Dispose(); if (socket.Length > 0) try { File.Delete(socket); } catch (IOException) { } });
            app.Lifetime.ApplicationStarted.Register(() => IdleMemoryTrim.Start(app.Lifetime.ApplicationStopping));
            return app;
        }
    }
}
