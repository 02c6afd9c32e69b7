// A stored message as IMAP serves it: the file's LF lines become CRLF, MimeKit
// parses it once, and every MIME entity's byte range (header, body) is known
// so that BODY[section] returns exactly the bytes of the message. ENVELOPE
// and BODYSTRUCTURE (RFC 9051 7.5.2) come from BodyStructure's one-pass scan
// of the file, or from this parse for a message the scan does not understand.
using System.Buffers;
using System.Globalization;
using System.Text;
using Mail.Shared.Maildir;
using Microsoft.Win32.SafeHandles;
using MimeKit;

namespace Mail.ImapPop.Imap;

internal sealed class MessageView
{
    public byte[] Bytes { get; }
    private MimeMessage? _message;
    private readonly Dictionary<MimeEntity, (long Begin, long HeadersEnd, long End, int Lines)> _ranges = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<MimeMessage, (long Begin, long HeadersEnd, long End)> _messages = new(ReferenceEqualityComparer.Instance);

    private MessageView(byte[] bytes) => Bytes = bytes;

    /// <summary>The MIME parse, made on first use: BODY[], HEADER and TEXT of the message need none.</summary>
    public MimeMessage Message
    {
        get
        {
            if (_message != null) return _message;
            try { return _message = Parse(Bytes); }
            catch (FormatException)
            {
                // A header that never ends (no empty line, no final newline: "abc\r\nRC") is all
                // header with an empty body, as Dovecot serves it; one such message costs only itself.
                _ranges.Clear();
                _messages.Clear();
                try { return _message = Parse([.. Bytes, .. "\r\n\r\n"u8]); }
                catch (FormatException)
                {
                    // Not even a header line (MimeKit needs one): no fields, an empty text body.
                    var empty = MimeMessage.Load(new MemoryStream("\r\n"u8.ToArray(), writable: false));
                    _messages[empty] = (0, Bytes.Length, Bytes.Length);
                    if (empty.Body is { } body) _ranges[body] = (Bytes.Length, Bytes.Length, Bytes.Length, 0);
                    return _message = empty;
                }
            }
        }
    }

    private MimeMessage Parse(byte[] bytes)
    {
        long Clamp(long offset) => Math.Min(offset, Bytes.Length);
        var parser = new MimeParser(new MemoryStream(bytes, writable: false), MimeFormat.Entity);
        parser.MimeEntityEnd += (_, e) => _ranges[e.Entity] = (Clamp(e.BeginOffset), Clamp(e.HeadersEndOffset), Clamp(e.EndOffset), e.Lines);
        parser.MimeMessageEnd += (_, e) => _messages[e.Message] = (Clamp(e.BeginOffset), Clamp(e.HeadersEndOffset), Clamp(e.EndOffset));
        return parser.ParseMessage();
    }

    /// <summary>
    /// ENVELOPE, BODYSTRUCTURE and BODY of a stored message, and its file's time: one read of
    /// the file into a pooled buffer and one pass over it (BodyStructure.Scan); a message that
    /// scan does not understand gets MimeKit's full parse.
    /// </summary>
    public static Summary Structure(string path)
    {
        Interlocked.Increment(ref Loads);
        using var handle = OpenFile(path);
        var time = File.GetLastWriteTimeUtc(handle).Ticks;
        var n = ReadPooled(handle, path, out var buffer);
        try
        {
            if (Imap.BodyStructure.Scan(buffer, n) is { } scanned) return new(scanned.Envelope, scanned.BodyStructure, scanned.Body, time, scanned.References);
            try
            {
                var (envelope, structure, body, references) = Parsed(buffer.AsSpan(0, n).ToArray());
                return new(envelope, structure, body, time, references);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException or NotSupportedException)
            {
                // A message no parser understands costs only itself: no fields, one empty text part.
                Log.Error($"cannot parse {path}: {e.Message}");
                return new(EmptyEnvelope, EmptyStructure, EmptyBody, time, null);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    private static readonly NLog.Logger Log = Mail.Shared.Logging.MailLog.For("imap");
    private const string EmptyEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
    private const string EmptyBody = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
    private const string EmptyStructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

    /// <summary>A message file opened for reading, whatever others do to its name meanwhile.</summary>
    public static SafeFileHandle OpenFile(string path) => File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>
    /// Reads a whole message file into a buffer from the shared pool (the caller returns it) and
    /// gives its length. The S= size in the name tells how much to ask for: a read of one byte
    /// more comes back short at the end of the file, so no stat is needed; a name that says too
    /// little only costs a larger buffer.
    /// </summary>
    public static int ReadPooled(SafeFileHandle handle, string path, out byte[] buffer)
    {
        long hint = MaildirQuota.SizeFromName(path) ?? RandomAccess.GetLength(handle);
        buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(hint + 1, 1, MaxMessage));
        int n = 0;
        while (true)
        {
            if (n == buffer.Length)
            {
                var length = RandomAccess.GetLength(handle);
                if (length >= MaxMessage) { ArrayPool<byte>.Shared.Return(buffer); throw new IOException("message too large: " + path); }
                var larger = ArrayPool<byte>.Shared.Rent((int)Math.Max(length + 1, (long)buffer.Length * 2));
                buffer.AsSpan(0, n).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = larger;
            }
            int want = buffer.Length - n;
            int read = RandomAccess.Read(handle, buffer.AsSpan(n, want), n);
            n += read;
            if (read < want) return n; // a regular file reads short only at its end
        }
    }

    private static readonly long MaxMessage = Array.MaxLength / 2;

    /// <summary>ENVELOPE, BODYSTRUCTURE, BODY and References from MimeKit's full parse of a message's bytes.</summary>
    public static (string Envelope, string BodyStructure, string Body, string? References) Parsed(byte[] raw)
    {
        var full = new MessageView(ToCrLf(raw));
        return (full.Envelope(), full.BodyStructure(extensible: true), full.BodyStructure(extensible: false), Fields(full.Message.Headers)("References"));
    }

    /// <summary>What the index keeps of a message; References is there for THREAD (the rest of its keys are in the ENVELOPE).</summary>
    public sealed record Summary(string Envelope, string BodyStructure, string Body, long InternalDate, string? References);

    /// <summary>Where the top-level header ends (after its empty line), found without parsing.</summary>
    private long HeaderEnd()
    {
        var span = Bytes.AsSpan();
        if (span.StartsWith("\r\n"u8)) return 2;
        int i = span.IndexOf("\r\n\r\n"u8);
        return i < 0 ? Bytes.Length : i + 4;
    }

    /// <summary>How many messages were read and parsed (for the index's tests).</summary>
    public static long Loads;

    public static MessageView Load(string path)
    {
        Interlocked.Increment(ref Loads);
        return new(ToCrLf(File.ReadAllBytes(path)));
    }

    /// <summary>LF line ends become CRLF; CRLF stays.</summary>
    public static byte[] ToCrLf(byte[] data)
    {
        var span = data.AsSpan();
        int lfs = span.Count((byte)'\n') - span.Count("\r\n"u8);
        if (lfs == 0) return data;
        var result = new byte[data.Length + lfs];
        int j = 0;
        for (int i = 0; i < data.Length; i++)
        {
            if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) result[j++] = (byte)'\r';
            result[j++] = data[i];
        }
        return result;
    }

    /// <summary>The bytes of a section (RFC 9051 6.4.5 BODY[section]); null if there is no such part.</summary>
    public byte[]? Section(Section section)
    {
        if (section.Part.Count == 0)
        {
            var headersEnd = HeaderEnd();
            switch (section.Text)
            {
                case "": return Bytes;
                case "HEADER": return Slice(0, headersEnd);
                case "TEXT": return Slice(headersEnd, Bytes.Length);
                case "HEADER.FIELDS" or "HEADER.FIELDS.NOT": return Fields(Slice(0, headersEnd), section.Fields, section.Text == "HEADER.FIELDS.NOT");
            }
        }
        // Find the entity (or message) the part numbers name.
        MimeEntity? entity = null;
        MimeMessage message = Message;
        foreach (var n in section.Part)
        {
            if (entity is MessagePart { Message: null }) return null;
            var body = entity is MessagePart mp ? mp.Message!.Body : entity == null ? message.Body : entity;
            if (entity is MessagePart mp2) message = mp2.Message!;
            if (body is Multipart multi)
            {
                if (n < 1 || n > multi.Count) return null;
                entity = multi[n - 1];
            }
            else if (n == 1 && (entity == null || entity is MessagePart)) entity = body;
            else return null;
        }
        var text = section.Text;
        if (entity == null)
        {
            var (begin, headersEnd, end) = MessageRange(message);
            return text switch
            {
                "" => Slice(begin, end),
                "HEADER" => Slice(begin, headersEnd),
                "TEXT" => Slice(headersEnd, end),
                "HEADER.FIELDS" or "HEADER.FIELDS.NOT" => Fields(Slice(begin, headersEnd), section.Fields, text == "HEADER.FIELDS.NOT"),
                _ => null,
            };
        }
        if (!_ranges.TryGetValue(entity, out var r)) return null;
        if (text is "HEADER" or "TEXT" or "HEADER.FIELDS" or "HEADER.FIELDS.NOT")
        {
            if (entity is not MessagePart { Message: not null } inner) return null;
            var (begin, headersEnd, end) = MessageRange(inner.Message);
            return text switch
            {
                "HEADER" => Slice(begin, headersEnd),
                "TEXT" => Slice(headersEnd, end),
                _ => Fields(Slice(begin, headersEnd), section.Fields, text == "HEADER.FIELDS.NOT"),
            };
        }
        return text switch
        {
            "MIME" => Slice(r.Begin, r.HeadersEnd),
            "" => Slice(r.HeadersEnd, r.End),
            _ => null,
        };
    }

    /// <summary>
    /// BINARY[part] (RFC 3516): a leaf part's content with its transfer encoding undone; null if
    /// there is no such part; throws NotSupportedException for an encoding we do not know.
    /// </summary>
    public byte[]? Decoded(IReadOnlyList<int> part)
    {
        if (part.Count == 0) return Bytes;
        MimeEntity? entity = null;
        foreach (var n in part)
        {
            if (entity is MessagePart { Message: null }) return null;
            var body = entity is MessagePart mp ? mp.Message!.Body : entity ?? Message.Body;
            if (body is Multipart multi)
            {
                if (n < 1 || n > multi.Count) return null;
                entity = multi[n - 1];
            }
            else if (n == 1 && (entity == null || entity is MessagePart)) entity = body;
            else return null;
        }
        if (entity is MimePart leaf)
        {
            var encoding = (leaf.Headers[HeaderId.ContentTransferEncoding] ?? "7bit").Trim().ToLowerInvariant();
            if (encoding is not ("7bit" or "8bit" or "binary" or "base64" or "quoted-printable")) throw new NotSupportedException(encoding);
            using var ms = new MemoryStream();
            if (encoding == "quoted-printable" && leaf.Content?.Stream is { } content)
            {
                content.Position = 0;
                content.CopyTo(ms);
                content.Position = 0;
                return QuotedPrintable(ms.GetBuffer().AsSpan(0, (int)ms.Length));
            }
            leaf.Content?.DecodeTo(ms);
            return ms.ToArray();
        }
        return Section(new Section(part, "", []));
    }

    /// <summary>
    /// Quoted-printable decoded as RFC 2045 6.7 says: white space at the end of a line is
    /// transport padding and goes, "=" at the end of a line (before such padding too) is a soft
    /// break, "=XX" a byte; an "=" that starts nothing of these stays as it is. Lines end CRLF.
    /// </summary>
    public static byte[] QuotedPrintable(ReadOnlySpan<byte> encoded)
    {
        var output = new byte[encoded.Length + encoded.Count((byte)'\n')];
        int o = 0;
        while (!encoded.IsEmpty)
        {
            int lf = encoded.IndexOf((byte)'\n');
            var line = lf < 0 ? encoded : encoded[..lf];
            encoded = lf < 0 ? [] : encoded[(lf + 1)..];
            if (line.EndsWith("\r"u8)) line = line[..^1];
            line = line.TrimEnd(" \t"u8);
            bool soft = line.EndsWith("="u8);
            if (soft) line = line[..^1];
            for (int i = 0; i < line.Length; i++)
            {
                if (line[i] == '=' && i + 2 < line.Length && IsHex(line[i + 1]) && IsHex(line[i + 2]))
                {
                    output[o++] = (byte)(HexValue(line[i + 1]) << 4 | HexValue(line[i + 2]));
                    i += 2;
                }
                else output[o++] = line[i];
            }
            if (!soft && lf >= 0) { output[o++] = (byte)'\r'; output[o++] = (byte)'\n'; }
        }
        return output.AsSpan(0, o).ToArray();

        static bool IsHex(byte b) => char.IsAsciiHexDigit((char)b);
        static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;
    }

    private (long Begin, long HeadersEnd, long End) MessageRange(MimeMessage m) =>
        _messages.TryGetValue(m, out var r) ? r : (0, 0, Bytes.Length);

    private byte[] Slice(long from, long to)
    {
        from = Math.Clamp(from, 0, Bytes.Length);
        to = Math.Clamp(to, from, Bytes.Length);
        return Bytes.AsSpan((int)from, (int)(to - from)).ToArray();
    }

    /// <summary>The header lines named (or not named) in <paramref name="fields"/>, then the empty line.</summary>
    private static byte[] Fields(byte[] header, IReadOnlyList<string> fields, bool not)
    {
        var text = Encoding.Latin1.GetString(header);
        var lines = text.Split("\r\n");
        var sb = new StringBuilder();
        bool keep = false;
        foreach (var line in lines)
        {
            if (line.Length == 0) continue;
            if (line[0] is ' ' or '\t') { if (keep) sb.Append(line).Append("\r\n"); continue; }
            int colon = line.IndexOf(':');
            var name = colon > 0 ? line[..colon].TrimEnd() : line;
            keep = fields.Any(f => f.Equals(name, StringComparison.OrdinalIgnoreCase)) != not;
            if (keep) sb.Append(line).Append("\r\n");
        }
        sb.Append("\r\n");
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    // ---- ENVELOPE and BODYSTRUCTURE ----

    public string Envelope() => Imap.Envelope.Build(Fields(Message.Headers));

    /// <summary>A look-up of a header's fields by name: the first one's raw value, unfolded.</summary>
    private static Func<string, string?> Fields(HeaderList headers) => name =>
    {
        foreach (var h in headers)
            if (h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)) return Imap.Envelope.Unfold(Imap.Envelope.Text(h.RawValue));
        return null;
    };

    public string BodyStructure(bool extensible)
    {
        var sb = new StringBuilder(256);
        Structure(sb, Message.Body, extensible);
        return sb.ToString();
    }

    private void Structure(StringBuilder sb, MimeEntity? entity, bool ext)
    {
        if (entity == null) { sb.Append(Imap.BodyStructure.EmptyPart); return; }
        var fields = Fields(entity.Headers);
        var ct = (fields("Content-Type") is { } raw ? MimeValue.ContentType(raw) : null)
                 ?? new MimeValue(entity.ContentType.MediaType, entity.ContentType.MediaSubtype, [.. entity.ContentType.Parameters.Select(p => (p.Name, p.Value))]);
        if (entity is Multipart multi)
        {
            sb.Append('(');
            foreach (var child in multi) Structure(sb, child, ext);
            if (multi.Count == 0) sb.Append(Imap.BodyStructure.EmptyPart);
            sb.Append(' ').Append(Quote(ct.Subtype));
            if (ext) Imap.BodyStructure.AppendMultipartExtension(sb, ct, fields);
            sb.Append(')');
            return;
        }
        _ranges.TryGetValue(entity, out var r);
        Action<StringBuilder>? inner = null;
        if (entity is MessagePart { Message: not null } mp && entity.ContentType.IsMimeType("message", "rfc822"))
            inner = s =>
            {
                s.Append(Imap.Envelope.Build(Fields(mp.Message.Headers))).Append(' ');
                Structure(s, mp.Message.Body, ext);
            };
        Imap.BodyStructure.AppendLeaf(sb, ct, fields, Math.Max(0, r.End - r.HeadersEnd), LinesOf(r), inner, ext);
    }

    /// <summary>Lines of the body: counted from its bytes (MimeKit's count includes the header).</summary>
    private int LinesOf((long Begin, long HeadersEnd, long End, int Lines) r)
    {
        var from = (int)Math.Min(r.HeadersEnd, Bytes.Length);
        var to = (int)Math.Min(r.End, Bytes.Length);
        return to > from ? Bytes.AsSpan(from, to - from).Count((byte)'\n') : 0;
    }

    public static string NString(string? s) => s == null ? "NIL" : Quote(s);

    /// <summary>A quoted string, or a literal when the text cannot be quoted.</summary>
    public static string Quote(string s)
    {
        s = s.Trim();
        if (s.AsSpan().ContainsAny('\r', '\n', '\0') || s.Length > 1000)
        {
            var clean = s.Replace("\r", "").Replace("\n", "").Replace("\0", "");
            var n = Encoding.UTF8.GetByteCount(clean);
            return "{" + n.ToString(CultureInfo.InvariantCulture) + "}\r\n" + clean;
        }
        if (!s.AsSpan().ContainsAny('\\', '"')) return string.Concat("\"", s, "\"");
        return "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }
}

/// <summary>A BODY[section] specifier (RFC 9051 6.4.5).</summary>
internal sealed record Section(IReadOnlyList<int> Part, string Text, IReadOnlyList<string> Fields)
{
    public override string ToString()
    {
        var sb = new StringBuilder(string.Join('.', Part));
        if (Text.Length > 0) { if (sb.Length > 0) sb.Append('.'); sb.Append(Text); }
        if (Fields.Count > 0) sb.Append(" (").Append(string.Join(' ', Fields.Select(f => f.ToUpperInvariant()))).Append(')');
        return sb.ToString();
    }
}
