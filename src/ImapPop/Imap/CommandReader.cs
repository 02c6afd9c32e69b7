// Reads IMAP commands (RFC 9051 2.2, 4.3): a line, and for every literal
// announced at its end ({N} synchronising, {N+} non-synchronising, RFC 7888)
// the N bytes of the literal and then the rest of the command. Pure and
// resumable: it is fed whatever the socket delivered, says how much it used,
// and can be cut at any byte. Every line, literal, literal count and the
// whole command are bounded; a literal beyond the small-literal limit goes
// to a stream the session provides (an APPEND's message goes to disk).
using System.Buffers;
using System.Text;

namespace Mail.ImapPop.Imap;

/// <summary>One piece of a command: text of a line (without CRLF), or a literal.</summary>
internal abstract record CommandPart;
internal sealed record LinePart(string Text) : CommandPart;
internal sealed record LiteralPart(long Length, byte[]? Bytes, Stream? Spilled, bool Binary) : CommandPart
{
    public Stream Open() => Bytes != null ? new MemoryStream(Bytes, writable: false) : Spilled!;
}

internal enum ReadKind { NeedMore, Command, Continue, Bad, Fatal }

internal readonly record struct ReadResult(ReadKind Kind, IReadOnlyList<CommandPart>? Parts = null, string Message = "", string Tag = "*");

internal sealed class ReaderLimits
{
    public int MaxLine { get; init; } = 65536;
    /// <summary>Literals up to this size are kept in memory.</summary>
    public int MaxMemoryLiteral { get; init; } = 256 * 1024;
    /// <summary>Largest literal of any command but APPEND.</summary>
    public long MaxLiteral { get; init; } = 1 << 20;
    /// <summary>Largest APPEND literal (the message).</summary>
    public long MaxAppendLiteral { get; init; } = 50L << 20;
    public int MaxLiterals { get; init; } = 100;
    public long MaxCommand { get; init; } = 4L << 20;
}

internal sealed class CommandReader(ReaderLimits limits, Func<long, Stream>? spill = null)
{
    private readonly List<CommandPart> _parts = [];
    private readonly List<byte> _line = [];
    private long _total;
    // The literal being read.
    private long _literalLeft = -1;
    private long _literalLength;
    private bool _literalBinary;
    private byte[]? _literalBytes;
    private Stream? _literalStream;
    private int _literalFill;
    private bool _discardingLine;

    /// <summary>Consumes from <paramref name="input"/>; <paramref name="consumed"/> is where the next call starts.</summary>
    public ReadResult Feed(ReadOnlySequence<byte> input, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(input);
        try
        {
            while (!reader.End)
            {
                if (_literalLeft >= 0)
                {
                    var take = (int)Math.Min(_literalLeft, reader.Remaining);
                    var chunk = reader.UnreadSequence.Slice(0, take);
                    foreach (var seg in chunk)
                    {
                        if (_literalBytes != null) { seg.Span.CopyTo(_literalBytes.AsSpan(_literalFill)); _literalFill += seg.Length; }
                        else _literalStream!.Write(seg.Span);
                    }
                    reader.Advance(take);
                    _literalLeft -= take;
                    if (_literalLeft > 0) break;
                    if (_literalStream != null) { _literalStream.Flush(); _literalStream.Position = 0; }
                    _parts.Add(new LiteralPart(_literalLength, _literalBytes, _literalStream, _literalBinary));
                    _literalBytes = null;
                    _literalStream = null;
                    _literalLeft = -1;
                    continue;
                }
                if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
                {
                    // No line end yet: keep what came, within the line limit.
                    var rest = reader.UnreadSequence;
                    if (!_discardingLine)
                    {
                        if (_line.Count + rest.Length > limits.MaxLine) { _discardingLine = true; _line.Clear(); }
                        else foreach (var seg in rest) _line.AddRange(seg.Span);
                    }
                    reader.AdvanceToEnd();
                    break;
                }
                if (_discardingLine || _line.Count + line.Length > limits.MaxLine)
                {
                    Reset();
                    consumed = reader.Position;
                    return new ReadResult(ReadKind.Bad, Message: "Line too long");
                }
                foreach (var seg in line) _line.AddRange(seg.Span);
                if (_line.Count > 0 && _line[^1] == '\r') _line.RemoveAt(_line.Count - 1);
                var text = Encoding.UTF8.GetString(_line.ToArray());
                _line.Clear();
                _total += text.Length + 2;
                var tag = TagOf(_parts.Count > 0 ? ((LinePart)_parts[0]).Text : text);
                if (_total > limits.MaxCommand) { Reset(); consumed = reader.Position; return new ReadResult(ReadKind.Bad, Message: "Command too long", Tag: tag); }
                var literal = LiteralAtEnd(text, out var textBefore, out var nonSync, out var binary);
                if (literal == null)
                {
                    _parts.Add(new LinePart(text));
                    var parts = _parts.ToList();
                    _parts.Clear(); // the caller owns the literals now
                    Reset();
                    consumed = reader.Position;
                    return new ReadResult(ReadKind.Command, parts);
                }
                _parts.Add(new LinePart(textBefore));
                var isAppend = IsAppend();
                var max = isAppend ? limits.MaxAppendLiteral : limits.MaxLiteral;
                if (literal < 0 || literal > max || _parts.Count / 2 >= limits.MaxLiterals)
                {
                    consumed = reader.Position;
                    Reset();
                    // The client waits for "+" before a synchronising literal, so it can be refused;
                    // the bytes of a non-synchronising one are on their way and the stream is lost.
                    return nonSync
                        ? new ReadResult(ReadKind.Fatal, Message: "Literal too big")
                        : new ReadResult(ReadKind.Bad, Message: literal > max && isAppend ? "[TOOBIG] Message too big" : "Literal too big", Tag: tag);
                }
                _literalLength = literal.Value;
                _literalLeft = literal.Value;
                _literalBinary = binary;
                _literalFill = 0;
                if (literal.Value <= limits.MaxMemoryLiteral || spill == null)
                {
                    // Only what is held in memory counts against the command limit; an APPEND's message goes to disk.
                    _total += literal.Value;
                    if (_total > limits.MaxCommand)
                    {
                        consumed = reader.Position;
                        Reset();
                        return nonSync ? new ReadResult(ReadKind.Fatal, Message: "Command too long") : new ReadResult(ReadKind.Bad, Message: "Command too long", Tag: tag);
                    }
                    _literalBytes = new byte[literal.Value];
                }
                else _literalStream = spill(literal.Value);
                if (!nonSync)
                {
                    consumed = reader.Position;
                    return new ReadResult(ReadKind.Continue);
                }
            }
        }
        catch
        {
            Reset();
            throw;
        }
        consumed = reader.Position;
        return new ReadResult(ReadKind.NeedMore);
    }

    private bool IsAppend()
    {
        if (_parts.Count == 0 || _parts[0] is not LinePart first) return false;
        var words = first.Text.Split(' ', 3);
        return words.Length >= 2 && words[1].Equals("APPEND", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>"{N}", "{N+}" or "~{N}" (BINARY) at the end of a line: N, else null; -1 if malformed.</summary>
    private static long? LiteralAtEnd(string text, out string before, out bool nonSync, out bool binary)
    {
        before = text;
        nonSync = false;
        binary = false;
        if (!text.EndsWith('}')) return null;
        int open = text.LastIndexOf('{');
        if (open < 0) return null;
        var inner = text.AsSpan(open + 1, text.Length - open - 2);
        if (inner.EndsWith("+")) { nonSync = true; inner = inner[..^1]; }
        if (inner.Length == 0 || inner.Length > 18) return -1;
        foreach (var c in inner) if (!char.IsAsciiDigit(c)) return -1;
        binary = open > 0 && text[open - 1] == '~';
        before = text[..(binary ? open - 1 : open)];
        return long.Parse(inner);
    }

    /// <summary>Forgets a partly read command (after an error, or when the connection ends); its spilled literals are closed.</summary>
    /// <summary>The tag a refused command began with, for its tagged BAD; "*" when it has none that is valid.</summary>
    private static string TagOf(string firstLine)
    {
        int sp = firstLine.IndexOf(' ');
        var tag = sp < 0 ? firstLine : firstLine[..sp];
        return tag.Length is > 0 and <= 64 && tag.All(c => c > ' ' && c <= '~' && c is not ('(' or ')' or '{' or '%' or '*' or '"' or '\\' or '+')) ? tag : "*";
    }

    public void Reset()
    {
        foreach (var p in _parts) if (p is LiteralPart { Spilled: { } s }) s.Dispose();
        _literalStream?.Dispose();
        _parts.Clear();
        _line.Clear();
        _total = 0;
        _literalLeft = -1;
        _literalBytes = null;
        _literalStream = null;
        _discardingLine = false;
    }
}
