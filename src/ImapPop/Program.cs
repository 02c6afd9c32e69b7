// imappopd: the IMAP and POP3 server over the Maildir store that lmtpd writes; logins
// and user look-ups through AuthD.
using Mail.ImapPop;
using Mail.ImapPop.Imap;
using Mail.ImapPop.ManageSieve;
using Mail.ImapPop.Pop3;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Net;

return await Daemon.RunAsync("imappopd", ImapSettings.Settings, args, ImapHost.Build,
    config => $"imap={config.Get("imap_listen")}, imaps={config.Get("imaps_listen")}, pop3={config.Get("pop3_listen")}, pop3s={config.Get("pop3s_listen")}, managesieve={config.Get("managesieve_listen")}, auth={AuthClient.Describe(config)}");

namespace Mail.ImapPop
{
    internal static class ImapHost
    {
        public static Microsoft.AspNetCore.Builder.WebApplication Build(MailConfig config)
        {
            var limits = new NetLimits
            {
                MaxLineLength = 65536,
                IdleTimeout = config.GetDuration("idle_timeout"),
                StressTimeout = config.GetDuration("stress_timeout"),
                MinDataRate = (int)config.GetInt("min_data_rate"),
                MaxConnections = (int)config.GetInt("max_connections"),
                MaxConnectionsPerIp = (int)config.GetInt("max_connections_per_ip"),
            };
            var auth = AuthClient.FromConfig(config);
            var hub = new MailboxHub();
            var sessions = new UserSessions((int)config.GetInt("max_sessions_per_user"));
            var options = new ImapOptions(config.Get("hostname"), config.GetSize("max_message_size"), hub, sessions, config.GetDuration("login_timeout"), config.GetBool("trust_loopback"));
            var pop3Options = new Pop3Options(sessions, config.GetDuration("login_timeout"), config.GetBool("trust_loopback"));
            var sieveOptions = new ManageSieveOptions(config.Get("hostname"), sessions, config.GetDuration("login_timeout"), config.GetBool("trust_loopback"),
                (int)config.GetInt("sieve_max_scripts"), config.GetSize("sieve_max_storage"), config.GetSize("sieve_max_script_size"), (int)config.GetInt("sieve_max_redirects"));
            var served = new ServedCertificate(config); // read again at SIGHUP
            var certPath = config.GetPath("tls_cert");
            var listeners = new List<(ListenAddress Address, bool Tls, string Protocol)>();
            foreach (var (key, tls, protocol) in new[] { ("imap_listen", false, "imap"), ("imaps_listen", true, "imap"), ("pop3_listen", false, "pop3"), ("pop3s_listen", true, "pop3"), ("managesieve_listen", false, "sieve") })
                foreach (var a in config.GetList(key))
                    listeners.Add((ListenAddress.TryParse(a, out var la) ? la! : throw new ConfigException($"imappopd: bad value '{a}' in '{key}'"), tls, protocol));
            if (listeners.Any(l => l.Tls) && served.Current == null)
                throw new ConfigException($"imappopd: imaps_listen and pop3s_listen need tls_cert and tls_key ({certPath} not found)");
            var gate = new ConnectionGate(limits);
            var app = LineHost.Create((k, stopping) =>
            {
                foreach (var (address, tls, protocol) in listeners)
                    k.ListenLines(new LineListenerOptions
                    {
                        Name = protocol + (tls ? "s" : ""), Address = address, Limits = limits, ImplicitTls = tls,
                        BusyReply = protocol switch
                        {
                            "pop3" => "-ERR [SYS/TEMP] Too many connections, try later.",
                            "sieve" => "BYE (TRYLATER) \"Too many connections, try later.\"",
                            _ => "* BYE Too many connections, try later.",
                        },
                    }, gate, () => served.Current, stopping, c => protocol switch
                    {
                        "pop3" => new Pop3Session(c, auth, () => served.Current, pop3Options).RunAsync(),
                        "sieve" => new ManageSieveSession(c, auth, () => served.Current, sieveOptions).RunAsync(),
                        _ => new ImapSession(c, auth, () => served.Current, options, tls).RunAsync(),
                    });
            }, TimeSpan.FromSeconds(10), metrics: Mail.Shared.Metrics.MetricsEndpoint.Address(config, "imappopd"));
            app.Lifetime.ApplicationStopped.Register(() => { served.Dispose(); hub.Dispose(); auth.Dispose(); });
            app.Lifetime.ApplicationStarted.Register(() => IdleMemoryTrim.Start(app.Lifetime.ApplicationStopping));
            return app;
        }
    }
}
