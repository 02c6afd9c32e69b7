// CREATE (RFC 9051 6.3.4; a trailing separator as RFC 3501 6.3.3 allows), with SPECIAL-USE (RFC 6154).
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> CreateAsync(Args args)
    {
        var (name, error) = OnlyMailbox(args);
        // RFC 3501 6.3.3: a name ending in the separator declares that names will be created
        // under it; the mailbox is the name without it (as Dovecot creates it).
        if (error != null && name.Length > 1 && name[^1] == MailboxName.Separator && name[^2] != MailboxName.Separator)
        {
            name = MailboxName.Normalize(name[..^1]);
            error = name == "INBOX" ? null : MailboxName.Validate(name);
        }
        if (name == "INBOX") return ImapResponse.No("[ALREADYEXISTS] Mailbox already exists");
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (folder.Exists) return ImapResponse.No("[ALREADYEXISTS] Mailbox already exists");
        // RFC 9051 6.3.4: superior hierarchical names are created too.
        for (int i = name.IndexOf(MailboxName.Separator); i > 0; i = name.IndexOf(MailboxName.Separator, i + 1))
        {
            var parent = FolderOf(name[..i]);
            if (!parent.Exists) parent.Create();
        }
        folder.Create();
        Log.Info($"{conn.SessionId}: create user=<{MailLog.Safe(_user!.User)}> mailbox=\"{MailLog.Safe(name)}\"");
        return ImapResponse.Ok("Create completed.");
    }
}
