// One configuration parameter: its key, default, documentation and the check
// its value must pass. Values come from an administrator's file or environment
// and are untrusted until Check accepts them.
using System.Globalization;

namespace Mail.Shared.Config;

public enum SettingKind { Text, Path, Int, Bool, Duration, Size, Choice, List }

public sealed record Setting(string Key, string Default, string Doc, SettingKind Kind = SettingKind.Text,
    long Min = long.MinValue, long Max = long.MaxValue, string[]? Choices = null)
{
    public static Setting Text(string key, string def, string doc) => new(key, def, doc);
    public static Setting Path(string key, string def, string doc) => new(key, def, doc, SettingKind.Path);
    public static Setting List(string key, string def, string doc) => new(key, def, doc, SettingKind.List);
    public static Setting Int(string key, long def, long min, long max, string doc) =>
        new(key, def.ToString(CultureInfo.InvariantCulture), doc, SettingKind.Int, min, max);
    public static Setting Bool(string key, bool def, string doc) => new(key, def ? "yes" : "no", doc, SettingKind.Bool);
    public static Setting Duration(string key, string def, string doc) => new(key, def, doc, SettingKind.Duration);
    public static Setting Size(string key, string def, string doc) => new(key, def, doc, SettingKind.Size);
    public static Setting Choice(string key, string def, string doc, params string[] choices) =>
        new(key, def, doc, SettingKind.Choice, Choices: choices);

    /// <summary>Returns why <paramref name="value"/> is not acceptable, or null.</summary>
    public string? Check(string value) => Kind switch
    {
        SettingKind.Int => !long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
            ? "must be an integer"
            : n < Min || n > Max ? $"must be between {Min} and {Max}" : null,
        SettingKind.Bool => ValueParsers.TryBool(value, out _) ? null : "must be yes or no",
        SettingKind.Duration => ValueParsers.TryDuration(value, out _) ? null : "must be a duration such as 500ms, 30s, 5m, 1h, 2d",
        SettingKind.Size => ValueParsers.TrySize(value, out _) ? null : "must be a size such as 512, 64k, 10M, 1G",
        SettingKind.Choice => Choices!.Contains(value, StringComparer.Ordinal) ? null : "must be one of: " + string.Join(", ", Choices!),
        SettingKind.Path => value.Contains('\0') ? "must not contain NUL" : null,
        _ => null,
    };
}

public static class ValueParsers
{
    public static bool TryBool(string s, out bool value)
    {
        switch (s.ToLowerInvariant())
        {
            case "yes": case "true": case "on": case "1": value = true; return true;
            case "no": case "false": case "off": case "0": value = false; return true;
            default: value = false; return false;
        }
    }

    public static bool TryDuration(string s, out TimeSpan value)
    {
        value = default;
        s = s.Trim();
        int i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == 0 || i > 9 || !long.TryParse(s.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return false;
        switch (s[i..])
        {
            case "ms": value = TimeSpan.FromMilliseconds(n); return true;
            case "" or "s": value = TimeSpan.FromSeconds(n); return true;
            case "m": value = TimeSpan.FromMinutes(n); return true;
            case "h": value = TimeSpan.FromHours(n); return true;
            case "d": value = TimeSpan.FromDays(n); return true;
            default: return false;
        }
    }

    public static bool TrySize(string s, out long value)
    {
        value = 0;
        s = s.Trim();
        int i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == 0 || i > 15 || !long.TryParse(s.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return false;
        long mult;
        switch (s[i..].ToUpperInvariant())
        {
            case "" or "B": mult = 1; break;
            case "K" or "KB": mult = 1L << 10; break;
            case "M" or "MB": mult = 1L << 20; break;
            case "G" or "GB": mult = 1L << 30; break;
            case "T" or "TB": mult = 1L << 40; break;
            default: return false;
        }
        if (n > long.MaxValue / mult) return false;
        value = n * mult;
        return true;
    }
}
