// STATUS (RFC 9051 6.3.11), with HIGHESTMODSEQ (RFC 7162) and SIZE.
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private string StatusLine(string name, string[] items)
    {
        var folder = FolderOf(name);
        var state = _selected?.Name == name ? null : folder.Sync(takeNew: false);
        var messages = state?.Messages ?? _selected!.Messages.Select(m => m.File).ToList();
        var parts = new List<string>();
        foreach (var item in items)
        {
            parts.Add(item switch
            {
                "MESSAGES" => $"MESSAGES {messages.Count}",
                "RECENT" => $"RECENT {(state == null ? _selected!.Messages.Count(m => m.Recent) : messages.Count(m => m.Recent || m.Uid >= folder.RecentFrom))}",
                "UIDNEXT" => $"UIDNEXT {state?.NextUid ?? _selected!.UidNext}",
                "UIDVALIDITY" => $"UIDVALIDITY {state?.UidValidity ?? _selected!.UidValidity}",
                "UNSEEN" => $"UNSEEN {messages.Count(m => !m.Flags.Contains('S'))}",
                "DELETED" => $"DELETED {messages.Count(m => m.Flags.Contains('T'))}",
                "SIZE" => $"SIZE {messages.Sum(m => MaildirQuota.SizeFromName(m.Path) ?? 0)}",
                "HIGHESTMODSEQ" => $"HIGHESTMODSEQ {HighestModSeq(name, folder, state)}",
                _ => throw new ImapSyntaxException("Unknown STATUS item " + item),
            });
        }
        return $"STATUS {Wire(name)} ({string.Join(' ', parts)})";
    }

    private ulong HighestModSeq(string name, MaildirFolder folder, FolderState? state)
    {
        if (_selected?.Name == name) return _selected.ModSeqs.Highest;
        var store = ModSeqStore.For(folder.Path, _user!.Uid, _user.Gid);
        store.Observe(state ?? folder.Sync(takeNew: false));
        return store.Highest;
    }

    /// <summary>A STATUS command parsed: the mailbox and the items asked for (RFC 9051 6.3.11).</summary>
    private sealed record StatusQuery(MailboxArgument Mailbox, List<string> Items);

    private StatusQuery ParseStatus(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.Space();
        args.Expect('(');
        var items = new List<string>();
        while (!args.TryChar(')')) { if (items.Count > 0) args.Space(); items.Add(args.Atom().ToUpperInvariant()); }
        args.End();
        return new StatusQuery(new(name, error), items);
    }

    private async Task<ImapResponse> StatusAsync(Args args)
    {
        var ((name, error), items) = ParseStatus(args);
        if (error != null) return ImapResponse.No(error);
        if (!FolderOf(name).Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        await Untagged(StatusLine(name, [.. items]));
        return ImapResponse.Ok("Status completed.");
    }
}
