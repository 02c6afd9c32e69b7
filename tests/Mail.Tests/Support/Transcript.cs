// Protocol transcripts: a file of client and server lines, replayed against a
// live session over a real socket. The files live in tests/Mail.Tests/Transcripts.
//   C: text      the client sends text and CRLF
//   S: text      the server's next line is exactly text
//   S~ regex     the server's next line matches regex (whole line)
//   S> regex     lines are read until one matches regex (at most 1,000)
//   ! name       the test's action of that name runs here (another session, a file removed)
//   # ...        a comment; blank lines are ignored
// ${NAME} in any line is replaced by the test's value for NAME, or by what a named
// group (?<NAME>...) of an earlier S~ or S> regex matched (a UID, a mod-sequence).
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Mail.Tests.Support;

internal static class Transcript
{
    public static string PathOf(string name) => Path.Combine(Repo.Root, "tests", "Mail.Tests", "Transcripts", name);

    /// <summary>Replays the transcript <paramref name="name"/> against 127.0.0.1:<paramref name="port"/>; fails at the first line that differs.</summary>
    public static async Task ReplayAsync(string name, int port, IReadOnlyDictionary<string, string>? values = null,
        IReadOnlyDictionary<string, Func<Task>>? actions = null)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var stream = tcp.GetStream();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var seen = new StringBuilder(); // the dialogue so far, for the failure message
        var captured = new Dictionary<string, string>(StringComparer.Ordinal);
        int number = 0;
        foreach (var raw in File.ReadAllLines(PathOf(name)))
        {
            number++;
            if (raw.Length == 0 || raw.StartsWith('#')) continue;
            var line = Regex.Replace(raw, @"\$\{(\w+)\}", m =>
                captured.TryGetValue(m.Groups[1].Value, out var c) ? c : values != null && values.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);
            var kind = line.Length >= 3 ? line[..3] : line;
            var text = line.Length > 3 ? line[3..] : "";
            string where = $"{name}:{number}";
            switch (kind)
            {
                case "C: ":
                    seen.Append("C: ").Append(text).Append('\n');
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(text + "\r\n"));
                    break;
                case "S: ":
                    {
                        var got = await ReadAsync(reader, where, seen);
                        Assert.That(got, Is.EqualTo(text), $"{where}\n{seen}");
                        break;
                    }
                case "S~ ":
                    {
                        var got = await ReadAsync(reader, where, seen);
                        var match = Regex.Match(got, "^(?:" + text + ")$");
                        Assert.That(match.Success, Is.True, $"{where}: '{got}' does not match /{text}/\n{seen}");
                        Capture(match, captured);
                        break;
                    }
                case "S> ":
                    for (int i = 0; ; i++)
                    {
                        Assert.That(i, Is.LessThan(1000), $"{where}: no line matched /{text}/\n{seen}");
                        var match = Regex.Match(await ReadAsync(reader, where, seen), "^(?:" + text + ")$");
                        if (match.Success) { Capture(match, captured); break; }
                    }
                    break;
                default:
                    if (line.StartsWith("! "))
                    {
                        Assert.That(actions != null && actions.ContainsKey(line[2..]), Is.True, $"{where}: no action '{line[2..]}'");
                        await actions![line[2..]]();
                        break;
                    }
                    Assert.Fail($"{where}: cannot read '{line}'");
                    break;
            }
        }
    }

    private static void Capture(Match match, Dictionary<string, string> captured)
    {
        foreach (var group in match.Groups.Values)
            if (group.Success && !int.TryParse(group.Name, out _)) captured[group.Name] = group.Value;
    }

    private static async Task<string> ReadAsync(StreamReader reader, string where, StringBuilder seen)
    {
        string? got;
        try { got = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)); }
        catch (TimeoutException) { got = null; }
        Assert.That(got, Is.Not.Null, $"{where}: the server said nothing more\n{seen}");
        seen.Append("S: ").Append(got).Append('\n');
        return got!;
    }
}
