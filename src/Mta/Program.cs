// mtad: the SMTP server (MX, submission, submissions), the queue and its
// manager, delivering local mail by LMTP.
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Mail.Mta;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.Smtp;
using Mail.Queue;
using Microsoft.Extensions.Hosting;

return await Daemon.RunAsync("mtad", MtaSettings.Settings, args, MtaHost.Build,
    config => $"mx={config.Get("mx_listen")}, submission={config.Get("submission_listen")}, submissions={config.Get("submissions_listen")}, spool={config.GetPath("spool_dir")}");

namespace Mail.Mta
{
    internal static class MtaHost
    {
        public static Microsoft.AspNetCore.Builder.WebApplication Build(MailConfig config)
        {
            var limits = new NetLimits
            {
                MaxLineLength = 4096,
                IdleTimeout = config.GetDuration("idle_timeout"),
                StressTimeout = config.GetDuration("stress_timeout"),
                MinDataRate = (int)config.GetInt("min_data_rate"),
                MaxConnections = (int)config.GetInt("max_connections"),
                MaxConnectionsPerIp = (int)config.GetInt("max_connections_per_ip"),
            };
            // Empty mynetworks: nobody relays without AUTH, not even loopback.
            var networks = config.GetList("mynetworks").Select(n =>
            {
                var parts = n.Split('/');
                if (!IPAddress.TryParse(parts[0], out var ip)) throw new ConfigException($"mtad: bad network '{n}' in 'mynetworks'");
                var max = ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
                int bits = max;
                if (parts.Length == 2 && (!int.TryParse(parts[1], out bits) || bits < 0 || bits > max)) throw new ConfigException($"mtad: bad network '{n}' in 'mynetworks'");
                return (ip, bits);
            }).ToList();
            var options = new SmtpOptions(config.Get("hostname"), config.GetSize("max_message_size"), (int)config.GetInt("max_recipients"), networks,
                config.Get("smtpd_tls_security_level") == "encrypt", Postmaster(config),
                config.Get("smtpd_forbid_bare_newline") == "reject", config.GetBool("mx_auth"), SubmissionPorts(config));
            var auth = AuthClient.FromConfig(config);
            var spool = new Spool(config.GetPath("spool_dir"));
            var recipients = new RecipientCache(auth, config.GetDuration("recipient_cache_ttl"), config.Get("recipient_delimiter"));
            NextHop routes;
            try { routes = new NextHop(config.Get("relayhost"), (int)config.GetInt("smtp_port"), config.GetList("dns_servers")); }
            catch (Exception e) when (e is ArgumentException or FormatException) { throw new ConfigException($"mtad: bad relayhost or dns_servers: {e.Message}"); }
            var lmtp = ServerAddress.ParseDestination(config.Get("lmtp_destination"))
                       ?? throw new ConfigException($"mtad: bad value '{config.Get("lmtp_destination")}' in 'lmtp_destination': must be unix:PATH, host:port or [address]:port");
            var keyDir = config.GetPath("dkim_key_dir");
            var signing = keyDir.Length > 0 ? new Mail.MailAuth.DkimKeyring(keyDir) : null;
            Mail.MailAuth.Srs? srs = null;
            if (config.GetBool("srs_enable"))
            {
                var secretFile = config.GetPath("srs_secret_file") is { Length: > 0 } given ? given : Path.Combine(config.GetPath("spool_dir"), "srs.secret");
                try
                {
                    if (!File.Exists(secretFile))
                    {
                        Directory.CreateDirectory(Path.GetDirectoryName(secretFile)!);
                        Mail.Shared.IO.AtomicFile.WriteText(secretFile, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n");
                    }
                    var srsDomain = config.Get("srs_domain") is { Length: > 0 } d ? d : Postmaster(config)[("postmaster@".Length)..];
                    srs = Mail.MailAuth.Srs.FromFile(secretFile, srsDomain);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
                {
                    throw new ConfigException($"mtad: SRS secret {secretFile}: {e.Message} (or set srs_enable = no)");
                }
            }
            var passwordMaps = config.GetBool("smtp_sasl_auth_enable") && config.GetPath("smtp_sasl_password_maps") is { Length: > 0 } pw ? new LookupTable(pw) : null;
            var relayMaps = config.GetPath("sender_dependent_relayhost_maps") is { Length: > 0 } rh ? new LookupTable(rh) : null;
            var logins = new RelayLogins(passwordMaps, relayMaps, config.GetBool("smtp_sender_dependent_authentication"));
            var queue = new QueueManager(spool, recipients, new QueueOptions(lmtp, config.Get("hostname"),
                config.GetDuration("retry_min"), config.GetDuration("retry_max"), config.GetDuration("queue_lifetime"),
                config.GetDuration("delay_warning_time"), (int)config.GetInt("max_deliveries"), (int)config.GetInt("destination_concurrency"),
                routes, Enum.Parse<TlsLevel>(config.Get("smtp_tls_security_level"), ignoreCase: true),
                config.GetList("defer_transports").Contains("smtp", StringComparer.OrdinalIgnoreCase), logins, srs, signing));
            var served = new ServedCertificate(config); // read again at SIGHUP
            var certPath = config.GetPath("tls_cert");
            var checks = Mail.MailAuth.InboundChecksConfig.FromConfig(config, "mtad", recordDmarc: true);
            int Limit(string name) => (int)config.GetInt(name);
            var anvil = new Anvil(new RateLimits(config.GetDuration("anvil_rate_time_unit"), Limit("smtpd_client_connection_rate_limit"),
                Limit("smtpd_client_message_rate_limit"), Limit("smtpd_client_recipient_rate_limit"),
                Limit("smtpd_user_message_rate_limit"), Limit("smtpd_user_recipient_rate_limit")));
            var gate = new ConnectionGate(limits);
            var listeners = new List<(ListenAddress Address, SmtpPort Port)>();
            foreach (var (key, port) in new[] { ("mx_listen", SmtpPort.Mx), ("submission_listen", SmtpPort.Submission), ("submissions_listen", SmtpPort.Submissions) })
                foreach (var a in config.GetList(key))
                    listeners.Add((ListenAddress.TryParse(a, out var la) ? la! : throw new ConfigException($"mtad: bad value '{a}' in '{key}'"), port));
            // The pickup socket speaks the MX dialect; a local process is trusted to relay.
            var control = config.GetPath("control_socket");
            var pickup = config.GetPath("pickup_socket");
            if (pickup.Length > 0) listeners.Add((ListenAddress.Parse("unix:" + pickup), SmtpPort.Mx));
            if (listeners.Any(l => l.Port == SmtpPort.Submissions) && served.Current == null)
                throw new ConfigException($"mtad: submissions_listen needs tls_cert and tls_key ({certPath} not found)");
            var app = LineHost.Create((k, stopping) =>
            {
                foreach (var (address, port) in listeners)
                    k.ListenLines(new LineListenerOptions
                    {
                        Name = port.ToString().ToLowerInvariant(), Address = address, Limits = limits, ImplicitTls = port == SmtpPort.Submissions,
                        BusyReply = "421 4.7.0 Too many connections, try later",
                    }, gate, () => served.Current, stopping, c => new SmtpSession(c, port, auth, recipients, spool, queue, () => served.Current, options, checks, signing, anvil, srs).RunAsync());
                if (control.Length > 0)
                {
                    var controlLimits = new NetLimits { MaxLineLength = 1024, IdleTimeout = TimeSpan.FromMinutes(1), MaxConnections = 10 };
                    k.ListenLines(new LineListenerOptions { Name = "control", Address = ListenAddress.Parse("unix:" + control), Limits = controlLimits },
                        new ConnectionGate(controlLimits), () => null, stopping, c => new ControlSession(c, queue).RunAsync());
                }
            }, TimeSpan.FromSeconds(30), metrics: Mail.Shared.Metrics.MetricsEndpoint.Address(config, "mtad"));
            MtaMetrics.CountQueue(spool);
            var qmgrStop = new CancellationTokenSource();
            Task? qmgr = null;
            app.Lifetime.ApplicationStarted.Register(() => qmgr = Task.Run(() => queue.RunAsync(qmgrStop.Token)));
            if (config.GetBool("dmarc_reports"))
            {
                var reports = new Mail.MailAuth.DmarcReports(new Mail.MailAuth.DnsResolver(config.GetList("dns_servers"), config.GetDuration("dns_timeout")),
                    new Mail.MailAuth.PublicSuffixList(config.GetPath("public_suffix_list")), config.Get("hostname"), options.Postmaster);
                var reporter = new DmarcReporter(spool, reports, signing, options.Postmaster, queue.Wake);
                app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(() => reporter.RunAsync(qmgrStop.Token)));
            }
            app.Lifetime.ApplicationStopping.Register(() => { qmgrStop.Cancel(); qmgr?.Wait(TimeSpan.FromSeconds(20)); });
            app.Lifetime.ApplicationStarted.Register(() =>
            {
                if (pickup.Length > 0) LineListener.SetSocketMode(pickup, (UnixFileMode)Convert.ToInt32("666", 8));
                if (control.Length > 0) LineListener.SetSocketMode(control, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            });
            app.Lifetime.ApplicationStopped.Register(() => { served.Dispose(); auth.Dispose(); });
            app.Lifetime.ApplicationStarted.Register(() => IdleMemoryTrim.Start(app.Lifetime.ApplicationStopping));
            return app;
        }

        /// <summary>The ports of the submission listeners, for the refusal of AUTH on the MX ("587 and 465").</summary>
        private static string SubmissionPorts(MailConfig config)
        {
            var ports = new[] { "submission_listen", "submissions_listen" }
                .SelectMany(k => config.Get(k).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Select(a => a[(a.LastIndexOf(':') + 1)..]).Distinct().ToList();
            return ports.Count == 0 ? "" : ports.Count == 1 ? ports[0] : string.Join(", ", ports[..^1]) + " and " + ports[^1];
        }

        /// <summary>postmaster_address (checked), or postmaster@ the hostname without its first label.</summary>
        private static string Postmaster(MailConfig config)
        {
            var postmaster = MtaSettings.Postmaster(config);
            return MailAddress.TryParse(postmaster, out _) ? postmaster : throw new ConfigException($"mtad: bad address '{postmaster}' in 'postmaster_address'");
        }
    }
}
