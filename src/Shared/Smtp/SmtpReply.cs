// SMTP and LMTP replies as values: the code (RFC 5321 4.2), the enhanced
// status code (RFC 3463, RFC 2034) and the text. The replies for storage
// failures are decided here, once for mtad and lmtpd.
using Mail.Shared.IO;

namespace Mail.Shared.Smtp;

public readonly record struct SmtpReply(int Code, string Status, string Text)
{
    public override string ToString() => Status.Length > 0 ? $"{Code} {Status} {Text}" : $"{Code} {Text}";

    public bool IsError => Code >= 400;

    /// <summary>The same reply about one recipient: "451 4.3.0 &lt;rcpt&gt; text" (LMTP's replies after DATA, RFC 2033 4.2).</summary>
    public SmtpReply About(string recipient) => this with { Text = $"<{recipient}> {Text}" };

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
