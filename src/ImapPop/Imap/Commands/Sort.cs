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
            if (ret.Has("UPDATE")) throw new ImapSyntaxException("A SORT is not kept up to date (no CONTEXT=SORT)");
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

    private static int Compare(SortKeys a, SortKeys b, SortKey key) => key switch
    {
        SortKey.Arrival => a.Arrival.CompareTo(b.Arrival),
        SortKey.Cc => string.CompareOrdinal(a.Cc, b.Cc),
        SortKey.Date => a.Date.CompareTo(b.Date),
        SortKey.From => string.CompareOrdinal(a.From, b.From),
        SortKey.Size => a.Size.CompareTo(b.Size),
        SortKey.Subject => string.CompareOrdinal(a.Subject, b.Subject),
        SortKey.To => string.CompareOrdinal(a.To, b.To),
        SortKey.DisplayFrom => string.CompareOrdinal(a.DisplayFrom, b.DisplayFrom),
        _ => string.CompareOrdinal(a.DisplayTo, b.DisplayTo),
    };

    /// <summary>The sort keys of the messages at <paramref name="positions"/>, from the index (a message new to it is parsed once).</summary>
    private SortKeys[] KeysOf(List<int> positions, FolderIndex index)
    {
        var s = _selected!;
        var keys = new SortKeys[positions.Count];
        for (int i = 0; i < positions.Count; i++)
        {
            var f = s.Messages[positions[i]].File;
            try { keys[i] = SortKeys.Of(index.Get(f.BaseName, f.Path, Mail.Shared.Maildir.MaildirReader.VirtualSize(f))); }
            catch (FileNotFoundException) { keys[i] = SortKeys.Of(new IndexEntry("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", "", "", 0, 0, null, null)); }
        }
        return keys;
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
        var hits = Matching(query.Search, index);
        var keys = KeysOf(hits, index);
        // Ties keep the mailbox's order (RFC 5256 2.2): the comparison ends on the position.
        var order = Enumerable.Range(0, hits.Count).ToArray();
        Array.Sort(order, (x, y) =>
        {
            foreach (var (key, reverse) in query.Keys)
            {
                int c = Compare(keys[x], keys[y], key);
                if (c != 0) return reverse ? -c : c;
            }
            return hits[x].CompareTo(hits[y]);
        });
        var sorted = order.Select(i => hits[i]).ToList();
        if (query.Esort) Esearch(tag, uid, sorted, query.Return, query.UsesModSeq);
        else conn.BufferLine("* SORT" + string.Concat(sorted.Select(p => " " + Number(p, uid))));
        index.Save(s.Messages.Select(m => m.File.BaseName));
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
        var hits = Matching(search, index);
        var keys = KeysOf(hits, index);
        var roots = algorithm == "REFERENCES" ? Threads.References(hits, keys) : Threads.OrderedSubject(hits, keys);
        var sb = new StringBuilder(roots.Count == 0 ? "* THREAD" : "* THREAD ");
        Threads.Write(sb, roots, p => Number(p, uid));
        conn.BufferLine(sb.ToString());
        index.Save(s.Messages.Select(m => m.File.BaseName));
        return ImapResponse.Ok(uid ? "UID Thread completed." : "Thread completed.");
    }
}
