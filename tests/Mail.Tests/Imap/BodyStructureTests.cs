using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.ImapPop.Imap;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>ENVELOPE, BODYSTRUCTURE and BODY: the one-pass scan, MimeKit's full parse and Dovecot agree.</summary>
[NonParallelizable]
public sealed class BodyStructureTests
{
    private static IEnumerable<TestCaseData> Corpus() =>
        StructureCorpus.Messages.SelectMany(m => new[]
        {
            new TestCaseData(m.Text.Replace("\r\n", "\n")).SetName($"Scan_agrees_with_MimeKit({m.Name}, LF)"),
            new TestCaseData(m.Text.Replace("\r\n", "\n").Replace("\n", "\r\n")).SetName($"Scan_agrees_with_MimeKit({m.Name}, CRLF)"),
        });

    [TestCaseSource(nameof(Corpus))]
    public void Scan_agrees_with_MimeKit(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var scanned = BodyStructure.Scan(bytes, bytes.Length);
        Assert.That(scanned, Is.Not.Null, "the scan understood the message");
        var parsed = MessageView.Parsed(bytes);
        Assert.Multiple(() =>
        {
            Assert.That(scanned!.Value.Envelope, Is.EqualTo(parsed.Envelope), "ENVELOPE");
            Assert.That(scanned.Value.BodyStructure, Is.EqualTo(parsed.BodyStructure), "BODYSTRUCTURE");
            Assert.That(scanned.Value.Body, Is.EqualTo(parsed.Body), "BODY");
            Assert.That(scanned.Value.References, Is.EqualTo(parsed.References), "References");
        });
    }

    [Test]
    public void A_header_line_that_is_no_field_goes_to_MimeKit()
    {
        var bytes = Encoding.UTF8.GetBytes("From: a@example.org\nthis line has no colon\nSubject: x\n\nbody\n");
        Assert.That(BodyStructure.Scan(bytes, bytes.Length), Is.Null);
        Assert.That(MessageView.Parsed(bytes).BodyStructure, Does.StartWith("(\"text\" \"plain\""));
    }

    [Test]
    public void Envelope_strings_are_the_raw_header_values()
    {
        var bytes = Encoding.UTF8.GetBytes("From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\nSubject: =?UTF-8?B?SMOpbGxv?=\nTo: group: a@example.org;\nCc: x\n\n");
        var envelope = BodyStructure.Scan(bytes, bytes.Length)!.Value.Envelope;
        Assert.That(envelope, Is.EqualTo("(NIL \"=?UTF-8?B?SMOpbGxv?=\" ((\"=?UTF-8?Q?J=C3=B6rg?=\" NIL \"j\" \"example.org\")) " +
                                         "((\"=?UTF-8?Q?J=C3=B6rg?=\" NIL \"j\" \"example.org\")) ((\"=?UTF-8?Q?J=C3=B6rg?=\" NIL \"j\" \"example.org\")) " +
                                         "((NIL NIL \"group\" NIL)(NIL NIL \"a\" \"example.org\")(NIL NIL NIL NIL)) ((NIL NIL \"x\" \"MISSING_DOMAIN\")) NIL NIL NIL)"));
    }

    [Test]
    public async Task Ours_and_Dovecot_give_the_same_envelope_and_structure()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        var maildir = Path.Combine(authd.Dir["mail"], "example.org", "bob");
        foreach (var d in new[] { "cur", "new", "tmp" }) Directory.CreateDirectory(Path.Combine(maildir, d));
        var names = new List<string>();
        for (int i = 0; i < StructureCorpus.Messages.Length; i++)
        {
            var (name, text) = StructureCorpus.Messages[i];
            var bytes = Encoding.UTF8.GetBytes(text);
            File.WriteAllBytes(Path.Combine(maildir, "cur", $"{1700000000 + i}.M{i}P1.test,S={bytes.Length}:2,S"), bytes);
            names.Add(name);
        }
        await using var ours = await ImapServer.StartAsync(authd);
        var mine = await FetchAllAsync(ours.Port, "bob pass");
        using var dovecot = DovecotServer.Start(authd, imap: true);
        var theirs = await FetchAllAsync(dovecot.ImapPort, "anything");
        Assert.Multiple(() =>
        {
            foreach (var item in new[] { "ENVELOPE", "BODYSTRUCTURE", "BODY" })
                for (int i = 0; i < names.Count; i++)
                    Assert.That(mine[item][i], Is.EqualTo(theirs[item][i]), $"{item} of \"{names[i]}\"");
        });
    }

    /// <summary>Each of ENVELOPE, BODYSTRUCTURE and BODY of every message in INBOX, in UID order, literals read as strings.</summary>
    private static async Task<Dictionary<string, List<string>>> FetchAllAsync(int port, string password)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var wire = new Wire(tcp.GetStream());
        await wire.LineAsync();
        await wire.CommandAsync($"LOGIN bob@example.org \"{password}\"");
        await wire.CommandAsync("SELECT INBOX");
        var result = new Dictionary<string, List<string>>();
        foreach (var item in new[] { "ENVELOPE", "BODYSTRUCTURE", "BODY" })
        {
            var lines = await wire.CommandAsync("UID FETCH 1:* " + item);
            result[item] = lines.Where(l => l.StartsWith("* ")).Select(l =>
            {
                var at = l.IndexOf(item + " (", StringComparison.Ordinal);
                Assert.That(at, Is.GreaterThan(0), l);
                return Balanced(l, at + item.Length + 1);
            }).ToList();
        }
        return result;
    }

    /// <summary>The parenthesised value that starts at <paramref name="open"/>, quoted strings respected.</summary>
    private static string Balanced(string s, int open)
    {
        int depth = 0;
        bool quoted = false;
        for (int i = open; i < s.Length; i++)
        {
            var c = s[i];
            if (quoted) { if (c == '\\') i++; else if (c == '"') quoted = false; continue; }
            if (c == '"') quoted = true;
            else if (c == '(') depth++;
            else if (c == ')' && --depth == 0) return s[open..(i + 1)];
        }
        return s[open..];
    }

    /// <summary>Reads IMAP responses byte by byte; a literal becomes the quoted string it stands for.</summary>
    private sealed class Wire(Stream s)
    {
        private int _tag;

        public async Task<List<string>> CommandAsync(string command)
        {
            var tag = "w" + ++_tag;
            await s.WriteAsync(Encoding.UTF8.GetBytes($"{tag} {command}\r\n"));
            var lines = new List<string>();
            while (true)
            {
                var line = await LineAsync();
                if (line.StartsWith(tag + " "))
                {
                    Assert.That(line, Does.StartWith(tag + " OK"), command);
                    return lines;
                }
                lines.Add(line);
            }
        }

        public async Task<string> LineAsync()
        {
            var sb = new StringBuilder();
            while (true)
            {
                var raw = await RawLineAsync();
                if (raw.EndsWith('}') && raw.LastIndexOf('{') is var open and >= 0 && int.TryParse(raw.AsSpan(open + 1, raw.Length - open - 2), out var n))
                {
                    var bytes = new byte[n];
                    await s.ReadExactlyAsync(bytes).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                    var text = Encoding.UTF8.GetString(bytes);
                    sb.Append(raw[..open]).Append('"').Append(text.Replace("\\", "\\\\").Replace("\"", "\\\"")).Append('"');
                    continue;
                }
                return sb.Append(raw).ToString();
            }
        }

        private async Task<string> RawLineAsync()
        {
            var bytes = new List<byte>();
            var one = new byte[1];
            while (true)
            {
                if (await s.ReadAsync(one).AsTask().WaitAsync(TimeSpan.FromSeconds(30)) == 0) throw new IOException("connection closed");
                if (one[0] == '\n') break;
                bytes.Add(one[0]);
            }
            if (bytes.Count > 0 && bytes[^1] == '\r') bytes.RemoveAt(bytes.Count - 1);
            return Encoding.UTF8.GetString(bytes.ToArray());
        }
    }
}
