// What a daemon counts, for Prometheus and for `mailctl status`: one registry
// per process (no default collectors: they would start event listeners), the
// metrics every daemon shares (connections, logins, refusals, errors, memory),
// and a factory for each daemon's own (MtaMetrics, LmtpMetrics, ...). Counting
// is always on and costs an interlocked add; only the endpoint is optional.
using Prometheus;

namespace Mail.Shared.Metrics;

public static class MailMetrics
{
    public static readonly CollectorRegistry Registry = Prometheus.Metrics.NewCustomRegistry();
    public static readonly MetricFactory Factory = Prometheus.Metrics.WithCustomRegistry(Registry);

    /// <summary>Latency buckets in seconds, from a cached look-up (1 ms) to a slow remote server (60 s).</summary>
    public static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    public static readonly Gauge Info = Factory.CreateGauge("mail_daemon_info", "The daemon and its version (always 1)", "daemon", "version");
    public static readonly Gauge StartTime = Factory.CreateGauge("mail_start_time_seconds", "When the daemon started, in seconds since the epoch");
    public static readonly Gauge Resident = Factory.CreateGauge("mail_resident_memory_bytes", "Resident memory of the daemon's process");
    public static readonly Counter Connections = Factory.CreateCounter("mail_connections_total", "Connections accepted, by listener", "listener");
    public static readonly Counter ConnectionsTurnedAway = Factory.CreateCounter("mail_connections_refused_total",
        "Connections turned away by the connection limits, by listener", "listener");
    public static readonly Gauge ConnectionsOpen = Factory.CreateGauge("mail_connections_open", "Connections open now, by listener", "listener");
    public static readonly Counter Logins = Factory.CreateCounter("mail_logins_total",
        "Logins by service and outcome (ok, failed, throttled, tempfail)", "service", "outcome");
    public static readonly Counter Refusals = Factory.CreateCounter("mail_refusals_total",
        "SMTP/LMTP error replies, by command and enhanced status code (the reason: 5.1.1 no such user, 5.7.1 relay or policy, ...)", "command", "status");
    public static readonly Counter Errors = Factory.CreateCounter("mail_log_errors_total", "Lines logged at error level or worse");
    /// <summary>The last errors logged, newest first: labels carry the time and the text (at most <see cref="RecentErrorCount"/> series).</summary>
    public static readonly Gauge RecentErrors = Factory.CreateGauge("mail_recent_error_info",
        "The last errors the daemon logged (always 1; newest has n=\"1\")", "n", "time", "message");

    public const int RecentErrorCount = 5;
    private static readonly LinkedList<(DateTimeOffset Time, string Message)> Recent = new();
    private static bool _recentChanged;

    static MailMetrics()
    {
        StartTime.Set(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        Registry.AddBeforeCollectCallback(() =>
        {
            Resident.Set(Environment.WorkingSet);
            lock (Recent)
            {
                if (!_recentChanged) return;
                _recentChanged = false;
                foreach (var labels in RecentErrors.GetAllLabelValues().ToList()) RecentErrors.RemoveLabelled(labels);
                int n = 0;
                foreach (var (time, message) in Recent)
                    RecentErrors.WithLabels((++n).ToString(System.Globalization.CultureInfo.InvariantCulture), time.ToString("yyyy-MM-ddTHH:mm:ssZ"), message).Set(1);
            }
        });
    }

    /// <summary>Names the daemon (mail_daemon_info); called once at start.</summary>
    public static void Start(string daemon) =>
        Info.WithLabels(daemon, typeof(MailMetrics).Assembly.GetName().Version?.ToString() ?? "0").Set(1);

    /// <summary>An error the daemon logged: counted and kept among the last few.</summary>
    public static void Error(string message)
    {
        Errors.Inc();
        lock (Recent)
        {
            Recent.AddFirst((DateTimeOffset.UtcNow, message.Length > 300 ? message[..300] : message));
            while (Recent.Count > RecentErrorCount) Recent.RemoveLast();
            _recentChanged = true;
        }
    }

    /// <summary>A latency histogram (seconds, LatencyBuckets) of this daemon, with the given labels.</summary>
    public static Histogram Latency(string name, string help, params string[] labels) =>
        Factory.CreateHistogram(name, help, new HistogramConfiguration { Buckets = LatencyBuckets, LabelNames = labels });
}
