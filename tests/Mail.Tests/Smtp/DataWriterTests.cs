using System.Buffers;
using System.Text;
using Mail.Shared.Smtp;

namespace Mail.Tests.Smtp;

/// <summary>
/// The DATA and BDAT decoder (DataWriter) and the encoder of the wire form (WireEncoder): every
/// split of the input gives the same stored bytes; the end of DATA is CRLF.CRLF only; the
/// encoder's output decodes back to what it was given.
/// </summary>
public sealed class DataWriterTests
{
    /// <summary>Feeds <paramref name="wire"/> cut at <paramref name="cuts"/>, carrying unconsumed bytes over as a socket reader does.</summary>
    private static (string Stored, bool Ended, DataWriter Writer) Decode(byte[] wire, bool dotStuffed, params int[] cuts) =>
        Decode(wire, dotStuffed, keepCrLf: false, cuts);

    private static (string Stored, bool Ended, DataWriter Writer) Decode(byte[] wire, bool dotStuffed, bool keepCrLf, params int[] cuts)
    {
        var output = new MemoryStream();
        var writer = new DataWriter(output, long.MaxValue, dotStuffed, keepCrLf);
        var pending = new List<byte>();
        int start = 0;
        bool ended = false;
        foreach (var end in cuts.Append(wire.Length))
        {
            pending.AddRange(wire[start..end]);
            start = end;
            var seq = new ReadOnlySequence<byte>(pending.ToArray());
            SequencePosition used = seq.Start;
            ended = writer.FeedAsync(seq, p => used = p).AsTask().Result;
            pending = [.. seq.Slice(used).ToArray()];
            if (ended) break;
        }
        if (!dotStuffed)
        {
            if (pending.Count == 1 && pending[0] == '\r') writer.CarryCr();
            writer.FinishAsync().AsTask().Wait();
        }
        return (Encoding.Latin1.GetString(output.ToArray()), ended, writer);
    }

    /// <summary>The wire form of <paramref name="input"/> encoded in two pieces split at <paramref name="cut"/>: any split must give the same bytes.</summary>
    private static byte[] EncodeInTwo(byte[] input, int cut)
    {
        var encoder = new WireEncoder(dotStuff: true);
        var output = new byte[WireEncoder.MaxOutput(input.Length) + 8];
        int n = encoder.Encode(input.AsSpan(0, cut), output);
        n += encoder.Encode(input.AsSpan(cut), output.AsSpan(n));
        n += encoder.Finish(output.AsSpan(n));
        return output[..n];
    }

    private static readonly string[] Corpus =
    [
        "Subject: a\r\n\r\nbody\r\n.\r\n",
        "Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n",
        "no header line\r\n.\r\n",
        "\r\n.\r\n",
        "x\r\n.\r\n.\r\nafter the end\r\n",
        "bare LF\nthen .\nis content\r\n.\r\n",
        "bare CR\r. \r\n.\r\n",
        "a\r\n.x\r\n..\r\n.\r\n",
    ];

    [Test]
    public void Every_split_point_of_data_gives_the_same_stored_form()
    {
        foreach (var text in Corpus)
        {
            var wire = Encoding.Latin1.GetBytes(text);
            var (whole, ended, _) = Decode(wire, dotStuffed: true);
            Assert.That(ended, Is.True, text);
            for (int cut = 1; cut < wire.Length; cut++)
                Assert.That(Decode(wire, true, cut).Stored, Is.EqualTo(whole), $"{text} cut at {cut}");
            // And byte by byte.
            Assert.That(Decode(wire, true, Enumerable.Range(1, wire.Length - 1).ToArray()).Stored, Is.EqualTo(whole), text + " byte by byte");
        }
    }

    [Test]
    public void Data_ends_only_at_crlf_dot_crlf()
    {
        Assert.That(Decode("a\r\n.\r\nb"u8.ToArray(), true).Stored, Is.EqualTo("a\n"));
        // RFC 5321 4.1.1.4 and SMTP smuggling: a "." line after a bare LF, or ended by a bare LF, is not the end.
        var (stored, ended, writer) = Decode("a\n.\nb\r\n.\r\n"u8.ToArray(), true);
        Assert.That(ended, Is.True);
        Assert.That(stored, Is.EqualTo("a\n\nb\n"), "the lone dot is content, unstuffed (mtad then refuses the bare LF)");
        Assert.That(writer.HasBareLf, Is.True);
        Assert.That(Decode("a\r\n.\nb\r\n"u8.ToArray(), true).Ended, Is.False, "\".\" ended by a bare LF");
        Assert.That(Decode("a\r.\r\nb\r\n"u8.ToArray(), true).Ended, Is.False, "\".\" after a bare CR");
    }

    [Test]
    public void Bdat_chunks_split_anywhere_keep_crlf_and_bare_cr()
    {
        var wire = "Subject: x\r\n\r\nline\r\nbare\rcr\r\n.not stuffed\r\nlast\r"u8.ToArray();
        var (whole, _, w) = Decode(wire, dotStuffed: false);
        Assert.That(whole, Is.EqualTo("Subject: x\n\nline\nbare\rcr\n.not stuffed\nlast\r"));
        Assert.That(w.HasBareCr, Is.True);
        for (int cut = 1; cut < wire.Length; cut++)
            Assert.That(Decode(wire, false, cut).Stored, Is.EqualTo(whole), $"cut at {cut}");
    }

    [Test]
    public void The_wire_encoder_round_trips_through_the_decoder_at_every_split()
    {
        var stored = new[]
        {
            "Subject: a\n\nbody\n", ".\n..\n.x\n", "no final newline", "\n\n\n", "x\n.\n", ". \n.\n", "",
        };
        foreach (var text in stored)
        {
            var input = Encoding.Latin1.GetBytes(text);
            for (int cut = 0; cut <= input.Length; cut++)
            {
                var content = EncodeInTwo(input, cut);
                var wire = content.Concat(".\r\n"u8.ToArray()).ToArray();
                Assert.That(content.AsSpan().IndexOf("\r\n.\r\n"u8), Is.EqualTo(-1), "no end of DATA inside the content");
                var (back, ended, _) = Decode(wire, dotStuffed: true);
                Assert.That(ended, Is.True);
                var expected = text.Length == 0 || text.EndsWith('\n') ? text : text + "\n";
                Assert.That(back, Is.EqualTo(expected), $"'{text}' split at {cut}");
            }
        }
    }

    [Test]
    public void Data_into_the_queue_keeps_its_crlf_lines_at_every_split()
    {
        var wire = "Subject: dots\r\n\r\n..leading dot\r\nbody\r\n.\r\n"u8.ToArray();
        var (whole, ended, writer) = Decode(wire, dotStuffed: true, keepCrLf: true);
        Assert.That(ended, Is.True);
        Assert.That(whole, Is.EqualTo("Subject: dots\r\n\r\n.leading dot\r\nbody\r\n"), "unstuffed, the line ends as they came");
        Assert.That(writer.Received, Is.EqualTo(wire.Length - 3), "the size counted is what the client sent before the final \".\" line");
        for (int cut = 1; cut < wire.Length; cut++)
            Assert.That(Decode(wire, true, true, cut).Stored, Is.EqualTo(whole), $"cut at {cut}");
        var chunk = "a\r\nbare\rcr\r\nlast\r"u8.ToArray();
        var bdat = Decode(chunk, dotStuffed: false, keepCrLf: true).Stored;
        Assert.That(bdat, Is.EqualTo("a\r\nbare\rcr\r\nlast\r"));
        for (int cut = 1; cut < chunk.Length; cut++)
            Assert.That(Decode(chunk, false, true, cut).Stored, Is.EqualTo(bdat), $"BDAT cut at {cut}");
    }

    [Test]
    public void Stored_crlf_lines_go_on_the_wire_as_they_are_and_a_bare_lf_gains_its_cr()
    {
        var cases = new[]
        {
            // stored, on the wire (DATA), stored again by the next hop's queue
            ("Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"),
            (".\r\n..\r\n", "..\r\n...\r\n", ".\r\n..\r\n"),
            ("mixed\nlines\r\n", "mixed\r\nlines\r\n", "mixed\r\nlines\r\n"),
            ("ends in cr\r", "ends in cr\r\n", "ends in cr\r\n"),
            ("no end", "no end\r\n", "no end\r\n"),
        };
        foreach (var (stored, expected, again) in cases)
        {
            var input = Encoding.Latin1.GetBytes(stored);
            for (int cut = 0; cut <= input.Length; cut++)
            {
                var content = EncodeInTwo(input, cut);
                Assert.That(Encoding.Latin1.GetString(content), Is.EqualTo(expected), $"'{stored}' split at {cut}");
                var (back, _, _) = Decode(content.Concat(".\r\n"u8.ToArray()).ToArray(), dotStuffed: true, keepCrLf: true);
                Assert.That(back, Is.EqualTo(again), $"'{stored}' decodes back at {cut}");
            }
        }
    }
}
