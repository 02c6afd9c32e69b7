using System.Buffers;
using System.Text;
using Mail.ImapPop.Imap;

namespace Mail.Tests.Imap;

/// <summary>The IMAP command reader gives the same command whatever way the input is cut.</summary>
internal sealed class CommandReaderTests
{
    private static string Describe(IReadOnlyList<CommandPart> parts) => string.Join(" | ", parts.Select(p => p switch
    {
        LinePart t => "T:" + t.Text,
        LiteralPart l => $"L{(l.Binary ? "~" : "")}:" + Encoding.UTF8.GetString(ReadAll(l)),
        _ => "?",
    }));

    private static byte[] ReadAll(LiteralPart l)
    {
        using var s = l.Open();
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Feeds <paramref name="input"/> in the given pieces; returns every result that is not NeedMore/Continue, and the continuations seen.</summary>
    private static (List<ReadResult> Results, int Continues) Feed(CommandReader reader, byte[] input, IEnumerable<int> cuts)
    {
        var results = new List<ReadResult>();
        int continues = 0;
        var pending = new List<byte>();
        int at = 0;
        foreach (var cut in cuts.Append(input.Length))
        {
            pending.AddRange(input[at..cut]);
            at = cut;
            while (true)
            {
                var seq = new ReadOnlySequence<byte>(pending.ToArray());
                var r = reader.Feed(seq, out var consumed);
                var used = (int)seq.Slice(0, consumed).Length;
                pending.RemoveRange(0, used);
                if (r.Kind == ReadKind.NeedMore) break;
                if (r.Kind == ReadKind.Continue) { continues++; continue; }
                results.Add(r);
                if (pending.Count == 0) break;
            }
        }
        return (results, continues);
    }

    private static readonly string[] Inputs =
    [
        "a1 NOOP\r\n",
        "a2 LOGIN \"bob@example.org\" \"pa\\\"ss\"\r\n",
        "a3 LOGIN {15}\r\nbob@example.org {8}\r\nbob pass\r\n",
        "a4 APPEND INBOX (\\Seen) {11+}\r\nHello\r\nBob!\r\n",
        "a5 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100>)\r\nb5 NOOP\r\n",
        "a6 APPEND INBOX ~{3}\r\n\0x\n\r\n",
        "a7 LOGIN bob {0}\r\n\r\n",
        "a8 SELECT \"Entw&APw-rfe\"\n",
    ];

    [Test]
    public void Every_cut_of_the_input_gives_the_same_commands([Range(0, 7)] int index)
    {
        var input = Encoding.UTF8.GetBytes(Inputs[index]);
        var (whole, _) = Feed(new CommandReader(new ReaderLimits()), input, []);
        Assert.That(whole, Has.All.Matches<ReadResult>(r => r.Kind == ReadKind.Command));
        var expected = whole.Select(r => Describe(r.Parts!)).ToList();
        Assert.That(expected, Is.Not.Empty);
        for (int cut = 1; cut < input.Length; cut++)
        {
            var (split, _) = Feed(new CommandReader(new ReaderLimits()), input, [cut]);
            Assert.That(split.Select(r => Describe(r.Parts!)), Is.EqualTo(expected), $"cut at {cut}");
        }
        var (bytes, _) = Feed(new CommandReader(new ReaderLimits()), input, Enumerable.Range(1, input.Length - 1));
        Assert.That(bytes.Select(r => Describe(r.Parts!)), Is.EqualTo(expected), "byte by byte");
    }

    [Test]
    public void Literals_are_read_exactly_and_synchronising_ones_ask_for_a_continuation()
    {
        var (r, continues) = Feed(new CommandReader(new ReaderLimits()), Encoding.UTF8.GetBytes(Inputs[2]), []);
        Assert.That(continues, Is.EqualTo(2));
        Assert.That(Describe(r.Single().Parts!), Is.EqualTo("T:a3 LOGIN  | L:bob@example.org | T:  | L:bob pass | T:"));
        var (plus, plusContinues) = Feed(new CommandReader(new ReaderLimits()), Encoding.UTF8.GetBytes(Inputs[3]), []);
        Assert.That(plusContinues, Is.EqualTo(0), "LITERAL+ needs no continuation");
        Assert.That(Describe(plus.Single().Parts!), Does.Contain("L:Hello\r\nBob!"));
    }

    [TestCase("a LOGIN {99999999999999999999}\r\n", ReadKind.Bad)]
    [TestCase("a LOGIN {2000000}\r\n", ReadKind.Bad)]
    [TestCase("a LOGIN {2000000+}\r\n", ReadKind.Fatal)]
    [TestCase("a APPEND INBOX {60000000}\r\n", ReadKind.Bad)]
    [TestCase("a LOGIN {-1}\r\n", ReadKind.Bad)]
    public void Oversized_or_malformed_literals_are_refused(string input, ReadKind kind)
    {
        var (r, _) = Feed(new CommandReader(new ReaderLimits()), Encoding.UTF8.GetBytes(input + "b NOOP\r\n"), []);
        Assert.That(r[0].Kind, Is.EqualTo(kind));
        if (kind == ReadKind.Bad) Assert.That(Describe(r[1].Parts!), Is.EqualTo("T:b NOOP"), "the next command is read in step");
    }

    [Test]
    public void A_line_over_the_limit_is_refused_and_the_next_one_read()
    {
        var reader = new CommandReader(new ReaderLimits { MaxLine = 1000 });
        var (r, _) = Feed(reader, Encoding.ASCII.GetBytes("a NOOP " + new string('x', 5000) + "\r\nb NOOP\r\n"), [100, 2000, 4000]);
        Assert.That(r.Select(x => x.Kind), Is.EqualTo(new[] { ReadKind.Bad, ReadKind.Command }));
        Assert.That(Describe(r[1].Parts!), Is.EqualTo("T:b NOOP"));
    }

    [Test]
    public void A_large_append_literal_goes_to_the_spill_stream_not_to_memory()
    {
        var spilled = 0;
        var reader = new CommandReader(new ReaderLimits { MaxMemoryLiteral = 1024 }, n => { spilled++; return new MemoryStream(); });
        var body = new string('m', 100_000);
        var (r, _) = Feed(reader, Encoding.ASCII.GetBytes($"a APPEND INBOX {{{body.Length}+}}\r\n{body}\r\n"), [10, 50_000]);
        Assert.That(spilled, Is.EqualTo(1));
        var literal = r.Single().Parts!.OfType<LiteralPart>().Single();
        Assert.That(literal.Bytes, Is.Null);
        Assert.That(ReadAll(literal), Has.Length.EqualTo(100_000));
    }

    [Test]
    public void An_append_literal_larger_than_the_command_limit_is_read_whole()
    {
        var reader = new CommandReader(new ReaderLimits { MaxMemoryLiteral = 1024, MaxCommand = 64 * 1024 }, _ => new MemoryStream());
        var body = new string('m', 1_000_000);
        var (r, _) = Feed(reader, Encoding.ASCII.GetBytes($"a APPEND INBOX {{{body.Length}+}}\r\n{body}\r\n"), [1000, 500_000]);
        Assert.That(r.Single().Kind, Is.EqualTo(ReadKind.Command), "the limit is on what is held in memory");
    }
}
