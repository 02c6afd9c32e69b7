// Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric) and
// match types (RFC 5228 2.7: :is, :contains, :matches; RFC 5231 :value and
// :count; the regex draft's :regex). A :matches pattern is matched by a
// two-pointer scan (each '*' as short as the rest allows, as RFC 5229 3.2's
// match variables expect) in time bounded by the product of the lengths; a
// regular expression runs under a time-out, and its compiled form is kept
// for the next message.
using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Mail.Sieve;

public enum SieveComparator { Octet, AsciiCasemap, AsciiNumeric }

public enum SieveMatchType { Is, Contains, Matches, Regex, Value, Count }

/// <summary>A run-time fault of the script (the message is kept).</summary>
public sealed class SieveRuntimeException(int line, string message) : Exception(message)
{
    public int Line { get; } = line;
}

public sealed record SieveMatcher(SieveMatchType Type, string? Relation, SieveComparator Comparator)
{
    public static readonly SieveMatcher Default = new(SieveMatchType.Is, null, SieveComparator.AsciiCasemap);

    private static readonly ConcurrentDictionary<(string, bool), Regex> Compiled = new();

    /// <summary>Does <paramref name="value"/> match <paramref name="key"/>? Captures are the match variables (${0}, ${1} ...).</summary>
    public bool Match(string value, string key, List<string>? captures, int line)
    {
        switch (Type)
        {
            case SieveMatchType.Is:
                return Comparator == SieveComparator.AsciiNumeric ? CompareNumeric(value, key) == 0 : Equal(value, key);
            case SieveMatchType.Contains:
                if (Comparator == SieveComparator.AsciiNumeric) throw new SieveRuntimeException(line, "comparator i;ascii-numeric does not support :contains");
                return value.Contains(key, Comparator == SieveComparator.Octet ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
            case SieveMatchType.Matches:
                if (Comparator == SieveComparator.AsciiNumeric) throw new SieveRuntimeException(line, "comparator i;ascii-numeric does not support :matches");
                return Glob(value, key, Comparator == SieveComparator.AsciiCasemap, captures);
            case SieveMatchType.Regex:
                return RegexMatch(value, key, captures, line);
            case SieveMatchType.Value:
                return Relate(Compare(value, key));
            default:
                throw new InvalidOperationException("count is matched on the number of values");
        }
    }

    public bool Relate(int comparison) => Relation switch
    {
        "gt" => comparison > 0,
        "ge" => comparison >= 0,
        "lt" => comparison < 0,
        "le" => comparison <= 0,
        "eq" => comparison == 0,
        "ne" => comparison != 0,
        _ => false,
    };

    private bool Equal(string a, string b) =>
        Comparator == SieveComparator.Octet ? string.Equals(a, b, StringComparison.Ordinal) : AsciiFold(a, b) == 0;

    public int Compare(string a, string b) => Comparator switch
    {
        SieveComparator.AsciiNumeric => CompareNumeric(a, b),
        SieveComparator.Octet => string.CompareOrdinal(a, b),
        _ => AsciiFold(a, b),
    };

    /// <summary>i;ascii-casemap: only A-Z fold to a-z.</summary>
    private static int AsciiFold(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            int x = a[i] is >= 'A' and <= 'Z' ? a[i] | 0x20 : a[i];
            int y = b[i] is >= 'A' and <= 'Z' ? b[i] | 0x20 : b[i];
            if (x != y) return x - y;
        }
        return a.Length - b.Length;
    }

    /// <summary>i;ascii-numeric (RFC 4790 9.1): the leading digits as a number; none is positive infinity.</summary>
    public static int CompareNumeric(string a, string b)
    {
        var x = Digits(a);
        var y = Digits(b);
        if (x == null || y == null) return x == null ? (y == null ? 0 : 1) : -1;
        if (x.Length != y.Length) return x.Length - y.Length;
        return string.CompareOrdinal(x, y);
    }

    private static string? Digits(string s)
    {
        int n = 0;
        while (n < s.Length && char.IsAsciiDigit(s[n])) n++;
        if (n == 0) return null;
        var digits = s[..n].TrimStart('0');
        return digits.Length == 0 ? "0" : digits;
    }

    /// <summary>
    /// RFC 5228 2.7.1 wildcards: '*' any run, '?' one character, '\' quotes the next. Captures get
    /// the whole value then what each wildcard matched, earlier '*'s as short as the rest allows.
    /// </summary>
    public static bool Glob(string value, string pattern, bool ignoreCase, List<string>? captures)
    {
        // The pattern as tokens: a character to match, or a wildcard ('\0' with the wildcard in the kind).
        var chars = new List<char>(pattern.Length);
        var wild = new List<char>(pattern.Length);
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length) { chars.Add(pattern[++i]); wild.Add('\0'); }
            else if (c is '*' or '?') { chars.Add('\0'); wild.Add(c); }
            else { chars.Add(c); wild.Add('\0'); }
        }
        int m = chars.Count, wildcards = wild.Count(w => w != '\0');
        var start = new int[wildcards];
        var end = new int[wildcards];
        var ordinal = new int[m];
        for (int i = 0, k = 0; i < m; i++) ordinal[i] = wild[i] != '\0' ? k++ : -1;

        int p = 0, s = 0, starP = -1, starS = -1;
        while (s < value.Length)
        {
            if (p < m && wild[p] == '*')
            {
                if (starP >= 0) end[ordinal[starP]] = starS;
                starP = p;
                starS = s;
                start[ordinal[p]] = s;
                p++;
            }
            else if (p < m && (wild[p] == '?' || (wild[p] == '\0' && Same(chars[p], value[s], ignoreCase))))
            {
                if (wild[p] == '?') { start[ordinal[p]] = s; end[ordinal[p]] = s + 1; }
                p++;
                s++;
            }
            else if (starP >= 0)
            {
                p = starP + 1;
                s = ++starS;
            }
            else return false;
        }
        if (starP >= 0) end[ordinal[starP]] = starS;
        while (p < m && wild[p] == '*')
        {
            start[ordinal[p]] = end[ordinal[p]] = value.Length;
            p++;
        }
        if (p != m) return false;
        if (captures != null)
        {
            captures.Clear();
            captures.Add(value);
            for (int k = 0; k < wildcards; k++) captures.Add(value[start[k]..end[k]]);
        }
        return true;
    }

    private static bool Same(char a, char b, bool ignoreCase) =>
        a == b || (ignoreCase && a < 128 && b < 128 && char.ToLowerInvariant(a) == char.ToLowerInvariant(b));

    private bool RegexMatch(string value, string pattern, List<string>? captures, int line)
    {
        if (Comparator == SieveComparator.AsciiNumeric) throw new SieveRuntimeException(line, "comparator i;ascii-numeric does not support :regex");
        var regex = CompiledRegex(pattern, Comparator == SieveComparator.AsciiCasemap, line);
        Match m;
        try { m = regex.Match(value, 0, value.Length); }
        catch (RegexMatchTimeoutException) { throw new SieveRuntimeException(line, "regular expression took too long"); }
        if (!m.Success) return false;
        if (captures != null)
        {
            captures.Clear();
            foreach (Group g in m.Groups) captures.Add(g.Success ? g.Value : "");
        }
        return true;
    }

    /// <summary>The compiled expression, or a run-time fault for one that does not compile.</summary>
    public static Regex CompiledRegex(string pattern, bool ignoreCase, int line)
    {
        if (Compiled.TryGetValue((pattern, ignoreCase), out var regex)) return regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.CultureInvariant | (ignoreCase ? RegexOptions.IgnoreCase : 0), TimeSpan.FromMilliseconds(250));
        }
        catch (ArgumentException e) { throw new SieveRuntimeException(line, $"invalid regular expression: {e.Message}"); }
        if (Compiled.Count > 1000) Compiled.Clear();
        Compiled[(pattern, ignoreCase)] = regex;
        return regex;
    }
}
