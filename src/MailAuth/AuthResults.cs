// The Authentication-Results header (RFC 8601): one per message, with our
// hostname as authserv-id and one "method=result" clause per check, and the
// rules for text that came from the client or the DNS: it enters a comment,
// a quoted string or a token only after anything that could end it, start a
// new header line or carry a control character is taken out.
using System.Text;

namespace Mail.MailAuth;

public sealed class AuthResults(string authservId)
{
    private readonly List<string> _clauses = [];

    public string AuthservId => authservId;
    public IReadOnlyList<string> Clauses => _clauses;

    /// <summary>Adds "method=result (reason) ptype.property=value ...".</summary>
    public AuthResults Add(string method, string result, string? reason, params (string Property, string Value)[] properties)
    {
        var sb = new StringBuilder(method).Append('=').Append(result);
        if (!string.IsNullOrEmpty(reason)) sb.Append(" (").Append(CommentSafe(reason)).Append(')');
        foreach (var (property, value) in properties)
            if (value.Length > 0) sb.Append(' ').Append(property).Append('=').Append(ValueSafe(value));
        _clauses.Add(sb.ToString());
        return this;
    }

    /// <summary>The header's value: the authserv-id, then each clause on its own folded line.</summary>
    public string Value => _clauses.Count == 0 ? $"{authservId}; none" : $"{authservId};\r\n\t" + string.Join(";\r\n\t", _clauses);

    /// <summary>The whole header line, ending in CRLF.</summary>
    public string Header => $"Authentication-Results: {Value}\r\n";

    /// <summary>Text for a comment: printable ASCII, no parentheses or backslashes, at most 200 characters.</summary>
    public static string CommentSafe(string text) => Filter(text, ch => ch is >= ' ' and <= '~' and not ('(' or ')' or '\\'), 200);

    /// <summary>Text for a quoted string: printable ASCII without quotes or backslashes.</summary>
    public static string QuoteSafe(string text) => Filter(text, ch => ch is >= ' ' and <= '~' and not ('"' or '\\'), 320);

    /// <summary>A property value: a token (RFC 2045) or, if it has other characters, a quoted string.</summary>
    public static string ValueSafe(string text)
    {
        var clean = Filter(text, ch => ch is > ' ' and <= '~', 320);
        bool token = clean.Length > 0 && clean.All(ch => char.IsAsciiLetterOrDigit(ch) || "!#$%&'*+-.^_`{|}~@/=".Contains(ch));
        return token ? clean : "\"" + QuoteSafe(clean) + "\"";
    }

    private static string Filter(string text, Func<char, bool> keep, int max)
    {
        var sb = new StringBuilder(Math.Min(text.Length, max));
        foreach (var ch in text)
        {
            if (sb.Length >= max) break;
            if (keep(ch)) sb.Append(ch);
            else if (ch is '\t' or '\r' or '\n') sb.Append(' ');
        }
        return sb.ToString();
    }

    /// <summary>The authserv-id of an Authentication-Results value (the text before its first ';', comments left out).</summary>
    public static string AuthservIdOf(string value)
    {
        var sb = new StringBuilder();
        int depth = 0;
        foreach (var ch in value)
        {
            if (ch == '(') depth++;
            else if (ch == ')' && depth > 0) depth--;
            else if (depth == 0 && ch == ';') break;
            else if (depth == 0) sb.Append(char.IsWhiteSpace(ch) ? ' ' : ch);
        }
        return sb.ToString().Trim().Split(' ')[0];
    }

    /// <summary>RFC 8601 5: a header the message brought that claims to be ours.</summary>
    public static bool ClaimsToBe(string value, string authservId) =>
        AuthservIdOf(value).Equals(authservId, StringComparison.OrdinalIgnoreCase);
}
