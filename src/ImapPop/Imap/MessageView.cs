// A stored message as IMAP serves it: the file's LF lines become CRLF, MimeKit
// parses it once, and every MIME entity's byte range (header, body) is known
// so that BODY[section] returns exactly the bytes of the message. ENVELOPE
// and BODYSTRUCTURE (RFC 9051 7.5.2) are built from the parse.
using System.Globalization;
using System.Text;
using MimeKit;

namespace Mail.ImapPop.Imap;

internal sealed class MessageView
{
    public byte[] Bytes { get; }
    private MimeMessage? _message;
    private int? _leafLines; // set when Bytes holds only the header (Structure)
    private readonly Dictionary<MimeEntity, (long Begin, long HeadersEnd, long End, int Lines)> _ranges = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<MimeMessage, (long Begin, long HeadersEnd, long End)> _messages = new(ReferenceEqualityComparer.Instance);

    private MessageView(byte[] bytes) => Bytes = bytes;

    /// <summary>The MIME parse, made on first use: BODY[], HEADER and TEXT of the message need none.</summary>
    public MimeMessage Message
    {
        get
        {
            if (_message != null) return _message;
            var parser = new MimeParser(new MemoryStream(Bytes, writable: false), MimeFormat.Entity);
            parser.MimeEntityEnd += (_, e) => _ranges[e.Entity] = (e.BeginOffset, e.HeadersEndOffset, e.EndOffset, e.Lines);
            parser.MimeMessageEnd += (_, e) => _messages[e.Message] = (e.BeginOffset, e.HeadersEndOffset, e.EndOffset);
            return _message = parser.ParseMessage();
        }
    }

    /// <summary>
    /// ENVELOPE, BODYSTRUCTURE and BODY of a stored message. One that is not multipart needs
    /// only its header parsed and its body's lines counted, without a CRLF copy of the file;
    /// others get the full parse.
    /// </summary>
    public static (string Envelope, string BodyStructure, string Body, byte[]? Filter) Structure(string path)
    {
        var raw = File.ReadAllBytes(path);
        byte[]? filter = null; // made by the first SEARCH that reads the message
        Interlocked.Increment(ref Loads);
        var span = raw.AsSpan();
        int rawHeaderEnd = span.StartsWith("\n"u8) ? 1 : span.StartsWith("\r\n"u8) ? 2 : -1;
        if (rawHeaderEnd < 0)
        {
            int lf2 = span.IndexOf("\n\n"u8), crlf2 = span.IndexOf("\n\r\n"u8);
            rawHeaderEnd = lf2 < 0 && crlf2 < 0 ? raw.Length
                : lf2 >= 0 && (crlf2 < 0 || lf2 < crlf2) ? lf2 + 2 : crlf2 + 3;
        }
        var view = new MessageView(ToCrLf(raw[..rawHeaderEnd]));
        var headersEnd = (long)view.Bytes.Length;
        MimeMessage headerOnly;
        try { headerOnly = MimeMessage.Load(new MemoryStream([.. view.Bytes, (byte)'\r', (byte)'\n'], writable: false)); }
        catch (FormatException) { headerOnly = null!; }
        if (headerOnly?.Body is null or Multipart or MessagePart)
        {
            var full = new MessageView(ToCrLf(raw));
            return (full.Envelope(), full.BodyStructure(extensible: true), full.BodyStructure(extensible: false), filter);
        }
        var body = span[rawHeaderEnd..];
        int lines = body.Count((byte)'\n');
        int crlfs = body.Count("\r\n"u8);
        view._message = headerOnly;
        view._leafLines = lines;
        view._ranges[headerOnly.Body] = (0, headersEnd, headersEnd + body.Length + (lines - crlfs), lines);
        view._messages[headerOnly] = (0, headersEnd, headersEnd + body.Length + (lines - crlfs));
        return (view.Envelope(), view.BodyStructure(extensible: true), view.BodyStructure(extensible: false), filter);
    }

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
            leaf.Content?.DecodeTo(ms);
            return ms.ToArray();
        }
        return Section(new Section(part, "", []));
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

    public string Envelope() => EnvelopeOf(Message);

    private static string EnvelopeOf(MimeMessage m)
    {
        var h = m.Headers;
        string Addr(string field)
        {
            var value = h[field];
            if (value == null) return "NIL";
            InternetAddressList list;
            try { list = InternetAddressList.Parse(ParserOptions.Default, value); }
            catch (ParseException) { return "NIL"; }
            var sb = new StringBuilder();
            foreach (var a in list) AppendAddress(sb, a);
            return sb.Length == 0 ? "NIL" : "(" + sb + ")";
        }
        var from = Addr("From");
        var sender = h["Sender"] != null ? Addr("Sender") : from;
        var replyTo = h["Reply-To"] != null ? Addr("Reply-To") : from;
        return "(" + NString(h["Date"]) + " " + NString(h["Subject"]) + " " + from + " " + sender + " " + replyTo + " " +
               Addr("To") + " " + Addr("Cc") + " " + Addr("Bcc") + " " + NString(h["In-Reply-To"]) + " " + NString(h["Message-ID"]) + ")";
    }

    private static void AppendAddress(StringBuilder sb, InternetAddress a)
    {
        if (a is MailboxAddress mb)
        {
            var at = mb.Address.LastIndexOf('@');
            var local = at < 0 ? mb.Address : mb.Address[..at];
            var domain = at < 0 ? null : mb.Address[(at + 1)..];
            sb.Append('(').Append(NString(string.IsNullOrEmpty(mb.Name) ? null : mb.Name)).Append(" NIL ")
              .Append(NString(local)).Append(' ').Append(NString(domain)).Append(')');
        }
        else if (a is GroupAddress g)
        {
            sb.Append("(NIL NIL ").Append(NString(g.Name)).Append(" NIL)");
            foreach (var m in g.Members) AppendAddress(sb, m);
            sb.Append("(NIL NIL NIL NIL)");
        }
    }

    public string BodyStructure(bool extensible) => Structure(Message.Body, extensible);

    private string Structure(MimeEntity? entity, bool ext)
    {
        if (entity == null) return "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
        if (entity is Multipart multi)
        {
            var sb = new StringBuilder("(");
            foreach (var child in multi) sb.Append(Structure(child, ext));
            if (multi.Count == 0) sb.Append("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
            sb.Append(' ').Append(Quote(multi.ContentType.MediaSubtype.ToLowerInvariant()));
            if (ext)
                sb.Append(' ').Append(Params(multi.ContentType.Parameters)).Append(' ').Append(Disposition(multi)).Append(' ')
                  .Append(Language(multi)).Append(' ').Append(NString(multi.Headers[HeaderId.ContentLocation]));
            return sb.Append(')').ToString();
        }
        var ct = entity.ContentType;
        _ranges.TryGetValue(entity, out var r);
        long size = Math.Max(0, r.End - r.HeadersEnd);
        var s = new StringBuilder("(");
        s.Append(Quote(ct.MediaType.ToLowerInvariant())).Append(' ').Append(Quote(ct.MediaSubtype.ToLowerInvariant())).Append(' ')
         .Append(Params(ct.Parameters)).Append(' ')
         .Append(NString(entity.Headers[HeaderId.ContentId])).Append(' ')
         .Append(NString(entity.Headers[HeaderId.ContentDescription])).Append(' ')
         .Append(Quote((entity.Headers[HeaderId.ContentTransferEncoding] ?? "7bit").Trim().ToLowerInvariant())).Append(' ')
         .Append(size.ToString(CultureInfo.InvariantCulture));
        if (entity is MessagePart { Message: not null } mp && ct.IsMimeType("message", "rfc822"))
        {
            s.Append(' ').Append(EnvelopeOf(mp.Message)).Append(' ').Append(Structure(mp.Message.Body, ext)).Append(' ').Append(LinesOf(entity, r));
        }
        else if (ct.MediaType.Equals("text", StringComparison.OrdinalIgnoreCase))
        {
            s.Append(' ').Append(LinesOf(entity, r));
        }
        if (ext)
            s.Append(' ').Append(NString(entity.Headers[HeaderId.ContentMd5])).Append(' ').Append(Disposition(entity)).Append(' ')
             .Append(Language(entity)).Append(' ').Append(NString(entity.Headers[HeaderId.ContentLocation]));
        return s.Append(')').ToString();
    }

    /// <summary>Lines of the body: counted from its bytes (MimeKit's count includes the header).</summary>
    private int LinesOf(MimeEntity entity, (long Begin, long HeadersEnd, long End, int Lines) r)
    {
        if (_leafLines is { } leaf) return leaf;
        var from = (int)Math.Min(r.HeadersEnd, Bytes.Length);
        var to = (int)Math.Min(r.End, Bytes.Length);
        return to > from ? Bytes.AsSpan(from, to - from).Count((byte)'\n') : 0;
    }

    private static string Params(ParameterList list)
    {
        if (list.Count == 0) return "NIL";
        return "(" + string.Join(' ', list.Select(p => Quote(p.Name.ToLowerInvariant()) + " " + Quote(p.Value))) + ")";
    }

    private static string Disposition(MimeEntity e)
    {
        var d = e.ContentDisposition;
        return d == null ? "NIL" : "(" + Quote(d.Disposition.ToLowerInvariant()) + " " + Params(d.Parameters) + ")";
    }

    private static string Language(MimeEntity e)
    {
        var l = e.Headers[HeaderId.ContentLanguage];
        return l == null ? "NIL" : "(" + string.Join(' ', l.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Quote)) + ")";
    }

    public static string NString(string? s) => s == null ? "NIL" : Quote(s);

    /// <summary>A quoted string, or a literal when the text cannot be quoted.</summary>
    public static string Quote(string s)
    {
        s = s.Trim();
        if (s.Any(c => c is '\r' or '\n' or '\0') || s.Length > 1000)
        {
            var clean = s.Replace("\r", "").Replace("\n", "").Replace("\0", "");
            var n = Encoding.UTF8.GetByteCount(clean);
            return "{" + n.ToString(CultureInfo.InvariantCulture) + "}\r\n" + clean;
        }
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
