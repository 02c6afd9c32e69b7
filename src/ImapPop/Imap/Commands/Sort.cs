// SORT and THREAD (RFC 5256, SORT=DISPLAY RFC 5957, ESORT RFC 5267): the
// messages a search matches, ordered or threaded by keys the folder index
// keeps (SortKeys), so that no message file is read once the index has it.
using System.Text;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private enum SortKey { Arrival, Cc, Date, From, Size, Subject, To, DisplayFrom, DisplayTo }

    /// <summary>A SORT parsed: the RETURN options (ESORT), the keys each with its REVERSE, and the search.</summary>
    private sealed record SortQuery(bool Esort, ReturnOptions Return, List<(SortKey Key, bool Reverse)> Keys, SearchKey Search, bool UsesModSeq);

    private const int MaxSortKeys = 16;

    private SortQuery? ParseSort(Args args, out ImapResponse refusal)
    {
        refusal = default;
        args.Space();
        bool esort = false;
        var ret = ReturnOptions.None;
        if (char.IsAsciiLetter(args.Peek()))
        {
            if (!args.Atom().Equals("RETURN", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected RETURN or sort keys");
            esort = true;
            ret = ParseReturn(args);
            _parsingSave = ret.Has("SAVE");
            args.Space();
        }
        args.Expect('(');
        var keys = new List<(SortKey, bool)>();
        bool reverse = false;
        while (!args.TryChar(')'))
        {
            if (keys.Count > 0 || reverse) args.Space();
            var word = args.Atom().ToUpperInvariant();
            if (word == "REVERSE")
            {
                if (reverse) throw new ImapSyntaxException("REVERSE twice");
                reverse = true;
                continue;
            }
            if (keys.Count == MaxSortKeys) throw new ImapSyntaxException("Too many sort keys");
            keys.Add((word switch
            {
                "ARRIVAL" => SortKey.Arrival,
                "CC" => SortKey.Cc,
                "DATE" => SortKey.Date,
                "FROM" => SortKey.From,
                "SIZE" => SortKey.Size,
                "SUBJECT" => SortKey.Subject,
                "TO" => SortKey.To,
                "DISPLAYFROM" => SortKey.DisplayFrom,
                "DISPLAYTO" => SortKey.DisplayTo,
                _ => throw new ImapSyntaxException("Unknown sort key " + Mail.Shared.Logging.MailLog.Safe(word, 30)),
            }, reverse));
            reverse = false;
        }
        if (keys.Count == 0 || reverse) throw new ImapSyntaxException("Missing sort key");
        args.Space();
        if (!KnownCharset(args, out refusal)) return null;
        args.Space();
        var parse = new SearchParse();
        var search = SearchKeys(args, parse);
        return new SortQuery(esort, ret, keys, search, parse.UsesModSeq);
    }

    private static readonly IndexEntry Vanished = new("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", "", "", 0, 0, null, null);

    /// <summary>The sort keys of the messages at <paramref name="positions"/>, from the index (messages new to it parsed once, in parallel).</summary>
    private SortKeys[] KeysOf(List<int> positions, FolderIndex index)
    {
        var s = _selected!;
        var entries = index.GetAll(positions.Select(p => s.Messages[p].File).ToList(), sortKeys: true);
        var keys = new SortKeys[positions.Count];
        // Keys not made yet (a folder new to the index) are made on every core too.
        if (entries.Count(e => e?.Keys == null) > 256)
            Parallel.For(0, keys.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => keys[i] = SortKeys.Of(entries[i] ?? Vanished));
        else
            for (int i = 0; i < keys.Length; i++) keys[i] = SortKeys.Of(entries[i] ?? Vanished);
        return keys;
    }

    /// <summary>One sort key of every message as a plain array (numbers or folded text), compared without a switch per comparison.</summary>
    private static object Column(SortKeys[] keys, SortKey key) => key switch
    {
        SortKey.Arrival => keys.Select(k => k.Arrival).ToArray(),
        SortKey.Date => keys.Select(k => k.Date).ToArray(),
        SortKey.Size => keys.Select(k => k.Size).ToArray(),
        _ => keys.Select(k => Text(k, key)).ToArray(),
    };

    /// <summary>A text sort key's value (the keys that are not numbers).</summary>
    private static string Text(SortKeys k, SortKey key) => key switch
    {
        SortKey.Cc => k.Cc,
        SortKey.From => k.From,
        SortKey.Subject => k.Subject,
        SortKey.To => k.To,
        SortKey.DisplayFrom => k.DisplayFrom,
        _ => k.DisplayTo,
    };

    /// <summary>Two messages' keys compared as the SORT asks (ties are left to the caller).</summary>
    private static int CompareKeys(SortKeys a, SortKeys b, List<(SortKey Key, bool Reverse)> spec)
    {
        foreach (var (key, reverse) in spec)
        {
            int c = key switch
            {
                SortKey.Arrival => a.Arrival.CompareTo(b.Arrival),
                SortKey.Date => a.Date.CompareTo(b.Date),
                SortKey.Size => a.Size.CompareTo(b.Size),
                _ => string.CompareOrdinal(Text(a, key), Text(b, key)),
            };
            if (c != 0) return reverse ? -c : c;
        }
        return 0;
    }

    private Task<ImapResponse> SortAsync(string tag, Args args, bool uid)
    {
        var (query, refusal) = ParseFailing(() => (ParseSort(args, out var r), r));
        if (query == null)
        {
            _selected!.Saved = [];
            return Task.FromResult(refusal);
        }
        if (query.UsesModSeq) EnableCondStore();
        var s = _selected!;
        var index = FolderIndex.For(s.Folder.Path, _user!.Uid, _user.Gid);
        bool all = ReferenceEquals(query.Search, AllKey);
        var hits = all ? Enumerable.Range(0, s.Messages.Count).ToList() : Matching(query.Search, index);
        // The whole mailbox sorted the same way on the same state of the folder: the order kept.
        var spec = string.Join(' ', query.Keys.Select(k => (k.Reverse ? "-" : "") + k.Key));
        var snapshot = all ? s.Messages.Snapshot : null;
        var order = snapshot != null ? index.Sorted(snapshot, spec) : null;
        if (order == null)
        {
            var keys = KeysOf(hits, index);
            var columns = query.Keys.Select(k => (Column: Column(keys, k.Key), k.Reverse)).ToArray();
            // Ties keep the mailbox's order (RFC 5256 2.2): the comparison ends on the position.
            order = Enumerable.Range(0, hits.Count).ToArray();
            Array.Sort(order, (x, y) =>
            {
                foreach (var (column, reverse) in columns)
                {
                    int c = column is long[] n ? n[x].CompareTo(n[y]) : string.CompareOrdinal(((string[])column)[x], ((string[])column)[y]);
                    if (c != 0) return reverse ? -c : c;
                }
                return x.CompareTo(y); // hits are in mailbox order
            });
            if (snapshot != null) index.KeepSorted(snapshot, spec, order);
        }
        var sorted = new List<int>(order.Length);
        foreach (var i in order) sorted.Add(hits[i]);
        if (query.Return.Has("UPDATE"))
        {
            // CONTEXT=SORT (RFC 5267 4): the order is kept, with each member's keys to place newcomers.
            if (_updates.Count == MaxUpdateSearches)
                return Task.FromResult(ImapResponse.No("[NOUPDATE \"" + tag + "\"] Too many searches kept up to date"));
            var update = new UpdateSearch(tag, uid, query.Search, query.Keys);
            var keys = KeysOf(sorted, index);
            for (int i = 0; i < sorted.Count; i++)
            {
                var member = s.Messages[sorted[i]].Uid;
                update.Result.Add(member);
                update.Order.Add(member);
                update.Keys[member] = keys[i];
            }
            foreach (var m in s.Messages) update.Seen[m.Uid] = m.File;
            _updates.Add(update);
        }
        if (query.Esort) Esearch(tag, uid, sorted, query.Return, query.UsesModSeq);
        else
        {
            conn.BufferText("* SORT");
            conn.BufferNumbers(sorted.Select(p => uid ? s.Messages[p].Uid : (uint)(p + 1)));
            conn.BufferText("\r\n");
        }
        index.SaveLater(s.Messages.Select(m => m.File.BaseName));
        return Task.FromResult(ImapResponse.Ok(uid ? "UID Sort completed." : "Sort completed."));
    }

    private async Task<ImapResponse> ThreadAsync(Args args, bool uid)
    {
        args.Space();
        var algorithm = args.Atom().ToUpperInvariant();
        if (algorithm is not ("REFERENCES" or "ORDEREDSUBJECT")) throw new ImapSyntaxException("Unknown threading algorithm");
        args.Space();
        if (!KnownCharset(args, out var refusal)) return refusal;
        args.Space();
        var parse = new SearchParse();
        var search = SearchKeys(args, parse);
        if (parse.UsesModSeq) EnableCondStore();
        var s = _selected!;
        var index = FolderIndex.For(s.Folder.Path, _user!.Uid, _user.Gid);
        var hits = ReferenceEquals(search, AllKey) ? Enumerable.Range(0, s.Messages.Count).ToList() : Matching(search, index);
        var keys = KeysOf(hits, index);
        var roots = algorithm == "REFERENCES" ? Threads.References(hits, keys) : Threads.OrderedSubject(hits, keys);
        var sb = new StringBuilder(roots.Count == 0 ? "* THREAD" : "* THREAD ");
        Threads.Write(sb, roots, p => Number(p, uid));
        conn.BufferLine(sb.ToString());
        index.SaveLater(s.Messages.Select(m => m.File.BaseName));
        return ImapResponse.Ok(uid ? "UID Thread completed." : "Thread completed.");
    }
}
