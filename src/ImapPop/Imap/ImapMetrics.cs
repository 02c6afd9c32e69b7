// imappopd's own metrics: each IMAP command's time by name and status (OK,
// NO, BAD), IDLE left out (its time is the client's). Logins of every
// protocol are counted where the credentials are checked (mail_logins_total).
using Mail.Shared.Metrics;
using Prometheus;

namespace Mail.ImapPop.Imap;

internal static class ImapMetrics
{
    public static readonly Histogram Commands = MailMetrics.Latency("mail_imap_command_seconds",
        "IMAP commands' time from the whole command read to the tagged response, by command and status", "command", "status");

    public static void Command(string name, ImapResponse response, TimeSpan took) =>
        Commands.WithLabels(name, response.IsNone ? "OK" : response.Status).Observe(took.TotalSeconds);
}
