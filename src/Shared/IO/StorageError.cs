// One storage error model, as Dovecot's mail_error: whatever a file
// operation threw (errno inside an IOException, .NET's own exception types,
// the Maildir library's own) is mapped here, once, to a small set of kinds;
// each protocol maps the kinds once to its replies (IMAP RFC 5530 codes,
// SMTP/LMTP reply and enhanced status codes, POP3 RFC 3206 codes).
namespace Mail.Shared.IO;

public enum StorageErrorKind
{
    /// <summary>May work if tried again (an I/O error, a lock held too long by a dead process).</summary>
    Temporary,
    /// <summary>Cannot be done, whatever is tried (a name the file system refuses).</summary>
    NotPossible,
    /// <summary>The file system refuses us (EACCES, EPERM, EROFS): a configuration fault, logged as an error.</summary>
    NoPermission,
    /// <summary>The disk is full (ENOSPC).</summary>
    NoSpace,
    /// <summary>A quota is exceeded (ours, or the file system's EDQUOT).</summary>
    OverQuota,
    /// <summary>The mailbox or folder does not exist.</summary>
    NotFound,
    /// <summary>It exists already.</summary>
    Exists,
    /// <summary>The message was expunged meanwhile.</summary>
    Expunged,
    /// <summary>Someone else holds it (a lock not released in time).</summary>
    InUse,
    /// <summary>A limit of the file system (name length, links, file size, open files).</summary>
    Limit,
}

/// <summary>A storage failure whose kind is known where it happened.</summary>
public sealed class StorageException(StorageErrorKind kind, string message, Exception? inner = null) : IOException(message, inner)
{
    public StorageErrorKind Kind { get; } = kind;
}

public static class StorageError
{
    /// <summary>Is this an exception of storage (the ones <see cref="Classify"/> knows)?</summary>
    public static bool Is(Exception e) => e is IOException or UnauthorizedAccessException;

    public static StorageErrorKind Classify(Exception e) => e switch
    {
        StorageException s => s.Kind,
        UnauthorizedAccessException => StorageErrorKind.NoPermission,
        FileNotFoundException or DirectoryNotFoundException => StorageErrorKind.NotFound,
        PathTooLongException => StorageErrorKind.Limit,
        IOException io => FromErrno(io.HResult), // .NET on Unix puts errno in HResult; so do our own P/Invoke wrappers
        _ => StorageErrorKind.Temporary,
    };

    /// <summary>Linux errno values to kinds.</summary>
    public static StorageErrorKind FromErrno(int errno) => errno switch
    {
        1 or 13 or 30 => StorageErrorKind.NoPermission,           // EPERM, EACCES, EROFS
        28 => StorageErrorKind.NoSpace,                           // ENOSPC
        122 => StorageErrorKind.OverQuota,                        // EDQUOT
        2 or 20 => StorageErrorKind.NotFound,                     // ENOENT, ENOTDIR
        17 or 39 => StorageErrorKind.Exists,                      // EEXIST, ENOTEMPTY
        11 or 16 => StorageErrorKind.InUse,                       // EAGAIN, EBUSY
        23 or 24 or 27 or 31 or 36 => StorageErrorKind.Limit,     // ENFILE, EMFILE, EFBIG, EMLINK, ENAMETOOLONG
        22 or 21 => StorageErrorKind.NotPossible,                 // EINVAL, EISDIR
        _ => StorageErrorKind.Temporary,                          // EIO and the rest
    };
}
