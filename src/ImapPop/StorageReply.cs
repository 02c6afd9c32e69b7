// A storage failure as IMAP says it (RFC 5530 response codes), in one place,
// as Dovecot's imap_get_error_string; and as POP3 says it (RFC 3206): the
// two protocols of imappopd over one Maildir library.
using Mail.Shared.IO;

using Mail.ImapPop.Imap;

namespace Mail.ImapPop;

internal static class StorageReply
{
    /// <summary>The tagged NO for a failure of this kind.</summary>
    public static ImapResponse Imap(StorageErrorKind kind) => ImapResponse.No(kind switch
    {
        StorageErrorKind.NoPermission => "[NOPERM] Permission denied.",
        StorageErrorKind.NoSpace => "[OVERQUOTA] Not enough disk space.",
        StorageErrorKind.OverQuota => "[OVERQUOTA] Quota exceeded (mailbox for user is full)",
        StorageErrorKind.NotFound => "[NONEXISTENT] Mailbox doesn't exist.",
        StorageErrorKind.Exists => "[ALREADYEXISTS] Mailbox already exists.",
        StorageErrorKind.Expunged => "[EXPUNGEISSUED] Some of the requested messages no longer exist.",
        StorageErrorKind.InUse => "[INUSE] Mailbox is locked, try again later.",
        StorageErrorKind.Limit => "[LIMIT] A limit of the mail store was reached.",
        StorageErrorKind.NotPossible => "[CANNOT] Cannot do that here.",
        _ => "[UNAVAILABLE] Temporary failure of the mail store, try again later.",
    });

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
