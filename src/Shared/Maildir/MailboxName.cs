// Mailbox names between IMAP and the Maildir++ tree, as Dovecot's
// layout=maildir++ with "/" as the hierarchy separator keeps them: a folder
// "Archive/2024" is the directory ".Archive.2024", named in modified UTF-7
// (RFC 3501 5.1.3). A name can never reach outside the user's Maildir: the
// whole name becomes one directory entry starting with ".", "/" becomes "."
// and a "." inside a name is refused, as Dovecot refuses it.
using System.Text;

namespace Mail.Shared.Maildir;

public static class MailboxName
{
    public const char Separator = '/';
    public const int MaxLength = 200;

    /// <summary>Checks a mailbox name (UTF-16, decoded); null if fine, else why not.</summary>
    public static string? Validate(string name)
    {
        if (name.Length == 0) return "Empty mailbox name";
        if (Encode(name).Length > MaxLength) return "Mailbox name too long";
        if (name.StartsWith(Separator) || name.EndsWith(Separator) || name.Contains("//")) return "Invalid hierarchy in mailbox name";
        foreach (var c in name)
            if (c < ' ' || c == 0x7f || c is '.' or '\\' or '*' or '%' or '~') return $"Character not allowed in mailbox name: '{(c < ' ' ? '?' : c)}'";
        return null;
    }

    /// <summary>"INBOX" in any case is INBOX; other names are case-sensitive.</summary>
    public static string Normalize(string name) =>
        name.Equals("INBOX", StringComparison.OrdinalIgnoreCase) ? "INBOX"
        : name.StartsWith("INBOX/", StringComparison.OrdinalIgnoreCase) ? "INBOX" + name[5..] : name;

    /// <summary>The folder's directory under the Maildir root.</summary>
    public static string Directory(string maildir, string name) =>
        name == "INBOX" ? maildir : Path.Combine(maildir, "." + Encode(name).Replace(Separator, '.'));

    /// <summary>The mailbox name of a ".Folder.Sub" directory entry, or null if it is not one.</summary>
    public static string? FromDirectory(string entry)
    {
        if (entry.Length < 2 || entry[0] != '.' || entry == "..") return null;
        var decoded = Decode(entry[1..].Replace('.', Separator));
        return decoded == null || Validate(decoded) != null ? null : decoded;
    }

    /// <summary>Modified UTF-7 (RFC 3501 5.1.3).</summary>
    public static string Encode(string s)
    {
        var sb = new StringBuilder();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c >= 0x20 && c <= 0x7e)
            {
                sb.Append(c == '&' ? "&-" : c.ToString());
                i++;
                continue;
            }
            int start = i;
            while (i < s.Length && (s[i] < 0x20 || s[i] > 0x7e)) i++;
            var bytes = Encoding.BigEndianUnicode.GetBytes(s[start..i]);
            sb.Append('&').Append(Convert.ToBase64String(bytes).TrimEnd('=').Replace('/', ',')).Append('-');
        }
        return sb.ToString();
    }

    /// <summary>Decodes modified UTF-7; null if malformed.</summary>
    public static string? Decode(string s)
    {
        var sb = new StringBuilder();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c < 0x20 || c > 0x7e) return null;
            if (c != '&') { sb.Append(c); i++; continue; }
            int end = s.IndexOf('-', i + 1);
            if (end < 0) return null;
            if (end == i + 1) { sb.Append('&'); i = end + 1; continue; }
            var b64 = s[(i + 1)..end].Replace(',', '/');
            if (b64.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '+' or '/'))) return null;
            var padded = b64.PadRight((b64.Length + 3) / 4 * 4, '=');
            byte[] bytes;
            try { bytes = Convert.FromBase64String(padded); }
            catch (FormatException) { return null; }
            if (bytes.Length % 2 != 0) return null;
            var text = Encoding.BigEndianUnicode.GetString(bytes);
            if (text.Any(ch => ch >= 0x20 && ch <= 0x7e)) return null; // must have been written directly
            sb.Append(text);
            i = end + 1;
        }
        return sb.ToString();
    }
}
