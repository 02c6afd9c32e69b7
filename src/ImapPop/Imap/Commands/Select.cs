// SELECT and EXAMINE (RFC 9051 6.3.2-3, with CONDSTORE/QRESYNC RFC 7162), CHECK,
// CLOSE and UNSELECT (RFC 3691).
using System.Collections.Frozen;
using Mail.Shared.Logging;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private void Unselect()
    {
        if (_selected != null) options.Hub.Leave(_selected.Folder.Path, this);
        _selected = null;
        NotifySelected();
        _updates.Clear(); // searches kept up to date end with their mailbox (RFC 5267 4.2)
    }

    /// <summary>A SELECT or EXAMINE parsed: the mailbox and its CONDSTORE or QRESYNC parameters (RFC 9051 6.3.2, RFC 7162 3.1.8, 3.2.5).</summary>
    private sealed record SelectQuery(MailboxArgument Mailbox, bool CondStore, (uint Validity, ulong ModSeq, SequenceSet? Known)? Qresync);

    private SelectQuery ParseSelect(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        // SELECT mailbox (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids]))
        (uint Validity, ulong ModSeq, SequenceSet? Known)? qresync = null;
        bool condstore = false;
        if (args.TryChar(' '))
        {
            args.Expect('(');
            while (!args.TryChar(')'))
            {
                var p = args.Atom().ToUpperInvariant();
                if (p == "CONDSTORE") condstore = true;
                else if (p == "QRESYNC")
                {
                    if (!_qresync) throw new ImapSyntaxException("QRESYNC not enabled");
                    args.Space();
                    args.Expect('(');
                    var validity = args.NzNumber();
                    args.Space();
                    var modseq = args.Number64();
                    SequenceSet? known = null;
                    if (args.TryChar(' ') && args.Peek() != '(') known = args.SequenceSet();
                    if (args.TryChar(' ') || args.Peek() == '(')
                    {
                        args.Expect('('); // seq-match-data: not needed, the known UIDs suffice
                        while (!args.TryChar(')')) if (!args.TryChar(' ')) args.Atom("*");
                    }
                    args.Expect(')');
                    qresync = (validity, modseq, known);
                }
                else throw new ImapSyntaxException("Unknown SELECT parameter " + p);
                if (args.Peek() != ')') args.Space();
            }
        }
        args.End();
        return new SelectQuery(new(name, error), condstore, qresync);
    }

    private async Task<ImapResponse> SelectAsync(Args args, bool readOnly)
    {
        var ((name, error), condstore, qresync) = ParseSelect(args);
        if (condstore) _condstore = true; // RFC 7162 3.1: a CONDSTORE-enabling command
        // RFC 9051 and 7162: a mailbox left by a new SELECT is announced CLOSED.
        if (_selected != null) conn.BufferLine("* OK [CLOSED] Previous mailbox closed.");
        Unselect();
        if (error != null) return ImapResponse.No(error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        var state = folder.Sync(takeNew: !readOnly);
        var modSeqs = ModSeqStore.For(folder.Path, _user!.Uid, _user.Gid);
        modSeqs.Observe(state);
        _selected = new Selected(name, folder, readOnly, state, folder.Keywords(), modSeqs) { CondStore = _condstore, Vanished = _qresync, Rev2 = _rev2 };
        options.Hub.Join(folder.Path, this);
        NotifySelected();
        var s = _selected;
        await Untagged($"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()})");
        await Untagged($"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()} \\*)] Flags permitted.");
        await Untagged($"{s.Count} EXISTS");
        if (!_rev2) await Untagged($"{s.Messages.Count(m => m.Recent)} RECENT");
        var firstUnseen = s.Messages.FindIndex(m => !m.File.Flags.Contains('S'));
        if (firstUnseen >= 0) await Untagged($"OK [UNSEEN {firstUnseen + 1}] First unseen.");
        await Untagged($"OK [UIDVALIDITY {s.UidValidity}] UIDs valid");
        await Untagged($"OK [UIDNEXT {s.UidNext}] Predicted next UID");
        await Untagged($"OK [HIGHESTMODSEQ {modSeqs.Highest}] Highest");
        if (qresync is { } q && q.Validity == s.UidValidity)
        {
            // RFC 7162 3.2.5.1: what vanished and what changed since the client's mod-sequence.
            var max = s.Max(uid: true);
            var gone = modSeqs.ExpungedSince(q.ModSeq, u => q.Known == null || q.Known.Contains(u, Math.Max(max, u)));
            if (gone.Count > 0) await Untagged("VANISHED (EARLIER) " + SequenceSet.Compact(gone));
            for (int i = 0; i < s.Count; i++)
            {
                var m = s.Messages[i];
                var seq = modSeqs.Of(m.Uid);
                if (seq > q.ModSeq) await Untagged($"{i + 1} FETCH (UID {m.Uid} FLAGS ({FlagList(m)}) MODSEQ ({seq}))");
            }
        }
        Log.Info($"{conn.SessionId}: {(readOnly ? "examine" : "select")} user=<{MailLog.Safe(_user!.User)}> mailbox=\"{MailLog.Safe(name)}\" messages={s.Count}");
        return ImapResponse.Ok(readOnly ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.");
    }

    private async Task<ImapResponse> CheckAsync(Args args)
    {
        args.End();
        return ImapResponse.Ok("Check completed.");
    }

    private async Task<ImapResponse> CloseAsync(Args args, bool expunge)
    {
        args.End();
        if (expunge && !_selected!.ReadOnly) ExpungeDeleted(null);
        Unselect();
        return ImapResponse.Ok(expunge ? "Close completed." : "Unselect completed.");
    }
}
