// Mail addresses as the directory and SMTP key them: "local@domain", lower-cased,
// bounded (RFC 5321 4.5.3.1: local part 64, domain 255 octets), with no
// characters that could split a log line or a directory file's field.
namespace Mail.Shared.Smtp;

public readonly record struct MailAddress(string Local, string Domain)
{
    public const int MaxLocal = 64;
    public const int MaxDomain = 255;

    public override string ToString() => Local + "@" + Domain;

    /// <summary>Parses and normalises "local@domain"; false for anything malformed.</summary>
    public static bool TryParse(string? text, out MailAddress address)
    {
        address = default;
        if (string.IsNullOrEmpty(text) || text.Length > MaxLocal + 1 + MaxDomain) return false;
        int at = text.LastIndexOf('@');
        if (at <= 0 || at == text.Length - 1) return false;
        var local = text[..at];
        var domain = text[(at + 1)..].TrimEnd('.');
        if (local.Length > MaxLocal || domain.Length == 0 || domain.Length > MaxDomain) return false;
        foreach (var c in text)
            if (c <= ' ' || c == 0x7f || c == ':' || c == ',' || c == '<' || c == '>' || c == '\\' || c == '"') return false;
        foreach (var c in domain)
            if (!(char.IsLetterOrDigit(c) || c == '-' || c == '.' || c > 0x7f)) return false;
        if (domain.Contains("..") || domain.StartsWith('.') || domain.StartsWith('-')) return false;
        address = new MailAddress(local.ToLowerInvariant(), domain.ToLowerInvariant());
        return true;
    }

    public static bool IsValidDomain(string? domain) => TryParse("x@" + domain, out var a) && a.Domain == domain!.ToLowerInvariant();

    /// <summary>Splits "user+detail" at the first delimiter: ("user", "detail"), or (local, null).</summary>
    public (MailAddress Base, string? Detail) SplitDetail(string delimiters)
    {
        if (delimiters.Length == 0) return (this, null);
        int i = Local.IndexOfAny(delimiters.ToCharArray());
        if (i <= 0) return (this, null);
        return (new MailAddress(Local[..i], Domain), Local[(i + 1)..]);
    }
}
