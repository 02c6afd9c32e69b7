// Commands that show the client is not speaking SMTP at all: a web request or
// proxy probe sent to a mail port (cross-protocol attacks), or a message's
// header lines sent as commands (a client that ignored a refusal and went on,
// or a script smuggling mail). As Postfix's smtpd_forbidden_commands, the
// session ends at once: no error count, no second chance.
namespace Mail.Shared.Smtp;

public static class SmtpGuard
{
    private static readonly HashSet<string> Forbidden = new(StringComparer.Ordinal)
    {
        "CONNECT", "GET", "POST", "PUT", "HEAD", "USER-AGENT:", "HOST:", "FROM:", "TO:", "SUBJECT:", "RECEIVED:", "MESSAGE-ID:", "DATE:",
    };

    /// <summary>The reply before hanging up (Postfix's words).</summary>
    public static readonly SmtpReply Goodbye = new SmtpReply(221, "2.7.0", "Error: I can break rules, too. Goodbye.").AndClose();

    /// <param name="verb">The command's first word, upper-cased.</param>
    public static bool IsForbidden(string verb) => Forbidden.Contains(verb);
}
