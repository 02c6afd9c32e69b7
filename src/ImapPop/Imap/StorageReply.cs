// A storage failure as IMAP says it (RFC 5530 response codes), in one place,
// as Dovecot's imap_get_error_string; and as POP3 says it (RFC 3206).
using Mail.Shared.IO;

namespace Mail.ImapPop.Imap;

internal static class StorageReply
{
    /// <summary>The tagged NO for a failure of this kind.</summary>
    public static string Imap(StorageErrorKind kind) => kind switch
    {
        StorageErrorKind.NoPermission => "NO [NOPERM] Permission denied.",
        StorageErrorKind.NoSpace => "NO [OVERQUOTA] Not enough disk space.",
        StorageErrorKind.OverQuota => "NO [OVERQUOTA] Quota exceeded (mailbox for user is full)",
        StorageErrorKind.NotFound => "NO [NONEXISTENT] Mailbox doesn't exist.",
        StorageErrorKind.Exists => "NO [ALREADYEXISTS] Mailbox already exists.",
        StorageErrorKind.Expunged => "NO [EXPUNGEISSUED] Some of the requested messages no longer exist.",
        StorageErrorKind.InUse => "NO [INUSE] Mailbox is locked, try again later.",
        StorageErrorKind.Limit => "NO [LIMIT] A limit of the mail store was reached.",
        StorageErrorKind.NotPossible => "NO [CANNOT] Cannot do that here.",
        _ => "NO [UNAVAILABLE] Temporary failure of the mail store, try again later.",
    };

    /// <summary>The -ERR for a failure of this kind.</summary>
    public static string Pop3(StorageErrorKind kind) => kind switch
    {
        StorageErrorKind.InUse => "[IN-USE] Mailbox is locked, try again later.",
        StorageErrorKind.NoPermission or StorageErrorKind.NotPossible => "[SYS/PERM] The mail store refused the operation.",
        _ => "[SYS/TEMP] Temporary failure of the mail store, try again later.",
    };

    /// <summary>A failure that is the administrator's to fix (logged as an error); the rest are the user's or passing.</summary>
    public static bool IsFault(StorageErrorKind kind) => kind is StorageErrorKind.NoPermission or StorageErrorKind.Temporary or StorageErrorKind.NotPossible or StorageErrorKind.NoSpace;
}
