// A script made ready to run: parsed, checked, its encoded characters
// (RFC 5228 2.4.2.4) decoded once. lmtpd compiles a user's script once and
// keeps it by file, modification time and size, so a message costs only the
// run; a changed file is compiled again at the next message.
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Mail.Sieve;

public sealed class SieveCompiled
{
    public required string Name { get; init; }
    public required SieveScript Script { get; init; }
    public required IReadOnlySet<string> Required { get; init; }
}

public static class SieveCompiler
{
    /// <summary>The runnable script, or null and the first fault with its line.</summary>
    public static SieveCompiled? Compile(string text, string name, out SieveError? error, SieveLimits? limits = null)
    {
        var script = SieveParser.Parse(text, out error, limits);
        if (script == null) return null;
        error = SieveValidator.Validate(script);
        if (error != null) return null;
        var required = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in script.Commands)
            if (c is { Name: "require", Arguments: [StringListArgument list] })
                foreach (var v in list.Values) required.Add(v.ToLowerInvariant());
        if (required.Contains("spamtestplus")) required.Add("spamtest");
        if (required.Contains("encoded-character")) script = new SieveScript(script.Commands.Select(DecodeCommand).ToList());
        return new SieveCompiled { Name = name, Script = script, Required = required };
    }

    private static SieveCommand DecodeCommand(SieveCommand c) =>
        c with
        {
            Arguments = c.Arguments.Select(DecodeArgument).ToList(),
            Tests = c.Tests.Select(DecodeTest).ToList(),
            Block = c.Block?.Select(DecodeCommand).ToList(),
        };

    private static SieveTest DecodeTest(SieveTest t) =>
        t with { Arguments = t.Arguments.Select(DecodeArgument).ToList(), Tests = t.Tests.Select(DecodeTest).ToList() };

    private static SieveArgument DecodeArgument(SieveArgument a) =>
        a is StringListArgument s ? s with { Values = s.Values.Select(DecodeEncoded).ToList() } : a;

    /// <summary>"${hex: 41 42}" and "${unicode: 263a}" as their characters; a malformed one stays as written.</summary>
    public static string DecodeEncoded(string s)
    {
        if (!s.Contains("${", StringComparison.Ordinal)) return s;
        var sb = new StringBuilder();
        int i = 0;
        while (i < s.Length)
        {
            int open = s.IndexOf("${", i, StringComparison.Ordinal);
            int close = open < 0 ? -1 : s.IndexOf('}', open);
            if (open < 0 || close < 0) { sb.Append(s, i, s.Length - i); break; }
            sb.Append(s, i, open - i);
            var inner = s[(open + 2)..close];
            int colon = inner.IndexOf(':');
            string? decoded = null;
            if (colon > 0)
            {
                var kind = inner[..colon].Trim().ToLowerInvariant();
                var items = inner[(colon + 1)..].Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries);
                decoded = kind switch { "hex" => Hex(items), "unicode" => Unicode(items), _ => null };
            }
            if (decoded == null)
            {
                // Not an encoding: keep "${" and look again just after it (an encoding may follow inside).
                sb.Append("${");
                i = open + 2;
                continue;
            }
            sb.Append(decoded);
            i = close + 1;
        }
        return sb.ToString();
    }

    private static string? Hex(string[] items)
    {
        var bytes = new List<byte>();
        foreach (var item in items)
        {
            if (item.Length is 0 or > 2 || !byte.TryParse(item, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b)) return null;
            bytes.Add(b);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static string? Unicode(string[] items)
    {
        var sb = new StringBuilder();
        foreach (var item in items)
        {
            if (item.Length > 6 || !int.TryParse(item, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var cp)) return null;
            if (cp > 0x10FFFF || cp is >= 0xD800 and <= 0xDFFF) return null;
            sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }
}

/// <summary>Compiled scripts by path, kept while the file's modification time and size stay the same.</summary>
public sealed class SieveScriptCache(int capacity = 10_000)
{
    private sealed record Entry(DateTime Modified, long Size, SieveCompiled? Script, SieveError? Error);

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>The compiled script at <paramref name="path"/>, or its fault; null when there is no such file.</summary>
    public (SieveCompiled? Script, SieveError? Error)? Get(string path, SieveLimits? limits = null)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (_entries.TryGetValue(path, out var e) && e.Modified == info.LastWriteTimeUtc && e.Size == info.Length) return (e.Script, e.Error);
        limits ??= SieveLimits.Default;
        if (info.Length > limits.MaxScriptSize * 4L) return (null, new SieveError(1, $"script larger than {limits.MaxScriptSize} characters"));
        string text;
        try { text = File.ReadAllText(path); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        var compiled = SieveCompiler.Compile(text, Path.GetFileNameWithoutExtension(path), out var error, limits);
        if (_entries.Count >= capacity) _entries.Clear();
        _entries[path] = new Entry(info.LastWriteTimeUtc, info.Length, compiled, error);
        return (compiled, error);
    }
}
