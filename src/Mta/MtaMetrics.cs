// mtad's own metrics: messages taken into the queue, the queue's size by
// state (counted when scraped), and each recipient's delivery outcome and
// times, by transport (lmtp: the local mailboxes; smtp: a remote MX or the
// relay host; none: decided without a connection, as an unknown user).
using Mail.Queue;
using Mail.Shared.Metrics;
using Prometheus;

namespace Mail.Mta;

internal static class MtaMetrics
{
    public static readonly Counter Accepted = MailMetrics.Factory.CreateCounter("mail_messages_accepted_total",
        "Messages taken into the queue (the 250 after DATA), by listener", "listener");
    public static readonly Gauge Queue = MailMetrics.Factory.CreateGauge("mail_queue_messages",
        "Messages in the queue now, by state (incoming, active, deferred, hold, corrupt)", "state");
    public static readonly Counter Deliveries = MailMetrics.Factory.CreateCounter("mail_deliveries_total",
        "Recipients' delivery outcomes (sent, bounced, deferred, expired), by transport", "transport", "outcome");
    public static readonly Histogram Attempt = MailMetrics.Latency("mail_delivery_attempt_seconds",
        "Time of a delivery attempt that ended sent or bounced, by transport", "transport");
    public static readonly Histogram Delay = MailMetrics.Latency("mail_delivery_delay_seconds",
        "From arrival in the queue to delivery, of each recipient sent, by transport", "transport");

    /// <summary>The queue's folders counted at each scrape.</summary>
    public static void CountQueue(Spool spool) => MailMetrics.Registry.AddBeforeCollectCallback(() =>
    {
        foreach (var dir in Enum.GetValues<QueueDir>())
        {
            int n = 0;
            try { foreach (var _ in Directory.EnumerateFiles(spool.DirPath(dir))) n++; }
            catch (IOException) { }
            Queue.WithLabels(dir.ToString().ToLowerInvariant()).Set(n);
        }
    });

    public static void Result(string transport, string status, TimeSpan attempt, TimeSpan delay)
    {
        Deliveries.WithLabels(transport, status).Inc();
        if (status is "sent" or "bounced" && transport != "none") Attempt.WithLabels(transport).Observe(attempt.TotalSeconds);
        if (status == "sent") Delay.WithLabels(transport).Observe(delay.TotalSeconds);
    }
}
