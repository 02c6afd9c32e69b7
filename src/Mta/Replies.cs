// mtad's own SMTP replies, each beside the RFC section it answers (those it
// shares with lmtpd are in Shared/Smtp/SmtpReply). Texts follow Postfix's
// smtpd, so that administrators and log tools recognise them.
using Mail.Shared.Smtp;

namespace Mail.Mta;

internal static class Replies
{
    // RFC 5321 4.1.1.1, 4.3.2: HELO/EHLO.
    public static readonly SmtpReply SendHeloFirst = new(503, "5.5.1", "Error: send HELO/EHLO first");
    public static SmtpReply NeedHostName(string verb) => new(501, "5.5.4", $"Syntax: {verb} hostname");

    // RFC 7601/8601 checks at the end of DATA that could not run: this message waits, nothing else.
    public static readonly SmtpReply BadSrsAddress = new(550, "5.1.1", "Recipient address rejected: invalid or expired SRS address");
    public static readonly SmtpReply ChecksFailed = new(451, "4.3.0", "Error: temporary failure in message checks, try again later");

    // RFC 3207 4: STARTTLS.
    public static readonly SmtpReply TlsNotAvailable = new(502, "5.5.1", "STARTTLS not available");
    public const string TlsGoAhead = "220 2.0.0 Ready to start TLS";

    // RFC 4954 4, 6: AUTH.
    public static SmtpReply AuthOnSubmission(string ports) => new(503, "5.5.1",
        ports.Length == 0 ? "Error: authentication not enabled" : $"Error: authentication not enabled on this port; use the submission port{(ports.Contains(' ') ? "s" : "")} {ports}");
    public static readonly SmtpReply EncryptionRequired = new(538, "5.7.11", "Encryption required for requested authentication mechanism");
    public static readonly SmtpReply SendEhloFirst = new(503, "5.5.1", "Error: send EHLO first");
    public static readonly SmtpReply AlreadyAuthenticated = new(503, "5.5.1", "Error: already authenticated");
    public static readonly SmtpReply AuthInTransaction = new(503, "5.5.1", "Error: MAIL transaction in progress");
    public static readonly SmtpReply CannotDecode = new(501, "5.5.2", "Cannot decode response");
    public static readonly SmtpReply AuthSucceeded = new(235, "2.7.0", "Authentication successful");
    public static readonly SmtpReply AuthTemporaryFailure = new(454, "4.7.0", "Temporary authentication failure");
    public static readonly SmtpReply UnknownMechanism = new(504, "5.5.4", "Unrecognized authentication type");
    public static readonly SmtpReply AuthAborted = new(501, "5.7.0", "Authentication aborted");
    public static readonly SmtpReply AuthFailed = new(535, "5.7.8", "Error: authentication failed");
    /// <summary>RFC 4954 6: submission without a login (RFC 6409 4.3).</summary>
    public static readonly SmtpReply AuthRequired = new(530, "5.7.0", "Authentication required");

    // RFC 5321 3.6.2, RFC 3463 X.7.1: relay control and sender ownership.
    public static readonly SmtpReply RelayDenied = new(554, "5.7.1", "Relay access denied");
    public static SmtpReply SenderNotOwned(string user) => new(553, "5.7.1", $"Sender address rejected: not owned by user {user}");

    // RFC 1870: SIZE; RFC 6152 BODY.
    public static readonly SmtpReply BadSize = SmtpReply.BadParameter("SIZE");
    public static readonly SmtpReply BadBody = SmtpReply.BadParameter("BODY");

    // RFC 5321 4.1.1.4, RFC 3030 2: DATA and BDAT.
    public static readonly SmtpReply StartData = new(354, "", "End data with <CR><LF>.<CR><LF>");
    public static readonly SmtpReply BdatInProgress = new(503, "5.5.1", "Error: BDAT transaction in progress");
    public static readonly SmtpReply BdatFailedEarlier = new(503, "5.5.1", "Error: earlier BDAT failed; send RSET");
    /// <summary>SMTP smuggling: a bare CR in DATA, or a bare LF with smtpd_forbid_bare_newline = reject, ends the session.</summary>
    public static SmtpReply BareLineEnd(string hostname, string what) => new SmtpReply(521, "5.5.2", $"{hostname} Error: bare <{what}> received").AndClose();
    public static readonly SmtpReply BareCrInChunk = new(554, "5.6.0", "Error: bare <CR> received");
    /// <summary>RFC 5321 6.3: a loop, by the count of Received headers.</summary>
    public static readonly SmtpReply TooManyHops = new(554, "5.4.0", "Error: too many hops");
    public static SmtpReply Queued(string id) => new(250, "2.0.0", "Ok: queued as " + id);
}
