// The keys SORT (RFC 5256, SORT=DISPLAY RFC 5957) and THREAD compare, made once
// per message from what the folder index keeps (its ENVELOPE, size, internal
// date and References) and held beside the index entry: a SORT of 10,000
// messages reads no message file once the index has them.
using System.Text;
using System.Text.RegularExpressions;

namespace Mail.ImapPop.Imap;

internal sealed class SortKeys
{
    /// <summary>The sent date in UTC ticks: the Date: field, or the internal date when it has none that parses (RFC 5256 2.2).</summary>
    public long Date { get; private init; }
    public long Arrival { get; private init; }
    public long Size { get; private init; }
    /// <summary>The base subject (RFC 5256 2.1), decoded and folded (UnicodeFold).</summary>
    public string Subject { get; private init; } = "";
    /// <summary>Whether the subject was a reply or forward (RFC 5256 2.1: for ORDEREDSUBJECT and REFERENCES grouping).</summary>
    public bool IsReply { get; private init; }
    public string From { get; private init; } = "";
    public string To { get; private init; } = "";
    public string Cc { get; private init; } = "";
    public string DisplayFrom { get; private init; } = "";
    public string DisplayTo { get; private init; } = "";
    /// <summary>The message's own id (THREAD only: made on first use).</summary>
    public string? MessageId => Threading.MessageId;
    /// <summary>The References field's message-ids, oldest first, else In-Reply-To's first one (RFC 5256 3; THREAD only).</summary>
    public IReadOnlyList<string> Parents => Threading.Parents;

    private sealed record ThreadKeys(string? MessageId, IReadOnlyList<string> Parents);

    private ThreadKeys? _threading;
    private string? _messageIdField, _inReplyToField, _referencesField;

    private ThreadKeys Threading
    {
        get
        {
            // Made once; two threads making it at once make the same thing.
            if (Volatile.Read(ref _threading) is { } made) return made;
            var parents = MessageIds(_referencesField);
            if (parents.Count == 0 && MessageIds(_inReplyToField) is { Count: > 0 } inReplyTo) parents = [inReplyTo[0]];
            var ids = MessageIds(_messageIdField);
            var threading = new ThreadKeys(ids.Count > 0 ? ids[0] : null, parents);
            Volatile.Write(ref _threading, threading);
            return threading;
        }
    }

    public static SortKeys Of(IndexEntry entry)
    {
        if (entry.Keys is { } known) return known;
        var e = EnvelopeFields.Parse(entry.Envelope);
        var subject = BaseSubject(EnvelopeFields.Decoded(e.Subject), out var reply);
        var keys = new SortKeys
        {
            Date = e.SentDate is { } d ? d.UtcTicks : entry.InternalDate,
            Arrival = entry.InternalDate,
            Size = entry.VirtualSize,
            Subject = UnicodeFold(subject),
            IsReply = reply,
            From = Fold(First(e.From)?.Mailbox),
            To = Fold(First(e.To)?.Mailbox),
            Cc = Fold(First(e.Cc)?.Mailbox),
            DisplayFrom = Display(First(e.From)),
            DisplayTo = Display(First(e.To)),
            _messageIdField = e.MessageId,
            _inReplyToField = e.InReplyTo,
            _referencesField = entry.References,
        };
        entry.Keys = keys;
        return keys;
    }

    /// <summary>The first address of a list; a group's start counts, its name being its mailbox (as Dovecot sorts).</summary>
    private static EnvelopeAddress? First(IReadOnlyList<EnvelopeAddress> list) => list.Count > 0 ? list[0] : null;

    /// <summary>RFC 5957: the display name when there is one, else the address (a group's name); compared as text folded.</summary>
    private static string Display(EnvelopeAddress? a)
    {
        if (a is not { } address) return "";
        if (address.IsGroupMarker) return UnicodeFold(EnvelopeFields.Decoded(address.Mailbox));
        var name = EnvelopeFields.Decoded(address.Name).Trim();
        return UnicodeFold(name.Length > 0 ? name : address.Address);
    }

    /// <summary>
    /// Text as Dovecot compares it for sorting (i;unicode-casemap, RFC 5051): upper case, with
    /// the Latin letters U+00C0-U+024F taken as their base letter ("Ágnes" sorts as "AGNES").
    /// The table stands in for a decomposition, which the invariant globalization mode lacks.
    /// </summary>
    public static string UnicodeFold(string s)
    {
        if (System.Text.Ascii.IsValid(s)) return Fold(s);
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            if (c is >= '\u00C0' and <= '\u024F' && LatinBase[c - 0xC0] != '.') sb.Append(LatinBase[c - 0xC0]);
            else if (c is >= '\u0300' and <= '\u036F') continue; // a combining mark
            else sb.Append(char.ToUpperInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>The base letter of U+00C0 onwards ('.' where there is none: Æ, ß, Þ ...).</summary>
    private const string LatinBase =
        "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..AAAAAA.CEEEEIIII.NOOOOO..UUUUY.Y" +
        "AAAAAACCCCCCCCDD..EEEEEEEEEEGGGGGGGGHH..IIIIIIIII.IIJJKK.LLLLLLL" +
        "L..NNNNNN...OOOOOO..RRRRRRSSSSSSSSTTTT..UUUUUUUUUUUUWWYYYZZZZZZS" +
        "................................OO.............UU..............." +
        "....DDDLLLNNNAAIIOOUUUUUUUUUU.AAAA....GGKKOOOO..JDDDGG..NNAA...." +
        "AAAAEEEEIIIIOOOORRRRUUUUSSTT..HH......AAEEOOOOOOOOYY............" +
        "................";

    /// <summary>i;ascii-casemap: ASCII letters upper-cased, everything else as it is.</summary>
    private static string Fold(string? s)
    {
        if (string.IsNullOrEmpty(s)) return "";
        return string.Create(s.Length, s, (span, src) =>
        {
            for (int i = 0; i < src.Length; i++) span[i] = char.IsAsciiLetterLower(src[i]) ? (char)(src[i] - 32) : src[i];
        });
    }

    private static readonly Regex MessageIdPattern = new(@"<[^<>\s]+>", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>The message-ids in a field, in order: the last 100 of them (the nearest ancestors) at most.</summary>
    public static List<string> MessageIds(string? field)
    {
        var ids = new List<string>();
        if (string.IsNullOrEmpty(field)) return ids;
        foreach (Match m in MessageIdPattern.Matches(field)) ids.Add(m.Value);
        if (ids.Count > 100) ids.RemoveRange(0, ids.Count - 100);
        return ids;
    }

    /// <summary>
    /// The base subject (RFC 5256 2.1): white space runs as one space; then, repeatedly, trailing
    /// "(fwd)" and white space, leading "Re:", "Fw:", "Fwd:" (each with an optional "[blob]"
    /// before the colon) and "[blob]" prefixes (a blob only when something is left after it),
    /// and a "[fwd: ...]" wrapper. <paramref name="isReply"/> tells whether anything of a reply
    /// or forward was removed.
    /// </summary>
    public static string BaseSubject(string subject, out bool isReply)
    {
        isReply = false;
        var sb = new StringBuilder(subject.Length);
        bool space = false;
        foreach (var c in subject)
        {
            if (c is ' ' or '\t' or '\r' or '\n') { space = true; continue; }
            if (space && sb.Length > 0) sb.Append(' ');
            space = false;
            sb.Append(c);
        }
        var s = sb.ToString();
        while (true)
        {
            // (2) trailing "(fwd)" and white space
            while (true)
            {
                var trimmed = s.TrimEnd(' ');
                if (trimmed.EndsWith("(fwd)", StringComparison.OrdinalIgnoreCase)) { trimmed = trimmed[..^5]; isReply = true; }
                if (trimmed.Length == s.Length) break;
                s = trimmed;
            }
            // (3)-(4) leading subj-leader: blobs and "re"/"fw"/"fwd" [blob] ":"
            while (true)
            {
                var before = s;
                s = s.TrimStart(' ');
                int afterBlobs = SkipBlobs(s, 0);
                if (Leader(s, afterBlobs) is int end and > 0) { s = s[end..]; isReply = true; }
                else if (afterBlobs > 0 && afterBlobs < s.Length) s = s[afterBlobs..]; // a blob, with something after it
                if (s == before) break;
            }
            // (5) "[fwd:" ... "]"
            if (s.Length > 6 && s.StartsWith("[fwd:", StringComparison.OrdinalIgnoreCase) && s.EndsWith(']'))
            {
                s = s[5..^1];
                isReply = true;
                continue;
            }
            return s;
        }
    }

    /// <summary>After any "[blob] " runs starting at <paramref name="i"/>: where the text goes on.</summary>
    private static int SkipBlobs(string s, int i)
    {
        while (i < s.Length && s[i] == '[')
        {
            int close = s.IndexOfAny(['[', ']'], i + 1);
            if (close < 0 || s[close] != ']') break;
            i = close + 1;
            while (i < s.Length && s[i] == ' ') i++;
        }
        return i;
    }

    /// <summary>subj-refwd at <paramref name="i"/> ("re", "fw" or "fwd", white space, an optional blob, ":"): where it ends, or -1.</summary>
    private static int Leader(string s, int i)
    {
        int j;
        if (At(s, i, "re")) j = i + 2;
        else if (At(s, i, "fwd")) j = i + 3;
        else if (At(s, i, "fw")) j = i + 2;
        else return -1;
        while (j < s.Length && s[j] == ' ') j++;
        if (j < s.Length && s[j] == '[')
        {
            int close = s.IndexOfAny(['[', ']'], j + 1);
            if (close < 0 || s[close] != ']') return -1;
            j = close + 1;
            while (j < s.Length && s[j] == ' ') j++;
        }
        return j < s.Length && s[j] == ':' ? j + 1 : -1;
    }

    private static bool At(string s, int i, string word) => string.Compare(s, i, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) == 0 && i + word.Length <= s.Length;
}
