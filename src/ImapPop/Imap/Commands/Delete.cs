// DELETE (RFC 9051 6.3.5).
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> DeleteAsync(Args args)
    {
        var (name, error) = OnlyMailbox(args);
        if (name == "INBOX") return ImapResponse.No("[CANNOT] INBOX can't be deleted.");
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        if (_selected?.Name == name) Unselect();
        // As Dovecot: the folder's directory goes (renamed aside first, so no reader sees it half-deleted).
        var trash = Path.Combine(_user!.Maildir, "tmp", ".deleted." + Guid.NewGuid().ToString("N"));
        Directory.Move(folder.Path, trash);
        FolderIndex.Forget(folder.Path);
        ModSeqStore.Forget(folder.Path);
        Directory.Delete(trash, recursive: true);
        MetadataStore.MailboxMoved(_user.Maildir, _user.Uid, _user.Gid, name, null);
        Log.Info($"{conn.SessionId}: delete user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(name)}\"");
        return ImapResponse.Ok("Delete completed.");
    }
}
