// SMTP and LMTP replies as values: the code (RFC 5321 4.2), the enhanced
// status code (RFC 3463, RFC 2034) and the text. Handlers return them; only
// the session core writes them. The replies mtad and lmtpd share sit here,
// each beside the RFC section it answers; a program's own replies sit in its
// own Replies file. The replies for storage failures are decided here, once.
using Mail.Shared.IO;

namespace Mail.Shared.Smtp;

public readonly record struct SmtpReply(int Code, string Status, string Text)
{
    /// <summary>The session ends once this reply is written (221, 421, and what cannot go on in step).</summary>
    public bool Closes { get; init; }

    /// <summary>Nothing to write: the handler has answered already (STARTTLS's 220 before the handshake).</summary>
    public static readonly SmtpReply None = default;

    public bool IsNone => Code == 0;
    public bool IsError => Code >= 400;

    /// <summary>The first line, as the log shows it.</summary>
    public override string ToString() => Line(Text.Split('\n')[0], last: true);

    /// <summary>The reply's lines as written: a text of several lines ('\n') is a multi-line reply (RFC 5321 4.2.1).</summary>
    public IEnumerable<string> Lines()
    {
        var lines = Text.Split('\n');
        for (int i = 0; i < lines.Length; i++) yield return Line(lines[i], last: i == lines.Length - 1);
    }

    private string Line(string text, bool last) =>
        $"{Code}{(last ? ' ' : '-')}{(Status.Length > 0 ? Status + " " : "")}{text}";

    /// <summary>The same reply, and then the session ends.</summary>
    public SmtpReply AndClose() => this with { Closes = true };

    /// <summary>The same reply about one address: "451 4.3.0 &lt;rcpt&gt; text" (also LMTP's replies after DATA, RFC 2033 4.2).</summary>
    public SmtpReply About(string address) => this with { Text = $"<{address}> {Text}" };

    /// <summary>The same reply naming the address as Postfix's smtpd does: "554 5.7.1 &lt;a@b&gt;: Relay access denied".</summary>
    public SmtpReply WithAddress(string address) => this with { Text = $"<{address}>: {Text}" };

    // RFC 5321 4.2.2 / 4.1.1.x: the ordinary positive replies.
    public static readonly SmtpReply Ok = new(250, "2.0.0", "Ok");                           // RSET, NOOP (4.1.1.5, 4.1.1.9)
    public static readonly SmtpReply SenderOk = new(250, "2.1.0", "Ok");                     // MAIL (4.1.1.2; RFC 3463 X.1.0)
    public static readonly SmtpReply RecipientOk = new(250, "2.1.5", "Ok");                  // RCPT (4.1.1.3; RFC 3463 X.1.5)
    public static readonly SmtpReply Bye = new SmtpReply(221, "2.0.0", "Bye").AndClose();    // QUIT (4.1.1.10)
    /// <summary>RFC 3030 2: a BDAT chunk that is not the last.</summary>
    public static SmtpReply ChunkReceived(long octets) => new(250, "2.0.0", $"{octets} octets received");

    // RFC 5321 3.8, 4.5.3.2: the server ends the session.
    public static readonly SmtpReply ShuttingDown = new SmtpReply(421, "4.3.2", "Service shutting down").AndClose();
    public static readonly SmtpReply IdleTimeout = new SmtpReply(421, "4.4.2", "Idle timeout, closing connection").AndClose();
    public static readonly SmtpReply TooManyErrors = new SmtpReply(421, "4.7.0", "Too many errors, closing connection").AndClose();
    public static readonly SmtpReply TooManyJunk = new SmtpReply(421, "4.7.0", "Too many junk commands, closing connection").AndClose();

    // RFC 5321 4.2.4, 4.3.2: syntax and sequence.
    public static readonly SmtpReply LineTooLong = new(500, "5.5.2", "Error: line too long");                 // 4.5.3.1.4
    /// <summary>A NUL, bare CR or other control character, or bytes that are not UTF-8, in a command line (RFC 5321 4.1.1, RFC 6531 3.3).</summary>
    public static readonly SmtpReply ControlCharacters = new(500, "5.5.2", "Error: bad syntax: control characters or invalid UTF-8 in command");
    public static readonly SmtpReply Unrecognized = new(502, "5.5.2", "Error: command not recognized");
    public static readonly SmtpReply NestedMail = new(503, "5.5.1", "Error: nested MAIL command");
    public static readonly SmtpReply NeedMail = new(503, "5.5.1", "Error: need MAIL command");
    public static readonly SmtpReply NoValidRecipients = new(554, "5.5.1", "Error: no valid recipients");
    public static readonly SmtpReply VrfyDisabled = new(502, "5.5.1", "VRFY command is disabled");            // 3.5.3 allows it
    /// <summary>RFC 3207 4: a command before STARTTLS where the listener requires TLS.</summary>
    public static readonly SmtpReply StartTlsFirst = new(530, "5.7.0", "Must issue a STARTTLS command first");
    public static SmtpReply Syntax(string usage) => new(501, "5.5.4", "Syntax: " + usage);
    public static SmtpReply BadParameter(string name) => new(501, "5.5.4", $"Bad {name} parameter");
    /// <summary>RFC 5321 4.1.1.11 / 4.2.4: a MAIL or RCPT parameter we do not offer.</summary>
    public static SmtpReply UnsupportedParameter(string name) => new(555, "5.5.4", "Unsupported option: " + name);

    // RFC 5321 4.1.2, RFC 3463 X.1.3, X.1.7: address syntax.
    public static readonly SmtpReply BadSenderSyntax = new(501, "5.1.7", "Bad sender address syntax");
    public static readonly SmtpReply BadRecipientSyntax = new(501, "5.1.3", "Bad recipient address syntax");

    // RFC 5321 4.5.3.1.8, 4.5.3.1.10, RFC 1870: limits.
    public static readonly SmtpReply TooManyRecipients = new(452, "4.5.3", "Error: too many recipients");
    public static readonly SmtpReply MessageTooBig = new(552, "5.3.4", "Message size exceeds fixed limit");
    public static readonly SmtpReply HeaderTooBig = new(552, "5.3.4", "Error: message header size exceeds limit");
    /// <summary>RFC 3463 X.6.0: content no hop may take (a NUL, RFC 5322 2.3).</summary>
    public static readonly SmtpReply ContainsNul = new(554, "5.6.0", "Error: message contains NUL characters");

    // RFC 3463 X.1.1, X.3.0: recipients.
    public static readonly SmtpReply UserUnknown = new(550, "5.1.1", "Recipient address rejected: User unknown in virtual mailbox table");
    /// <summary>AuthD could not answer: the client retries (Postfix's "Temporary lookup failure").</summary>
    public static readonly SmtpReply TemporaryLookupFailure = new(451, "4.3.0", "Temporary lookup failure");

    /// <summary>RFC 3463 X.2.2: the mailbox is over its quota; permanent unless the administrator wants senders to retry.</summary>
    public static SmtpReply MailboxFull(bool temporary) => temporary ? new(452, "4.2.2", "Mailbox full") : new(552, "5.2.2", "Mailbox full");

    /// <summary>The queue could not take the message: X.3.1 when the disk is full, otherwise a local error to retry.</summary>
    public static SmtpReply SpoolFailure(StorageErrorKind kind) => kind switch
    {
        StorageErrorKind.NoSpace or StorageErrorKind.OverQuota or StorageErrorKind.Limit => new(452, "4.3.1", "Insufficient system storage"),
        _ => new(451, "4.3.0", "Local error in processing"),
    };

    /// <summary>A mailbox could not take the message.</summary>
    public static SmtpReply MailboxFailure(StorageErrorKind kind, bool quotaTemporary) => kind switch
    {
        StorageErrorKind.NoSpace => new(452, "4.3.1", "Insufficient system storage"),
        StorageErrorKind.OverQuota => MailboxFull(quotaTemporary),
        _ => new(451, "4.3.0", "Local delivery error"),
    };
}

/// <summary>Reverse- and forward-path syntax (RFC 5321 4.1.2), strictly: a source route is dropped.</summary>
public static class SmtpPath
{
    /// <summary>"&lt;addr&gt; params" → (addr, params); a null path when malformed. "&lt;&gt;" is the null sender.</summary>
    public static (string? Path, string Params) Parse(string text)
    {
        text = text.TrimStart();
        if (!text.StartsWith('<')) return (null, "");
        int end = text.IndexOf('>');
        if (end < 0) return (null, "");
        var path = text[1..end];
        if (path.StartsWith('@'))
        {
            int colon = path.IndexOf(':');
            if (colon < 0) return (null, "");
            path = path[(colon + 1)..];
        }
        foreach (var c in path) if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '\\') return (null, "");
        return (path, text[(end + 1)..].Trim());
    }

    /// <summary>The ESMTP parameters after the path (RFC 5321 4.1.2 esmtp-param): keyword upper-cased, value as sent.</summary>
    public static IEnumerable<(string Key, string Value)> Parameters(string text)
    {
        foreach (var p in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = p.IndexOf('=');
            yield return eq > 0 ? (p[..eq].ToUpperInvariant(), p[(eq + 1)..]) : (p.ToUpperInvariant(), "");
        }
    }
}
