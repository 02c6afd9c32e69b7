// lmtpd's own metrics: each recipient's delivery by outcome (delivered,
// deferred, bounced: over quota, a Sieve reject, a full disk) and the time
// from the end of the message to its reply.
using Mail.Shared.Metrics;
using Mail.Shared.Smtp;
using Prometheus;

namespace Mail.Lmtp;

internal static class LmtpMetrics
{
    public static readonly Counter Deliveries = MailMetrics.Factory.CreateCounter("mail_deliveries_total",
        "Recipients' deliveries into Maildir by outcome (delivered, deferred, bounced) and enhanced status code", "outcome", "status");
    public static readonly Histogram Time = MailMetrics.Latency("mail_delivery_seconds",
        "Time to store a message for one recipient (quota, Sieve, write, fsync), by outcome", "outcome");

    public static void Delivered(SmtpReply reply, TimeSpan took)
    {
        var outcome = reply.Code < 400 ? "delivered" : reply.Code < 500 ? "deferred" : "bounced";
        Deliveries.WithLabels(outcome, reply.Status.Length > 0 ? reply.Status : "-").Inc();
        Time.WithLabels(outcome).Observe(took.TotalSeconds);
    }
}
