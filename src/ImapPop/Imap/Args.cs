// The arguments of one IMAP command (RFC 9051 9, formal syntax), read
// token by token from the parts the CommandReader assembled: atoms, quoted
// strings, literals, parenthesised lists, numbers and sequence sets. A
// malformed argument throws ImapSyntaxException, which the session answers
// with a tagged BAD.
using System.Text;

namespace Mail.ImapPop.Imap;

internal sealed class ImapSyntaxException(string message) : Exception(message);

internal sealed class Args(IReadOnlyList<CommandPart> parts, int startPart = 0, int startPos = 0)
{
    private int _part = startPart;
    private int _pos = startPos;
    public const int MaxStringLength = 1 << 20;

    private string Text => _part < parts.Count && parts[_part] is LinePart t ? t.Text : "";

    /// <summary>True when nothing but the end of the command remains.</summary>
    public bool AtEnd => _part >= parts.Count || (_part == parts.Count - 1 && parts[_part] is LinePart t && _pos >= t.Text.Length);

    public char Peek()
    {
        if (_part < parts.Count && parts[_part] is LinePart t)
        {
            if (_pos < t.Text.Length) return t.Text[_pos];
            if (_part + 1 < parts.Count && parts[_part + 1] is LiteralPart) return '{';
            return '\0';
        }
        return _part < parts.Count ? '{' : '\0';
    }

    /// <summary>Does the text go on with <paramref name="s"/> (nothing is read)?</summary>
    public bool NextIs(string s) => string.CompareOrdinal(Text, _pos, s, 0, s.Length) == 0;

    /// <summary>Reads "" (an empty quoted string) if it is next.</summary>
    public bool TryEmptyQuoted()
    {
        if (string.CompareOrdinal(Text, _pos, "\"\"", 0, 2) != 0) return false;
        _pos += 2;
        return true;
    }

    public bool TryChar(char c)
    {
        if (Peek() != c || c == '{') return false;
        _pos++;
        return true;
    }

    public void Expect(char c)
    {
        if (!TryChar(c)) throw new ImapSyntaxException(c == ' ' ? "Missing argument" : $"Expected '{c}'");
    }

    public void Space() => Expect(' ');

    public void End()
    {
        if (!AtEnd) throw new ImapSyntaxException("Unexpected arguments");
    }

    private static bool IsAtomChar(char c) =>
        c > ' ' && c < 0x7f && c is not ('(' or ')' or '{' or '%' or '*' or '"' or '\\' or ']');

    /// <summary>An atom (RFC 9051 "atom"); <paramref name="extra"/> allows further characters (e.g. "]" or "%*" for list-mailbox).</summary>
    public string Atom(string extra = "")
    {
        var t = Text;
        int start = _pos;
        while (_pos < t.Length && (IsAtomChar(t[_pos]) || extra.Contains(t[_pos]) || t[_pos] > 0x7f)) _pos++;
        if (_pos == start) throw new ImapSyntaxException("Expected an atom");
        return t[start.._pos];
    }

    /// <summary>Letters, digits, "." and "-" only (fetch attributes, section names): stops at "[" and "&lt;".</summary>
    public string Word()
    {
        var t = Text;
        int start = _pos;
        while (_pos < t.Length && (char.IsAsciiLetterOrDigit(t[_pos]) || t[_pos] is '.' or '-' or '$' or '\\')) _pos++;
        if (_pos == start) throw new ImapSyntaxException("Expected a word");
        return t[start.._pos];
    }

    public bool IsLiteralNext => Peek() == '{' && _pos >= Text.Length && _part + 1 < parts.Count && parts[_part + 1] is LiteralPart;

    /// <summary>A literal, as its part (the caller decides whether to read it as text or bytes).</summary>
    public LiteralPart Literal()
    {
        if (!IsLiteralNext) throw new ImapSyntaxException("Expected a literal");
        var lit = (LiteralPart)parts[_part + 1];
        _part += 2;
        _pos = 0;
        return lit;
    }

    public string Quoted()
    {
        Expect('"');
        var t = Text;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= t.Length) throw new ImapSyntaxException("Unterminated quoted string");
            char c = t[_pos++];
            if (c == '"') return sb.ToString();
            if (c == '\\')
            {
                if (_pos >= t.Length || t[_pos] is not ('"' or '\\')) throw new ImapSyntaxException("Bad escape in quoted string");
                c = t[_pos++];
            }
            sb.Append(c);
        }
    }

    private static string LiteralText(LiteralPart lit)
    {
        if (lit.Length > MaxStringLength) throw new ImapSyntaxException("String too long");
        using var s = lit.Open();
        var bytes = new byte[lit.Length];
        s.ReadExactly(bytes);
        if (bytes.Contains((byte)0)) throw new ImapSyntaxException("NUL in a string");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>string = quoted / literal.</summary>
    public string String() => Peek() switch
    {
        '"' => Quoted(),
        '{' => LiteralText(Literal()),
        _ => throw new ImapSyntaxException("Expected a string"),
    };

    /// <summary>astring = 1*ASTRING-CHAR / string.</summary>
    public string AString() => Peek() is '"' or '{' ? String() : Atom("]");

    /// <summary>nstring = string / NIL.</summary>
    public string? NString()
    {
        if (Peek() is '"' or '{') return String();
        var a = Atom();
        return a.Equals("NIL", StringComparison.OrdinalIgnoreCase) ? null : throw new ImapSyntaxException("Expected a string or NIL");
    }

    /// <summary>list-mailbox = 1*list-char / string (wildcards allowed).</summary>
    public string ListMailbox() => Peek() is '"' or '{' ? String() : Atom("%*]");

    public uint Number()
    {
        var t = Text;
        int start = _pos;
        while (_pos < t.Length && char.IsAsciiDigit(t[_pos])) _pos++;
        if (_pos == start || !uint.TryParse(t.AsSpan(start, _pos - start), out var n)) throw new ImapSyntaxException("Expected a number");
        return n;
    }

    public ulong Number64()
    {
        var t = Text;
        int start = _pos;
        while (_pos < t.Length && char.IsAsciiDigit(t[_pos])) _pos++;
        if (_pos == start || !ulong.TryParse(t.AsSpan(start, _pos - start), out var n) || n > long.MaxValue) throw new ImapSyntaxException("Expected a number");
        return n;
    }

    public uint NzNumber()
    {
        var n = Number();
        return n == 0 ? throw new ImapSyntaxException("Zero is not allowed here") : n;
    }

    public SequenceSet SequenceSet()
    {
        var text = Atom("*");
        return Imap.SequenceSet.TryParse(text, out var set) ? set : throw new ImapSyntaxException("Invalid sequence set");
    }
}

/// <summary>
/// A sequence set (RFC 9051 9: sequence-set), with "*" as -1 until resolved: every number a UID
/// can be, 4294967295 included, stays itself.
/// </summary>
internal sealed class SequenceSet
{
    public const long Star = -1;
    public IReadOnlyList<(long From, long To)> Ranges { get; }
    public bool IsSaved { get; }

    private SequenceSet(List<(long, long)> ranges, bool saved = false)
    {
        Ranges = ranges;
        IsSaved = saved;
    }

    public static readonly SequenceSet SavedResult = new([], saved: true);

    public static bool TryParse(string text, out SequenceSet set)
    {
        set = null!;
        if (text == "$") { set = SavedResult; return true; }
        var ranges = new List<(long, long)>();
        foreach (var item in text.Split(','))
        {
            if (ranges.Count >= 10_000) return false;
            var ends = item.Split(':');
            if (ends.Length is < 1 or > 2) return false;
            if (!TryValue(ends[0], out var a)) return false;
            var b = a;
            if (ends.Length == 2 && !TryValue(ends[1], out b)) return false;
            ranges.Add((a, b));
        }
        set = new SequenceSet(ranges);
        return true;
    }

    private static bool TryValue(string s, out long v)
    {
        v = 0;
        if (s == "*") { v = Star; return true; }
        if (s.Length is 0 or > 10 || !s.All(char.IsAsciiDigit) || !uint.TryParse(s, out var n) || n == 0) return false;
        v = n;
        return true;
    }

    /// <summary>A range's ends with "*" as <paramref name="max"/>, low first.</summary>
    private static (uint Lo, uint Hi) Bounds((long From, long To) range, uint max)
    {
        uint lo = range.From == Star ? max : (uint)range.From, hi = range.To == Star ? max : (uint)range.To;
        return lo <= hi ? (lo, hi) : (hi, lo);
    }

    /// <summary>Does <paramref name="n"/> fall in the set, "*" being <paramref name="max"/>?</summary>
    public bool Contains(uint n, uint max)
    {
        foreach (var range in Ranges)
        {
            var (lo, hi) = Bounds(range, max);
            if (n >= lo && n <= hi) return true;
        }
        return false;
    }

    /// <summary>
    /// The sequence numbers (1-based) of <paramref name="count"/> messages that the set names, in
    /// order, by sequence number or, given <paramref name="uidAt"/> (the UID at a 0-based
    /// position, ascending), by UID. Each range is a run of positions, found for UIDs by binary
    /// search.
    /// </summary>
    public List<int> Resolve(int count, Func<int, uint>? uidAt)
    {
        var result = new List<int>();
        if (count == 0) return result;
        uint max = uidAt != null ? uidAt(count - 1) : (uint)count;
        var runs = new List<(int First, int Last)>(Ranges.Count);
        foreach (var range in Ranges)
        {
            var (lo, hi) = Bounds(range, max);
            int first = uidAt != null ? FirstAbove(lo - 1) : (int)Math.Min(lo - 1, (uint)count);
            int last = (uidAt != null ? FirstAbove(hi) : (int)Math.Min(hi, (uint)count)) - 1;
            if (first <= last) runs.Add((first, last));
        }
        if (runs.Count > 1) runs.Sort();
        // Sorted by start, each run adds only what the runs before it did not: unique and in order.
        int next = 0;
        foreach (var (first, last) in runs)
        {
            for (int i = Math.Max(first, next); i <= last; i++) result.Add(i + 1);
            next = Math.Max(next, last + 1);
        }
        return result;

        int FirstAbove(uint value) // the first position whose UID is above value
        {
            int a = 0, b = count;
            while (a < b)
            {
                int mid = (a + b) >>> 1;
                if (uidAt!(mid) <= value) a = mid + 1; else b = mid;
            }
            return a;
        }
    }

    public override string ToString() => string.Join(',', Ranges.Select(r =>
        r.From == r.To ? V(r.From) : $"{V(r.From)}:{V(r.To)}"));

    private static string V(long v) => v == Star ? "*" : v.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A compact set for a sorted list of numbers (e.g. UIDPLUS COPYUID).</summary>
    public static string Compact(IEnumerable<uint> numbers)
    {
        var sb = new StringBuilder();
        uint? start = null, prev = null;
        foreach (var n in numbers)
        {
            if (prev != null && n == prev + 1) { prev = n; continue; }
            if (start != null) Append(sb, start.Value, prev!.Value);
            start = prev = n;
        }
        if (start != null) Append(sb, start.Value, prev!.Value);
        return sb.ToString();
    }

    private static void Append(StringBuilder sb, uint a, uint b)
    {
        if (sb.Length > 0) sb.Append(',');
        sb.Append(a);
        if (b != a) sb.Append(':').Append(b);
    }
}
