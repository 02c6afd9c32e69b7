// Runs the policy around every SASL exchange, whichever protocol carries it:
// which mechanisms a client may use, the delay after a failure, and the one
// log line per attempt (user, client IP, mechanism, result; never a secret).
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using NLog;

namespace Mail.AuthD.Sasl;

internal sealed class SaslServer(Credentials credentials, LoginThrottle throttle, IReadOnlyList<string> enabled, string hostname)
{
    private static readonly Logger Log = MailLog.For("auth");
    public const int MaxSteps = 8;

    public IReadOnlyList<string> Offered(bool secured) =>
        enabled.Where(m => secured || !SaslMechanism.IsPlaintext(m)).ToList();

    /// <summary>A new exchange, or null with the refusal to send.</summary>
    public SaslMechanism? Begin(string name, bool secured, out SaslStep refusal)
    {
        refusal = default;
        name = name.ToUpperInvariant();
        if (name.Length > 32 || !enabled.Contains(name))
        {
            refusal = new SaslStep(SaslStatus.BadMechanism, Reason: "unsupported mechanism");
            return null;
        }
        if (!secured && SaslMechanism.IsPlaintext(name))
        {
            refusal = new SaslStep(SaslStatus.BadMechanism, Reason: "plaintext authentication needs TLS");
            return null;
        }
        return SaslMechanism.Create(name, credentials, hostname);
    }

    /// <summary>
    /// Logs the attempt's outcome and returns how long the answer must wait
    /// (the throttle's delay after a failure; zero otherwise).
    /// </summary>
    public TimeSpan Conclude(string mechanism, SaslMechanism? mech, SaslStep result, ClientInfo? client)
    {
        var delay = TimeSpan.Zero;
        var ip = string.IsNullOrEmpty(client?.RemoteIp) ? "" : client.RemoteIp;
        var user = mech?.AttemptedUser?.ToLowerInvariant();
        var line = $"{MailLog.Safe(client?.SessionId, 40)}: auth: service={MailLog.Safe(client?.Service, 20)}, rip={MailLog.Safe(ip, 64)}, " +
                   $"mech={MailLog.Safe(mechanism, 32)}, user=<{MailLog.Safe(user, 100)}>";
        switch (result.Status)
        {
            case SaslStatus.Success:
                throttle.Success(user);
                Log.Info($"{line}, result=ok");
                break;
            case SaslStatus.Failure or SaslStatus.Malformed:
                delay = throttle.Failure(ip, user);
                Log.Warn($"{line}, result=failed ({result.Reason}), delay={delay.TotalMilliseconds:0}ms");
                break;
            case SaslStatus.Tempfail:
                Log.Error($"{line}, result=tempfail ({MailLog.Safe(result.Reason)})");
                break;
            default:
                Log.Info($"{line}, result={result.Status.ToString().ToLowerInvariant()} ({result.Reason})");
                break;
        }
        Mail.Shared.Metrics.MailMetrics.Logins.WithLabels(ServiceLabel(client?.Service), Mail.Shared.Auth.SaslExchange.Outcome(result.Status)).Inc();
        return delay;
    }

    private static readonly HashSet<string> Services = ["smtp", "submission", "submissions", "imap", "pop3", "sieve", "managesieve", "lmtp", "mailctl", "doveadm"];

    /// <summary>The client's service as a metric label: one of the known few, else "other" (a client names it).</summary>
    private static string ServiceLabel(string? service) =>
        service != null && Services.Contains(service) ? service : string.IsNullOrEmpty(service) ? "unknown" : "other";
}
