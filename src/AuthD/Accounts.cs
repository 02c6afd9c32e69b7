// Users as the rest of the suite sees them: the directory's entry completed
// with this server's defaults (Maildir path, uid/gid, quota). A Maildir path
// made from an address never leaves mail_root.
using Mail.Shared.Smtp;
using Mail.Shared.Auth;
using Mail.Shared.UserDirectory;

namespace Mail.AuthD;

internal sealed record AccountDefaults(string MailRoot, uint Uid, uint Gid, long QuotaBytes, string RecipientDelimiter);

internal sealed class Accounts(IMailDirectory directory, AccountDefaults defaults)
{
    public IMailDirectory Directory => directory;
    public AccountDefaults Defaults => defaults;

    /// <summary>The user for a login or delivery name; "user+detail@dom" finds "user@dom".</summary>
    public async ValueTask<DirectoryUser?> FindUserAsync(string name, CancellationToken ct)
    {
        if (!MailAddress.TryParse(name, out var address)) return null;
        var user = await directory.FindUserAsync(address.ToString(), ct).ConfigureAwait(false);
        if (user != null) return user;
        var (bare, detail) = address.SplitDetail(defaults.RecipientDelimiter);
        return detail == null ? null : await directory.FindUserAsync(bare.ToString(), ct).ConfigureAwait(false);
    }

    /// <summary>The full record for LMTP, IMAP and POP3, or null if no safe Maildir path can be made.</summary>
    public MailUser? ToMailUser(DirectoryUser user)
    {
        var maildir = user.Maildir == null ? DefaultMaildir(user.Address)
            : Path.IsPathRooted(user.Maildir) ? user.Maildir
            : UnderMailRoot(user.Maildir);
        if (maildir == null) return null;
        return new MailUser
        {
            User = user.Address,
            Home = user.Home ?? maildir,
            Maildir = maildir,
            Uid = user.Uid ?? defaults.Uid,
            Gid = user.Gid ?? defaults.Gid,
            QuotaBytes = (ulong)(user.QuotaBytes > 0 ? user.QuotaBytes : defaults.QuotaBytes),
            QuotaMessages = (ulong)user.QuotaMessages,
            Active = user.Active,
        };
    }

    /// <summary>mail_root/domain/local, refusing any address that would name a path elsewhere.</summary>
    public string? DefaultMaildir(string address)
    {
        if (!MailAddress.TryParse(address, out var a)) return null;
        if (!IsSafeComponent(a.Local) || !IsSafeComponent(a.Domain)) return null;
        return UnderMailRoot(Path.Combine(a.Domain, a.Local));
    }

    /// <summary>A relative Maildir (PostfixAdmin's "domain/local/") under mail_root, or null if it would leave it.</summary>
    public string? UnderMailRoot(string relative)
    {
        if (relative.Contains('\0')) return null;
        var root = Path.GetFullPath(defaults.MailRoot);
        var path = Path.GetFullPath(Path.Combine(root, relative)).TrimEnd('/');
        return path.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal) ? path : null;
    }

    private static bool IsSafeComponent(string s) =>
        s.Length > 0 && s != "." && s != ".." && !s.Contains('/') && !s.Contains('\0') && !s.StartsWith('.');
}
