// RENAME (RFC 9051 6.3.6): a folder and its children; INBOX's messages move to the new name.
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>A RENAME parsed: the existing name and the new one (RFC 9051 6.3.6).</summary>
    private sealed record RenameQuery(MailboxArgument From, MailboxArgument To);

    private RenameQuery ParseRename(Args args)
    {
        args.Space();
        var from = MailboxArg(args, out var e1);
        args.Space();
        var to = MailboxArg(args, out var e2);
        args.End();
        return new RenameQuery(new(from, e1), new(to, e2));
    }

    private async Task<ImapResponse> RenameAsync(Args args)
    {
        var ((from, e1), (to, e2)) = ParseRename(args);
        if (e1 != null || e2 != null) return ImapResponse.No("[CANNOT] " + (e1 ?? e2));
        if (to == "INBOX") return ImapResponse.No("[ALREADYEXISTS] Target mailbox already exists");
        var source = FolderOf(from);
        var target = FolderOf(to);
        if (!source.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + from);
        if (target.Exists) return ImapResponse.No("[ALREADYEXISTS] Target mailbox already exists");
        if (from == "INBOX")
        {
            // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX stays, empty.
            target.Create();
            source.MoveAllTo(target);
        }
        else
        {
            if (_selected?.Name == from) Unselect();
            // Children move with their parent.
            var prefix = Path.GetFileName(source.Path) + ".";
            var children = Directory.EnumerateDirectories(_user!.Maildir, prefix + "*")
                .Where(c => Path.GetFileName(c).Length > prefix.Length && Path.GetFileName(c).StartsWith(prefix, StringComparison.Ordinal)).ToList();
            Directory.Move(source.Path, target.Path);
            FolderIndex.Forget(source.Path);
            ModSeqStore.Forget(source.Path);
            var targetPrefix = Path.GetFileName(target.Path) + ".";
            foreach (var child in children)
            {
                Directory.Move(child, Path.Combine(_user.Maildir, targetPrefix + Path.GetFileName(child)[prefix.Length..]));
                FolderIndex.Forget(child);
                ModSeqStore.Forget(child);
            }
        }
        if (from != "INBOX") MetadataStore.MailboxMoved(_user!.Maildir, _user.Uid, _user.Gid, from, to);
        return ImapResponse.Ok("Rename completed.");
    }
}
