// mailctl status: each daemon's state, counters, the queue and the last
// errors, read from the daemons' own metrics endpoints (metrics_listen in
// each configuration beside authd.conf), the same data Prometheus scrapes.
// Exit 0 when every daemon with an endpoint answers, 3 otherwise (as
// `systemctl status` for a unit that is not running).
using System.CommandLine;
using System.Globalization;
using Mail.Shared.Metrics;

namespace Mail.MailCtl;

internal static class StatusCommand
{
    public const int ExitNotRunning = 3;
    private static readonly string[] Daemons = ["authd", "lmtpd", "imappopd", "mtad"];

    public static Command Build()
    {
        var cmd = new Command("status", "Each daemon's state, connections, messages, deliveries, logins, queue and last errors (from their metrics endpoints)");
        cmd.SetAction(parse => CtlContext.RunAsync(async () =>
        {
            var authdConf = CtlContext.FindConfigPath(parse);
            var dir = authdConf != null ? Path.GetDirectoryName(Path.GetFullPath(authdConf))! : "/etc/mail";
            int exit = 0;
            var errors = new List<(DateTimeOffset Time, string Daemon, string Text)>();
            foreach (var daemon in Daemons)
            {
                var conf = Path.Combine(dir, daemon + ".conf");
                if (!File.Exists(conf))
                {
                    Console.WriteLine($"{daemon,-10}not configured here ({conf} does not exist)");
                    continue;
                }
                var listen = MetricsEndpoint.Address(ReadSetting(conf, MetricsEndpoint.Key), conf, daemon);
                if (listen == null)
                {
                    Console.WriteLine($"{daemon,-10}state unknown: no metrics_listen in {conf}");
                    continue;
                }
                IReadOnlyList<Sample> samples;
                try { samples = await MetricsScrape.GetAsync(listen, TimeSpan.FromSeconds(5)); }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
                {
                    Console.WriteLine($"{daemon,-10}not running (no answer on {listen}: {e.Message})");
                    exit = ExitNotRunning;
                    continue;
                }
                foreach (var line in Describe(samples)) Console.WriteLine(line.Length == 0 ? "" : line);
                foreach (var s in samples.Where(s => s.Name == "mail_recent_error_info"))
                    if (DateTimeOffset.TryParse(s.Label("time"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
                        errors.Add((t, daemon, s.Label("message")));
            }
            if (errors.Count > 0)
            {
                Console.WriteLine("last errors:");
                foreach (var (time, daemon, text) in errors.OrderByDescending(e => e.Time).Take(10))
                    Console.WriteLine($"  {time:yyyy-MM-dd HH:mm:ss}Z {daemon,-9}{text}");
            }
            return exit;
        }));
        return cmd;
    }

    /// <summary>A key's value in a configuration file (the last one written), or empty.</summary>
    private static string ReadSetting(string file, string key)
    {
        var value = "";
        foreach (var raw in File.ReadLines(file))
        {
            var line = raw.Trim();
            int eq = line.IndexOf('=');
            if (line.Length == 0 || line[0] == '#' || eq <= 0) continue;
            if (line[..eq].Trim() == key) value = line[(eq + 1)..].Trim();
        }
        return value;
    }

    /// <summary>The lines for one daemon: its state, then one line per family of counters it has.</summary>
    internal static List<string> Describe(IReadOnlyList<Sample> samples)
    {
        IEnumerable<Sample> Named(string name) => samples.Where(s => s.Name == name);
        double Value(string name) => Named(name).Sum(s => s.Value);
        var daemon = Named("mail_daemon_info").Select(s => s.Label("daemon")).FirstOrDefault() ?? "?";
        var started = DateTimeOffset.FromUnixTimeMilliseconds((long)(Value("mail_start_time_seconds") * 1000));
        var up = DateTimeOffset.UtcNow - started;
        var lines = new List<string>
        {
            $"{daemon,-10}running for {Duration(up)} (since {started:yyyy-MM-dd HH:mm:ss}Z), {Value("mail_resident_memory_bytes") / (1 << 20):0.0} MB resident, " +
            $"{Value("mail_log_errors_total"):0} errors logged",
        };
        void Line(string what, IEnumerable<string> parts)
        {
            var list = parts.ToList();
            if (list.Count > 0) lines.Add($"{"",-10}{what}: {string.Join(", ", list)}");
        }
        // "label value" pairs of a counter, summed over the other labels, largest first.
        IEnumerable<string> By(string name, Func<Sample, string> key) =>
            Named(name).GroupBy(key).Select(g => (g.Key, Sum: g.Sum(s => s.Value))).Where(g => g.Sum > 0)
                .OrderByDescending(g => g.Sum).Select(g => $"{g.Key} {g.Sum:0}");

        var open = Named("mail_connections_open").ToDictionary(s => s.Label("listener"), s => s.Value);
        Line("connections", Named("mail_connections_total").Where(s => s.Value > 0).Select(s =>
            $"{s.Label("listener")} {s.Value:0}{(open.GetValueOrDefault(s.Label("listener")) is var o && o > 0 ? $" ({o:0} open)" : "")}"));
        Line("turned away", By("mail_connections_refused_total", s => s.Label("listener")));
        if (Named("mail_messages_accepted_total").Any())
            Line("messages", [$"accepted {Value("mail_messages_accepted_total"):0}"]);
        Line("refused", By("mail_refusals_total", s => $"{s.Label("command")} {s.Label("status")}"));
        if (Named("mail_queue_messages").Any())
            Line("queue", Named("mail_queue_messages").Select(s => $"{s.Label("state")} {s.Value:0}"));
        Line("deliveries", By("mail_deliveries_total", s => s.Labels.ContainsKey("transport")
            ? $"{s.Label("transport")} {s.Label("outcome")}" : s.Label("outcome") + (s.Label("outcome") == "delivered" ? "" : $" ({s.Label("status")})")));
        Line("logins", By("mail_logins_total", s => $"{s.Label("service")} {s.Label("outcome")}"));
        return lines;
    }

    private static string Duration(TimeSpan t) =>
        t.TotalDays >= 1 ? $"{(int)t.TotalDays}d {t.Hours}h" : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h {t.Minutes}m" : $"{t.Minutes}m {t.Seconds}s";
}
