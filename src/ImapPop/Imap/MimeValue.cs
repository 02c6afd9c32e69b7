// A Content-Type or Content-Disposition value (RFC 2045 5.1, RFC 2183) as
// BODYSTRUCTURE shows it: type, subtype and parameters as the header has
// them. Parameters split by RFC 2231 continuations (name*0, name*1*, ...)
// are joined back; an encoded one stays encoded under "name*" (charset''%XX),
// for the client to decode, as Dovecot shows it.
using System.Text;

namespace Mail.ImapPop.Imap;

internal sealed class MimeValue(string type, string subtype, List<(string Name, string Value)> parameters)
{
    public string Type { get; } = type;
    public string Subtype { get; } = subtype;
    public IReadOnlyList<(string Name, string Value)> Params { get; } = parameters;

    public static readonly MimeValue TextPlain = new("text", "plain", []);
    public static readonly MimeValue MessageRfc822 = new("message", "rfc822", []);

    public bool Is(string type, string? subtype) =>
        Type.Equals(type, StringComparison.OrdinalIgnoreCase) && (subtype == null || Subtype.Equals(subtype, StringComparison.OrdinalIgnoreCase));

    /// <summary>The first parameter of that name, or null.</summary>
    public string? Param(string name)
    {
        foreach (var (n, v) in Params) if (n.Equals(name, StringComparison.OrdinalIgnoreCase)) return v;
        return null;
    }

    /// <summary>"type/subtype *(; parameter)"; null when the type itself is broken.</summary>
    public static MimeValue? ContentType(string value)
    {
        var p = new Reader(value);
        p.SkipCfws();
        var type = p.Token();
        if (type == null || !p.Take('/')) return null;
        p.SkipCfws();
        var subtype = p.Token();
        p.SkipCfws();
        if (subtype == null || !(p.End || p.Peek == ';')) return null;
        return new MimeValue(type, subtype, p.Parameters());
    }

    /// <summary>"disposition *(; parameter)"; null when there is no disposition token.</summary>
    public static MimeValue? Disposition(string value)
    {
        var p = new Reader(value);
        p.SkipCfws();
        var type = p.Token();
        if (type == null) return null;
        p.SkipCfws();
        return new MimeValue(type, "", p.Parameters());
    }

    /// <summary>A single token (Content-Transfer-Encoding), null when the value is not one.</summary>
    public static string? Token(string? value)
    {
        if (value == null) return null;
        var p = new Reader(value);
        p.SkipCfws();
        var token = p.Token();
        p.SkipCfws();
        return p.End ? token : null;
    }

    private ref struct Reader(string s)
    {
        private HeaderReader _r = new(s);

        public readonly bool End => _r.End;
        public readonly char Peek => _r.Peek;
        public bool Take(char c) => _r.Take(c);
        public void SkipCfws() => _r.SkipCfws();

        /// <summary>token (RFC 2045 5.1): anything but SPACE, CTLs and tspecials.</summary>
        public string? Token()
        {
            var start = _r.Pos;
            while (_r.Pos < _r.Text.Length && IsTokenChar(_r.Text[_r.Pos])) _r.Pos++;
            return _r.Pos > start ? _r.Text[start.._r.Pos] : null;
        }

        private static bool IsTokenChar(char c) =>
            c > ' ' && c != 127 && c is not ('(' or ')' or '<' or '>' or '@' or ',' or ';' or ':' or '\\' or '"' or '/' or '[' or ']' or '?' or '=');

        /// <summary>*(";" attribute "=" value), RFC 2231 continuations joined; what cannot be read is skipped.</summary>
        public List<(string Name, string Value)> Parameters()
        {
            var plain = new List<(string Name, string Value)>();
            var sections = new List<(string Name, int Index, bool Extended, string Value)>();
            while (true)
            {
                SkipCfws();
                if (End) break;
                if (!Take(';')) { _r.Pos++; continue; }
                SkipCfws();
                var name = Token();
                if (name == null || !Take('=')) continue;
                SkipCfws();
                string value;
                if (!End && Peek == '"') value = _r.Quoted();
                else if (!End && Peek == '=')
                {
                    // Broken but common: name==?utf-8?b?...?= unquoted.
                    var start = _r.Pos;
                    while (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] is not (';' or ' ' or '\t')) _r.Pos++;
                    value = _r.Text[start.._r.Pos];
                }
                else value = Token() ?? "";
                var star = name.IndexOf('*');
                if (star > 0 && Section(name, star) is { } section) sections.Add((name[..star], section.Index, section.Extended, value));
                else plain.Add((name, value));
            }
            if (sections.Count == 0) return plain;
            // Join each name's sections in index order; with a gap, they are left as they came.
            foreach (var group in sections.GroupBy(x => x.Name, StringComparer.OrdinalIgnoreCase))
            {
                var parts = group.OrderBy(x => x.Index).ToList();
                bool whole = parts.Select((x, k) => x.Index == k).All(ok => ok);
                if (!whole)
                {
                    foreach (var x in parts) plain.Add(($"{x.Name}*{x.Index}{(x.Extended ? "*" : "")}", x.Value));
                    continue;
                }
                bool extended = parts.Any(x => x.Extended);
                var joined = new StringBuilder();
                if (extended && !parts[0].Extended) joined.Append("''");
                foreach (var x in parts) joined.Append(extended && !x.Extended ? x.Value.Replace("%", "%25") : x.Value);
                var key = extended ? parts[0].Name + "*" : parts[0].Name;
                if (!plain.Any(x => x.Name.Equals(key, StringComparison.OrdinalIgnoreCase))) plain.Add((key, joined.ToString()));
            }
            return plain;
        }

        /// <summary>"name*", "name*N" or "name*N*" after the name: the section's index and whether it is encoded.</summary>
        private static (int Index, bool Extended)? Section(string name, int star)
        {
            var rest = name.AsSpan(star + 1);
            if (rest.Length == 0) return (0, true);
            int digits = 0, index = 0;
            while (digits < rest.Length && char.IsAsciiDigit(rest[digits]) && digits < 6) index = index * 10 + (rest[digits++] - '0');
            if (digits == 0) return null;
            rest = rest[digits..];
            if (rest.Length == 0) return (index, false);
            return rest is "*" ? (index, true) : null;
        }
    }
}
