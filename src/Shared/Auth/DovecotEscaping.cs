// Dovecot's tab-escaping of its auth protocol's parameters: \001 followed by
// 0 (NUL), 1 (\001), t (TAB), r (CR) or n (LF); any other character stands for
// itself.
using System.Text;

namespace Mail.Shared.Auth;

public static class DovecotEscaping
{
    public static string Escape(string s)
    {
        if (s.AsSpan().IndexOfAny("\u0001\t\r\n\0") < 0) return s;
        var b = new StringBuilder(s.Length + 8);
        foreach (var c in s)
            b.Append(c switch { '\u0001' => "\u00011", '\t' => "\u0001t", '\r' => "\u0001r", '\n' => "\u0001n", '\0' => "\u00010", _ => c.ToString() });
        return b.ToString();
    }

    public static string Unescape(string s)
    {
        if (!s.Contains('\u0001')) return s;
        var b = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '\u0001' || i + 1 == s.Length) { b.Append(s[i]); continue; }
            var c = s[++i];
            b.Append(c switch { '0' => '\0', '1' => '\u0001', 't' => '\t', 'r' => '\r', 'n' => '\n', _ => c });
        }
        return b.ToString();
    }
}
