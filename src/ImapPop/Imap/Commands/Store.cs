// STORE and UID STORE (RFC 9051 6.4.6, UNCHANGEDSINCE RFC 7162).
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>A STORE command parsed, before anything of it runs (RFC 9051 6.4.6; UNCHANGEDSINCE, RFC 7162 3.1.3).</summary>
    private sealed record StoreQuery(SequenceSet Set, ulong? UnchangedSince, string Op, bool Silent, List<string> Flags);

    private static StoreQuery ParseStore(Args args)
    {
        args.Space();
        var set = args.SequenceSet();
        args.Space();
        ulong? unchangedSince = null;
        if (args.TryChar('('))
        {
            if (!args.Atom().Equals("UNCHANGEDSINCE", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Unknown STORE modifier");
            args.Space();
            unchangedSince = args.Number64();
            args.Expect(')');
            args.Space();
        }
        var op = args.Atom().ToUpperInvariant();
        bool silent = op.EndsWith(".SILENT");
        if (silent) op = op[..^7];
        if (op is not ("FLAGS" or "+FLAGS" or "-FLAGS")) throw new ImapSyntaxException("Invalid STORE operation");
        args.Space();
        var flags = FlagListArg(args);
        args.End();
        return new StoreQuery(set, unchangedSince, op, silent, flags);
    }

    private async Task<ImapResponse> StoreAsync(Args args, bool uid)
    {
        var (set, unchangedSince, op, silent, flags) = ParseStore(args);
        if (unchangedSince != null) EnableCondStore();
        var s = _selected!;
        if (s.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        var letters = Letters(s.Folder, flags, out var error);
        if (letters == null) return ImapResponse.No(error!);
        var known = s.Keywords.Where(k => k.Length > 0).ToHashSet(StringComparer.OrdinalIgnoreCase);
        s.Keywords.Clear();
        s.Keywords.AddRange(s.Folder.Keywords());
        if (s.Keywords.Any(k => k.Length > 0 && !known.Contains(k)))
        {
            // RFC 9051 7.3.5: a keyword new to the mailbox is announced before it is used.
            await Untagged($"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()})");
            await Untagged($"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()} \\*)] Flags permitted.");
        }
        s.CondStore = _condstore;
        if (unchangedSince != null) s.ModSeqs.Observe(s.Folder.Sync(takeNew: false)); // compare against what is on disk now
        var modified = new List<uint>();
        var stored = new List<int>();
        var changes = new List<(uint, string)>();
        using var cur = s.Folder.OpenCur();
        foreach (var seq in s.Resolve(set, uid))
        {
            var m = s.Messages[seq - 1];
            if (unchangedSince != null && s.ModSeqs.Of(m.Uid) > unchangedSince.Value) { modified.Add(uid ? m.Uid : (uint)seq); continue; }
            stored.Add(seq);
            string Apply(string current) => op switch
            {
                // FLAGS replaces the system flags and keywords; letters of other meanings stay.
                "FLAGS" => letters + Without(current, c => "DFRST".Contains(c) || c is >= 'a' and <= 'z'),
                "+FLAGS" => current + letters,
                _ => Without(current, letters.Contains),
            };
            static string Without(string current, Func<char, bool> drop) => current.Any(drop) ? new string(current.Where(c => !drop(c)).ToArray()) : current;
            var expected = MaildirFolder.NormalizeFlags(Apply(m.File.Flags));
            if (expected != m.File.Flags || op == "FLAGS")
            {
                // Applied to the flags on disk: another session's change since our last look is kept.
                if (s.Folder.SetFlags(m.File, Apply, cur) is { } done && done.Flags != m.File.Flags)
                {
                    s.Messages[seq - 1] = m = m with { File = m.File with { Path = done.Path, Flags = done.Flags } };
                    changes.Add((m.Uid, done.Flags));
                }
            }
        }
        // The changes get their mod-sequences; the answers carry them.
        s.ModSeqs.Record(changes);
        foreach (var seq in stored)
        {
            var m = s.Messages[seq - 1];
            if (!silent || s.CondStore)
                // With QRESYNC every FETCH response carries the UID (RFC 7162 3.2.4).
                conn.BufferLine($"* {seq} FETCH ({(uid || _qresync ? $"UID {m.Uid} " : "")}{(silent ? "" : $"FLAGS ({FlagList(m)}) ")}{(s.CondStore ? $"MODSEQ ({s.ModSeqs.Of(m.Uid)})" : "")})".Replace(" )", ")"));
        }
        if (modified.Count > 0) return ImapResponse.Ok($"[MODIFIED {SequenceSet.Compact(modified)}] Conditional store failed.");
        return ImapResponse.Ok("Store completed.");
    }
}
