// SEARCH (RFC 9051 6.4.4): the search keys compiled into one predicate per
// message. Keys on flags, sizes, dates and UIDs need no message text; header
// and text keys read the message (MimeKit decodes headers and bodies, so a
// search matches what the user sees, case-insensitively).
using System.Globalization;
using System.Text;
using Mail.Shared.Maildir;
using MimeKit;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private sealed class SearchContext(SelectedMessage message, int seq, FolderIndex? index)
    {
        public SelectedMessage Message { get; } = message;
        public int Seq { get; } = seq;
        /// <summary>The folder's index, whose text filters spare most messages a MIME parse.</summary>
        public FolderIndex? Index { get; } = index;
        private MessageView? _view;
        public MessageView View => _view ??= MessageView.Load(Message.File.Path);
        private EnvelopeFields? _envelope;
        /// <summary>The message's envelope from the index (parsed once per message when new to it).</summary>
        public EnvelopeFields Envelope => _envelope ??= EnvelopeFields.Parse(
            (Index ?? throw new InvalidOperationException("no index")).Get(Message.File.BaseName, Message.File.Path, MaildirReader.VirtualSize(Message.File)).Envelope);
        /// <summary>The Date: field's day as written there (RFC 9051 6.4.4: time and zone disregarded); the internal date's when it has none.</summary>
        public DateTime SentDay => Envelope.SentDate is { } d ? d.Date : Received.UtcDateTime.Date;
        /// <summary>The internal date: from the index when it has the message, else the file's time wherever a rename put it.</summary>
        public DateTimeOffset Received => Index?.TryGet(Message.File.BaseName) is { } e ? new DateTimeOffset(e.InternalDate, TimeSpan.Zero)
            : InternalDateOf(Folder, Message.File) ?? throw new FileNotFoundException("expunged meanwhile", Message.File.Path);
        public required MaildirFolder Folder { get; init; }
    }

    private delegate bool SearchKey(SearchContext c);

    /// <summary>ALL: one instance, so that SORT and THREAD over the whole mailbox skip the matching.</summary>
    private static readonly SearchKey AllKey = _ => true;

    /// <summary>A SEARCH command parsed, before anything of it runs.</summary>
    private sealed record SearchQuery(SearchKey Key, bool Esearch, ReturnOptions Return, bool UsesModSeq);

    /// <summary>
    /// RETURN options of SEARCH and SORT: MIN, MAX, ALL, COUNT (ESEARCH RFC 4731, ESORT RFC 5267),
    /// SAVE (SEARCHRES RFC 5182), PARTIAL low:high (CONTEXT=SEARCH/SORT RFC 5267 4.4).
    /// </summary>
    private sealed record ReturnOptions(HashSet<string> Names, (uint Low, uint High)? Partial)
    {
        public static readonly ReturnOptions None = new([], null);
        public bool Has(string name) => Names.Contains(name);
        /// <summary>No option but SAVE: the result is kept and nothing is sent (RFC 5182 2.1).</summary>
        public bool OnlySave => Names.Count == 1 && Has("SAVE");
    }

    /// <summary>What parsing the keys notes as it goes: the nesting depth (bounded) and a MODSEQ key.</summary>
    private sealed class SearchParse
    {
        public int Depth;
        public bool UsesModSeq;
    }

    /// <summary>The positions (0-based, ascending) of the selected messages that match.</summary>
    private List<int> Matching(SearchKey key, FolderIndex index)
    {
        var s = _selected!;
        var hits = new List<int>();
        for (int i = 0; i < s.Messages.Count; i++)
        {
            bool match;
            try { match = key(new SearchContext(s.Messages[i], i + 1, index) { Folder = s.Folder }); }
            catch (FileNotFoundException) { match = false; }
            if (match) hits.Add(i);
        }
        return hits;
    }

    private Task<ImapResponse> SearchAsync(string tag, Args args, bool uid)
    {
        var (query, refusal) = ParseFailing(() => (ParseSearch(args, out var r), r));
        if (query == null)
        {
            _selected!.Saved = []; // RFC 5182 2.1: a failed SEARCH with SAVE leaves an empty result
            return Task.FromResult(refusal);
        }
        if (query.UsesModSeq) EnableCondStore();
        var s = _selected!;
        var index = FolderIndex.For(s.Folder.Path, _user!.Uid, _user.Gid);
        var hits = Matching(query.Key, index);
        if (query.Return.Has("UPDATE"))
        {
            // CONTEXT=SEARCH (RFC 5267 4): the result is kept and its changes told as they come.
            if (_updates.Count == MaxUpdateSearches)
                return Task.FromResult(ImapResponse.No("[NOUPDATE \"" + tag + "\"] Too many searches kept up to date"));
            var update = new UpdateSearch(tag, uid, query.Key);
            foreach (var i in hits) update.Result.Add(s.Messages[i].Uid);
            foreach (var m in s.Messages) update.Seen[m.Uid] = m.File;
            _updates.Add(update);
        }
        if (query.Esearch) Esearch(tag, uid, hits, query.Return, query.UsesModSeq);
        else
        {
            // With a MODSEQ key the answer names the highest mod-sequence of what matched.
            var modseq = query.UsesModSeq && hits.Count > 0 ? $" (MODSEQ {hits.Max(i => s.ModSeqs.Of(s.Messages[i].Uid))})" : "";
            conn.BufferText("* SEARCH");
            conn.BufferNumbers(hits.Select(i => uid ? s.Messages[i].Uid : (uint)(i + 1)));
            conn.BufferLine(modseq);
        }
        index.SaveLater(s.Messages.Select(m => m.File.BaseName));
        return Task.FromResult(ImapResponse.Ok(uid ? "UID Search completed." : "Search completed."));
    }

    /// <summary>Whether the RETURN options being parsed asked for SAVE: a command that then fails empties "$".</summary>
    private bool _parsingSave;

    /// <summary>Parses a SEARCH or SORT; a syntax error after RETURN (SAVE) empties the saved result (RFC 5182 2.1) and is thrown on.</summary>
    private (T? Query, ImapResponse Refusal) ParseFailing<T>(Func<(T?, ImapResponse)> parse) where T : class
    {
        _parsingSave = false;
        try { return parse(); }
        catch (ImapSyntaxException)
        {
            if (_parsingSave) _selected!.Saved = [];
            throw;
        }
    }

    /// <summary>The number a position is known by: its UID or its sequence number.</summary>
    private string Number(int position, bool uid) =>
        (uid ? _selected!.Messages[position].Uid : (uint)(position + 1)).ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The ESEARCH response of a SEARCH or SORT whose result is <paramref name="hits"/> (positions,
    /// in the order of the result), and the SAVE of it. MIN and MAX are numbers, ALL and PARTIAL
    /// keep the result's order; with a MODSEQ key the highest mod-sequence of what is returned.
    /// </summary>
    private void Esearch(string tag, bool uid, List<int> hits, ReturnOptions ret, bool usesModSeq)
    {
        var s = _selected!;
        var opts = ret.Names.Count == 0 ? new ReturnOptions(["ALL"], null) : ret;
        if (ret.Has("UPDATE") && ret.Names.Count == 1) { conn.BufferLine($"* ESEARCH (TAG \"{tag}\"){(uid ? " UID" : "")}"); return; }
        int min = hits.Count == 0 ? -1 : hits.Min(), max = hits.Count == 0 ? -1 : hits.Max();
        if (opts.Has("SAVE"))
        {
            // RFC 5182 2.1: with MIN or MAX alone only they are kept.
            IEnumerable<int> kept = opts.Has("ALL") || opts.Has("COUNT") || opts.Partial != null || !(opts.Has("MIN") || opts.Has("MAX")) ? hits
                : new[] { opts.Has("MIN") ? min : -1, opts.Has("MAX") ? max : -1 }.Where(i => i >= 0);
            s.Saved = kept.Select(i => s.Messages[i].Uid).ToHashSet();
            if (opts.OnlySave) return;
        }
        var parts = new StringBuilder();
        if (opts.Has("MIN") && hits.Count > 0) parts.Append(" MIN ").Append(Number(min, uid));
        if (opts.Has("MAX") && hits.Count > 0) parts.Append(" MAX ").Append(Number(max, uid));
        if (opts.Has("ALL") && hits.Count > 0) parts.Append(" ALL ").Append(InOrder(hits, uid));
        if (opts.Has("COUNT")) parts.Append(" COUNT ").Append(hits.Count);
        if (opts.Partial is var (low, high))
        {
            // RFC 5267 4.4: the result's members low to high (1-based, in its order), or NIL.
            var slice = hits.Skip((int)Math.Min(low - 1, int.MaxValue)).Take((int)Math.Min(high - low + 1, int.MaxValue)).ToList();
            parts.Append($" PARTIAL ({low}:{high} ").Append(slice.Count == 0 ? "NIL" : InOrder(slice, uid)).Append(')');
        }
        if (usesModSeq && hits.Count > 0)
        {
            // RFC 7162 3.1.10: the highest mod-sequence of what is returned: of all matches, or
            // only of the message(s) MIN and MAX name when only they are asked for.
            IEnumerable<int> named = opts.Has("ALL") || opts.Has("COUNT") || opts.Partial != null ? hits
                : new[] { opts.Has("MIN") ? min : -1, opts.Has("MAX") ? max : -1 }.Where(i => i >= 0);
            if (named.Any()) parts.Append(" MODSEQ ").Append(named.Max(i => s.ModSeqs.Of(s.Messages[i].Uid)));
        }
        conn.BufferLine($"* ESEARCH (TAG \"{tag}\"){(uid ? " UID" : "")}{parts}");
    }

    /// <summary>A sequence set of positions in the given order: ascending runs joined as ranges ("5,3:4,2").</summary>
    private string InOrder(List<int> positions, bool uid) =>
        SequenceSet.Compact(positions.Select(p => uid ? _selected!.Messages[p].Uid : (uint)(p + 1)));

    private static readonly HashSet<string> ReturnOptionNames = ["MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL", "UPDATE"];

    /// <summary>RETURN (...) after its "RETURN" (RFC 4731 3.1, RFC 5182, RFC 5267 4.4); unknown options are errors.</summary>
    private static ReturnOptions ParseReturn(Args args)
    {
        args.Space();
        args.Expect('(');
        var names = new HashSet<string>(StringComparer.Ordinal);
        (uint, uint)? partial = null;
        while (!args.TryChar(')'))
        {
            if (names.Count > 0) args.Space();
            var name = args.Atom().ToUpperInvariant();
            if (!ReturnOptionNames.Contains(name)) throw new ImapSyntaxException("Unknown RETURN option " + Mail.Shared.Logging.MailLog.Safe(name, 30));
            names.Add(name);
            if (name == "PARTIAL")
            {
                args.Space();
                var range = args.Atom();
                var ends = range.Split(':');
                if (ends.Length != 2 || !uint.TryParse(ends[0], NumberStyles.None, CultureInfo.InvariantCulture, out var a) || a == 0
                    || !uint.TryParse(ends[1], NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b == 0)
                    throw new ImapSyntaxException("PARTIAL needs a range low:high");
                partial = (Math.Min(a, b), Math.Max(a, b));
            }
        }
        // RFC 5267 4.1: UPDATE goes with ALL, COUNT or nothing; MIN and MAX cannot be kept up to date.
        if (names.Contains("UPDATE") && (names.Contains("MIN") || names.Contains("MAX") || names.Contains("PARTIAL")))
            throw new ImapSyntaxException("UPDATE cannot be combined with MIN, MAX or PARTIAL");
        return new ReturnOptions(names, partial);
    }

    /// <summary>
    /// A SEARCH or SORT RETURN (UPDATE) kept up to date: its result and the record of each message
    /// it was last decided on. A SORT (CONTEXT=SORT) also keeps its members in order, with their
    /// sort keys, so that a change is told by position (RFC 5267 4.3).
    /// </summary>
    private sealed class UpdateSearch(string tag, bool uid, SearchKey key, List<(SortKey Key, bool Reverse)>? sort = null)
    {
        public string Tag { get; } = tag;
        public bool Uid { get; } = uid;
        public SearchKey Key { get; } = key;
        public HashSet<uint> Result { get; } = [];
        public Dictionary<uint, Mail.Shared.Maildir.FolderMessage> Seen { get; } = [];
        public List<(SortKey Key, bool Reverse)>? Sort { get; } = sort;
        /// <summary>The members of a SORT in its order (UIDs).</summary>
        public List<uint> Order { get; } = [];
        public Dictionary<uint, SortKeys> Keys { get; } = [];
        public string Prefix => $"* ESEARCH (TAG \"{Tag}\"){(Uid ? " UID" : "")}";
    }

    private readonly List<UpdateSearch> _updates = [];
    private const int MaxUpdateSearches = 10;

    /// <summary>REMOVEFROM for the members of kept searches about to be expunged, by their numbers before it (RFC 5267 4.3).</summary>
    private IEnumerable<string> SearchRemovals(List<(int Seq, uint Uid)> gone)
    {
        var lines = new List<string>();
        foreach (var u in _updates)
        {
            var removed = new List<(uint Uid, uint Number)>();
            foreach (var (seq, uid) in gone)
            {
                u.Seen.Remove(uid);
                if (u.Result.Remove(uid)) removed.Add((uid, u.Uid ? uid : (uint)seq));
            }
            if (removed.Count == 0) continue;
            if (u.Sort == null) lines.Add($"{u.Prefix} REMOVEFROM (0 {SequenceSet.Compact(removed.Select(r => r.Number).Order())})");
            else lines.Add($"{u.Prefix} REMOVEFROM ({RemoveOrdered(u, removed)})");
        }
        return lines;
    }

    /// <summary>
    /// Takes <paramref name="removed"/> out of a kept SORT and says where: for each run of members
    /// next to each other, the position (from 1) of its first in the result as it stands once the
    /// runs before it are gone, and the run in order ("3 7,5 9 2").
    /// </summary>
    private static string RemoveOrdered(UpdateSearch u, List<(uint Uid, uint Number)> removed)
    {
        var numbers = removed.ToDictionary(r => r.Uid, r => r.Number);
        var pairs = new StringBuilder();
        var run = new List<uint>();
        int kept = 0, runAt = 0;
        void EndRun()
        {
            if (run.Count == 0) return;
            pairs.Append(pairs.Length > 0 ? " " : "").Append(runAt + 1).Append(' ').Append(SequenceSet.Compact(run));
            run.Clear();
        }
        var order = new List<uint>(u.Order.Count);
        foreach (var uid in u.Order)
        {
            if (numbers.TryGetValue(uid, out var number))
            {
                if (run.Count == 0) runAt = kept;
                run.Add(number);
                u.Keys.Remove(uid);
                continue;
            }
            EndRun();
            order.Add(uid);
            kept++;
        }
        EndRun();
        u.Order.Clear();
        u.Order.AddRange(order);
        return pairs.ToString();
    }

    /// <summary>
    /// Puts <paramref name="added"/> (UIDs with their keys) into a kept SORT at their places and
    /// says where: for each run of new members next to each other, its position in the result
    /// once the runs before it are in, and the run in order (RFC 5267 4.3.3).
    /// </summary>
    private string AddOrdered(UpdateSearch u, List<(uint Uid, SortKeys Keys)> added)
    {
        var spec = u.Sort!;
        int Compare((uint Uid, SortKeys Keys) a, (uint Uid, SortKeys Keys) b)
        {
            int c = CompareKeys(a.Keys, b.Keys, spec);
            return c != 0 ? c : a.Uid.CompareTo(b.Uid); // ties in mailbox order, which is UID order
        }
        added.Sort(Compare);
        var isNew = new HashSet<uint>();
        int from = 0;
        foreach (var a in added)
        {
            // The added are in order, so each goes after the one before it.
            int low = from, high = u.Order.Count;
            while (low < high)
            {
                int mid = (low + high) / 2;
                if (Compare((u.Order[mid], u.Keys[u.Order[mid]]), a) < 0) low = mid + 1; else high = mid;
            }
            u.Order.Insert(low, a.Uid);
            u.Keys[a.Uid] = a.Keys;
            isNew.Add(a.Uid);
            from = low + 1;
        }
        var pairs = new StringBuilder();
        for (int i = 0; i < u.Order.Count; i++)
        {
            if (!isNew.Contains(u.Order[i])) continue;
            int start = i;
            var run = new List<uint>();
            for (; i < u.Order.Count && isNew.Contains(u.Order[i]); i++) run.Add(u.Uid ? u.Order[i] : (uint)(PositionOf(u.Order[i]) + 1));
            pairs.Append(pairs.Length > 0 ? " " : "").Append(start + 1).Append(' ').Append(SequenceSet.Compact(run));
        }
        return pairs.ToString();
    }

    /// <summary>The position (from 0) of the selected message with this UID, or -1.</summary>
    private int PositionOf(uint uid)
    {
        var messages = _selected!.Messages;
        int low = 0, high = messages.Count - 1;
        while (low <= high)
        {
            int mid = (low + high) / 2;
            var at = messages[mid].Uid;
            if (at == uid) return mid;
            if (at < uid) low = mid + 1; else high = mid - 1;
        }
        return -1;
    }

    /// <summary>ADDTO and REMOVEFROM for kept searches: each message new or changed since it was last decided on is matched again.</summary>
    private void SearchUpdates()
    {
        if (_updates.Count == 0 || _selected is not { } s) return;
        var index = FolderIndex.For(s.Folder.Path, _user!.Uid, _user.Gid);
        foreach (var u in _updates)
        {
            List<uint>? added = null, removed = null;
            List<int>? addedAt = null;
            for (int i = 0; i < s.Messages.Count; i++)
            {
                var m = s.Messages[i];
                if (u.Seen.TryGetValue(m.Uid, out var record) && ReferenceEquals(record, m.File)) continue;
                u.Seen[m.Uid] = m.File;
                bool match;
                try { match = u.Key(new SearchContext(m, i + 1, index) { Folder = s.Folder }); }
                catch (FileNotFoundException) { match = false; }
                if (match && u.Result.Add(m.Uid)) { (added ??= []).Add(m.Uid); (addedAt ??= []).Add(i); }
                else if (!match && u.Result.Remove(m.Uid)) (removed ??= []).Add(m.Uid);
            }
            uint Number(uint uid) => u.Uid ? uid : (uint)(PositionOf(uid) + 1);
            if (u.Sort != null)
            {
                if (removed != null) conn.BufferLine($"{u.Prefix} REMOVEFROM ({RemoveOrdered(u, removed.Select(r => (r, Number(r))).ToList())})");
                if (added != null)
                {
                    var keys = KeysOf(addedAt!, index);
                    conn.BufferLine($"{u.Prefix} ADDTO ({AddOrdered(u, added.Select((a, k) => (a, keys[k])).ToList())})");
                }
                continue;
            }
            if (removed != null) conn.BufferLine($"{u.Prefix} REMOVEFROM (0 {SequenceSet.Compact(removed.Select(Number))})");
            if (added != null) conn.BufferLine($"{u.Prefix} ADDTO (0 {SequenceSet.Compact(added.Select(Number))})");
        }
    }

    /// <summary>CANCELUPDATE "tag" ... (RFC 5267 4.2): those searches are no longer kept up to date.</summary>
    private async Task<ImapResponse> CancelUpdateAsync(Args args)
    {
        var tags = new List<string>();
        do { args.Space(); tags.Add(args.AString()); } while (!args.AtEnd);
        if (tags.FirstOrDefault(t => !_updates.Any(u => u.Tag == t)) is { } unknown)
            return ImapResponse.Bad("Unknown search " + Mail.Shared.Logging.MailLog.Safe(unknown, 64));
        _updates.RemoveAll(u => tags.Contains(u.Tag));
        return ImapResponse.Ok("Updates cancelled.");
    }

    /// <summary>SEARCH [RETURN (...)] [CHARSET x] keys (RFC 9051 6.4.4, ESEARCH RFC 4731); null with the refusal.</summary>
    private SearchQuery? ParseSearch(Args args, out ImapResponse refusal)
    {
        refusal = default;
        args.Space();
        var ret = ReturnOptions.None;
        bool esearch = false;
        string? word = char.IsAsciiLetter(args.Peek()) ? args.Atom().ToUpperInvariant() : null;
        if (word == "RETURN")
        {
            esearch = true;
            ret = ParseReturn(args);
            _parsingSave = ret.Has("SAVE");
            args.Space();
            word = char.IsAsciiLetter(args.Peek()) ? args.Atom().ToUpperInvariant() : null;
        }
        if (word == "CHARSET")
        {
            args.Space();
            if (!KnownCharset(args, out refusal)) return null;
            args.Space();
            word = null;
        }
        var parse = new SearchParse();
        var key = SearchKeys(args, parse, word);
        return new SearchQuery(key, esearch || _rev2, ret, parse.UsesModSeq);
    }

    /// <summary>A charset argument: UTF-8 and US-ASCII are known; another is NO [BADCHARSET].</summary>
    private static bool KnownCharset(Args args, out ImapResponse refusal)
    {
        refusal = default;
        var charset = args.AString().ToUpperInvariant();
        if (charset is "UTF-8" or "US-ASCII") return true;
        refusal = ImapResponse.No("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
        return false;
    }

    /// <summary>The search keys to the end of the command, all of which must match (<paramref name="first"/>: an atom already read).</summary>
    private SearchKey SearchKeys(Args args, SearchParse parse, string? first = null)
    {
        var key = first != null ? KeyFromAtom(first, args, parse) : SearchKey1(args, parse);
        while (!args.AtEnd)
        {
            args.Space();
            var next = SearchKey1(args, parse);
            var prev = key;
            key = c => prev(c) && next(c);
        }
        return key;
    }

    private SearchKey SearchKey1(Args args, SearchParse p)
    {
        if (++p.Depth > 50) throw new ImapSyntaxException("Search nested too deep");
        try
        {
            if (args.TryChar('('))
            {
                var keys = new List<SearchKey> { SearchKey1(args, p) };
                while (!args.TryChar(')')) { args.Space(); keys.Add(SearchKey1(args, p)); }
                return c => keys.All(k => k(c));
            }
            if (char.IsAsciiDigit(args.Peek()) || args.Peek() is '*' or '$')
            {
                var set = args.SequenceSet();
                if (set.IsSaved) return c => _selected!.Saved.Contains(c.Message.Uid); // "$" (RFC 5182)
                return c => set.Contains((uint)c.Seq, (uint)_selected!.Count);
            }
            var atom = args.Atom().ToUpperInvariant();
            return KeyFromAtom(atom, args, p);
        }
        finally { p.Depth--; }
    }

    private static DateTime DateArg(Args args)
    {
        var text = args.AString();
        return DateTime.TryParseExact(text, ["d-MMM-yyyy", "dd-MMM-yyyy"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var d)
            ? d.Date : throw new ImapSyntaxException("Invalid date");
    }

    private static bool HasFlag(SearchContext c, char f) => c.Message.File.Flags.Contains(f);

    /// <summary>
    /// True when the text surely is not in the message: an ASCII needle absent from the raw
    /// bytes of a message with no encoded parts or words (no base64, quoted-printable or
    /// "=?"), so no decoding could make it appear. Saves the MIME parse of most messages.
    /// </summary>
    private static bool RawMiss(SearchContext c, string text)
    {
        // A needle with white space may span a folded header line, which decoding unfolds.
        if (text.Length == 0 || !System.Text.Ascii.IsValid(text) || text.Any(char.IsWhiteSpace)) return false;
        // The index's filter answers "surely not" without reading the message.
        var entry = c.Index?.TryGet(c.Message.File.BaseName);
        if (TextFilter.Usable(text) && entry is { TextFilter: { Length: > 0 } filter } && !TextFilter.MayContain(filter, text))
            return true;
        if (entry is { TextFilter: null }) c.Index!.SetFilter(c.Message.File.BaseName, TextFilter.Build(c.View.Bytes) ?? []);
        var raw = c.View.Bytes;
        if (raw.AsSpan().IndexOf("=?"u8) >= 0) return false;
        var lower = new byte[raw.Length];
        if (System.Text.Ascii.ToLower(raw, lower, out _) != System.Buffers.OperationStatus.Done) return false; // 8-bit text: decide by parsing
        if (lower.AsSpan().IndexOf("base64"u8) >= 0 || lower.AsSpan().IndexOf("quoted-printable"u8) >= 0) return false;
        return lower.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(text.ToLowerInvariant())) < 0;
    }

    private static bool Contains(string? haystack, string needle) =>
        haystack != null && haystack.Contains(needle, StringComparison.OrdinalIgnoreCase);

    private static string? Header(SearchContext c, string name)
    {
        var values = c.View.Message.Headers.Where(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).ToList();
        return values.Count == 0 ? null : string.Join("\n", values);
    }

    private static string BodyText(SearchContext c)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var part in c.View.Message.BodyParts.OfType<MimeKit.TextPart>())
        {
            try { sb.Append(part.Text).Append('\n'); }
            catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException) { }
        }
        return sb.ToString();
    }

    private SearchKey KeyFromAtom(string atom, Args args, SearchParse p)
    {
        switch (atom)
        {
            case "ALL": return AllKey;
            case "ANSWERED": return c => HasFlag(c, 'R');
            case "UNANSWERED": return c => !HasFlag(c, 'R');
            case "DELETED": return c => HasFlag(c, 'T');
            case "UNDELETED": return c => !HasFlag(c, 'T');
            case "DRAFT": return c => HasFlag(c, 'D');
            case "UNDRAFT": return c => !HasFlag(c, 'D');
            case "FLAGGED": return c => HasFlag(c, 'F');
            case "UNFLAGGED": return c => !HasFlag(c, 'F');
            case "SEEN": return c => HasFlag(c, 'S');
            case "UNSEEN": return c => !HasFlag(c, 'S');
            case "RECENT": return c => c.Message.Recent;
            case "OLD": return c => !c.Message.Recent;
            case "NEW": return c => c.Message.Recent && !HasFlag(c, 'S');
            case "KEYWORD" or "UNKEYWORD":
                {
                    args.Space();
                    var word = args.Atom();
                    bool want = atom == "KEYWORD";
                    return c =>
                    {
                        var i = _selected!.Keywords.FindIndex(k => k.Equals(word, StringComparison.OrdinalIgnoreCase));
                        return (i >= 0 && HasFlag(c, (char)('a' + i))) == want;
                    };
                }
            case "NOT": { args.Space(); var k = SearchKey1(args, p); return c => !k(c); }
            case "OR":
                {
                    args.Space();
                    var a = SearchKey1(args, p);
                    args.Space();
                    var b = SearchKey1(args, p);
                    return c => a(c) || b(c);
                }
            case "UID":
                {
                    args.Space();
                    var set = args.SequenceSet();
                    if (set.IsSaved) return c => _selected!.Saved.Contains(c.Message.Uid);
                    return c => set.Contains(c.Message.Uid, _selected!.Max(uid: true));
                }
            case "MODSEQ":
                {
                    // MODSEQ [entry-name entry-type] mod-sequence (RFC 7162 3.1.5): the entry is not needed to answer.
                    args.Space();
                    if (args.Peek() == '"') { args.Quoted(); args.Space(); args.Atom(); args.Space(); }
                    var since = args.Number64();
                    p.UsesModSeq = true;
                    return c => _selected!.ModSeqs.Of(c.Message.Uid) >= since;
                }
            case "LARGER": { args.Space(); var n = args.Number64(); return c => (ulong)MaildirReader.VirtualSize(c.Message.File) > n; }
            case "SMALLER": { args.Space(); var n = args.Number64(); return c => (ulong)MaildirReader.VirtualSize(c.Message.File) < n; }
            case "BEFORE": { args.Space(); var d = DateArg(args); return c => c.Received.UtcDateTime.Date < d; }
            case "ON": { args.Space(); var d = DateArg(args); return c => c.Received.UtcDateTime.Date == d; }
            case "SINCE": { args.Space(); var d = DateArg(args); return c => c.Received.UtcDateTime.Date >= d; }
            case "SENTBEFORE": { args.Space(); var d = DateArg(args); return c => c.SentDay < d; }
            case "SENTON": { args.Space(); var d = DateArg(args); return c => c.SentDay == d; }
            case "SENTSINCE": { args.Space(); var d = DateArg(args); return c => c.SentDay >= d; }
            case "FROM" or "TO" or "CC" or "BCC":
                {
                    // The parsed addresses, as Dovecot: each one's name decoded and <mailbox@host>,
                    // whatever comments and spacing the header wrote them with.
                    args.Space();
                    var text = args.AString();
                    Func<EnvelopeFields, IReadOnlyList<EnvelopeAddress>> list = atom switch
                    {
                        "FROM" => e => e.From, "TO" => e => e.To, "CC" => e => e.Cc, _ => e => e.Bcc,
                    };
                    return c => Contains(EnvelopeFields.SearchText(list(c.Envelope)), text);
                }
            case "SUBJECT": { args.Space(); var text = args.AString(); return c => Contains(Header(c, "Subject"), text); }
            case "HEADER":
                {
                    args.Space();
                    var field = args.AString();
                    args.Space();
                    var text = args.AString();
                    return c => Header(c, field) is { } v && (text.Length == 0 || Contains(v, text));
                }
            case "BODY": { args.Space(); var text = args.AString(); return c => RawMiss(c, text) ? false : Contains(BodyText(c), text); }
            case "TEXT":
                {
                    args.Space();
                    var text = args.AString();
                    return c => !RawMiss(c, text) && (c.View.Message.Headers.Any(h => Contains(h.Value, text)) || Contains(BodyText(c), text));
                }
            default: throw new ImapSyntaxException("Unknown search key " + Mail.Shared.Logging.MailLog.Safe(atom, 30));
        }
    }
}
