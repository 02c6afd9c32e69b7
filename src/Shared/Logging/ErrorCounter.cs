// Every line logged at error level or worse, counted and kept among the last
// few for the metrics endpoint and `mailctl status`.
using Mail.Shared.Metrics;
using NLog;
using NLog.Targets;

namespace Mail.Shared.Logging;

internal sealed class ErrorCounter : TargetWithLayout
{
    public ErrorCounter()
    {
        Name = "errors";
        Layout = "${message}${onexception:inner=\\: ${exception:format=Message}}";
    }

    protected override void Write(LogEventInfo logEvent) => MailMetrics.Error(RenderLogEvent(Layout, logEvent));
}
