// Delivery status notification requests (RFC 3461): RET and ENVID on MAIL,
// NOTIFY and ORCPT on RCPT. They travel in the queue file as attributes
// ("ret", "envid", "notify:ADDRESS", "orcpt:ADDRESS"), so a queue file
// written before DSN support reads as "no request": the defaults. ENVID and
// ORCPT are kept as they came, in xtext, and reported so (RFC 3464 2.2.1,
// 2.3.1), as Postfix does.
using System.Text;

namespace Mail.Mta;

[Flags]
internal enum DsnNotify { None = 0, Success = 1, Failure = 2, Delay = 4, Never = 8, Default = Failure | Delay }

internal static class Dsn
{
    public const int MaxEnvId = 100;

    public static string NotifyKey(string rcpt) => Mail.Shared.Smtp.DsnAttributes.Notify(rcpt);
    public static string OrcptKey(string rcpt) => Mail.Shared.Smtp.DsnAttributes.Orcpt(rcpt);

    /// <summary>NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1).</summary>
    public static bool TryParseNotify(string value, out DsnNotify notify)
    {
        notify = DsnNotify.None;
        foreach (var part in value.Split(','))
        {
            var flag = part.ToUpperInvariant() switch
            {
                "NEVER" => DsnNotify.Never, "SUCCESS" => DsnNotify.Success, "FAILURE" => DsnNotify.Failure, "DELAY" => DsnNotify.Delay,
                _ => DsnNotify.None,
            };
            if (flag == DsnNotify.None || (notify & flag) != 0) return false;
            notify |= flag;
        }
        return notify != DsnNotify.None && (notify == DsnNotify.Never || (notify & DsnNotify.Never) == 0);
    }

    public static string FormatNotify(DsnNotify n) =>
        n == DsnNotify.Never ? "NEVER" : string.Join(',', new[] { (DsnNotify.Success, "SUCCESS"), (DsnNotify.Failure, "FAILURE"), (DsnNotify.Delay, "DELAY") }
            .Where(f => (n & f.Item1) != 0).Select(f => f.Item2));

    public static DsnNotify NotifyOf(IReadOnlyDictionary<string, string> attributes, string rcpt) =>
        attributes.TryGetValue(NotifyKey(rcpt), out var v) && TryParseNotify(v, out var n) ? n : DsnNotify.Default;

    /// <summary>xtext (RFC 3461 4): printable ASCII except "+" and "=", with "+XX" hex escapes. Decoded, or null if malformed.</summary>
    public static string? DecodeXtext(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '+')
            {
                if (i + 2 >= s.Length || !char.IsAsciiHexDigitUpper(s[i + 1]) || !char.IsAsciiHexDigitUpper(s[i + 2])) return null;
                sb.Append((char)Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else if (c < '!' || c > '~' || c == '=') return null;
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>ENVID: valid xtext of printable ASCII, at most 100 characters once decoded.</summary>
    public static bool IsValidEnvId(string value)
    {
        var envid = DecodeXtext(value);
        return envid != null && envid.Length is > 0 and <= MaxEnvId && envid.All(c => c is >= ' ' and <= '~');
    }

    /// <summary>ORCPT=addr-type;xtext with a printable address of sane length.</summary>
    public static bool IsValidOrcpt(string value)
    {
        int semi = value.IndexOf(';');
        if (semi <= 0 || !value[..semi].All(c => char.IsAsciiLetterOrDigit(c) || c == '-')) return false;
        var address = DecodeXtext(value[(semi + 1)..]);
        return address != null && address.Length is > 0 and <= 500 && address.All(c => c is >= ' ' and <= '~');
    }
}
