// BODYSTRUCTURE and BODY (RFC 9051 7.5.2) of a stored message, found by one
// pass over its bytes: each entity's header fields are located, not parsed
// into objects; multipart bodies are split at their boundary lines exactly
// as MimeKit's parser splits them (a delimiter line is "--boundary" or
// "--boundary--" with trailing white space, and the line break before it
// belongs to it), so that sizes agree with the BODY[section] ranges MimeKit
// gives. The field values that need a grammar (Content-Type,
// Content-Disposition) go to MimeKit's parsers. A header this scanner does
// not understand (a line that is no field) makes it give up, and the caller
// uses MimeKit's full parse instead. Sizes and line counts are those of the
// message as IMAP serves it, LF line ends counted as CRLF.
using System.Globalization;
using System.Text;

namespace Mail.ImapPop.Imap;

internal static class BodyStructure
{
    private const int MaxDepth = 64;
    private const int MaxParts = 5000;

    /// <summary>ENVELOPE, BODYSTRUCTURE, BODY and References of a message's bytes; null if it needs MimeKit's full parse.</summary>
    public static (string Envelope, string BodyStructure, string Body, string? References)? Scan(byte[] data, int length)
    {
        var scanner = new Scanner(data);
        var top = scanner.Entity(0, length, null, 0);
        if (top == null) return null;
        var envelope = Envelope.Build(top.Fields.Get);
        var ext = new StringBuilder(256);
        Write(ext, top, scanner, true);
        var basic = new StringBuilder(128);
        Write(basic, top, scanner, false);
        return (envelope, ext.ToString(), basic.ToString(), top.Fields.Get("References"));
    }

    private sealed class Part(Fields fields, MimeValue type, int bodyStart, int bodyEnd)
    {
        public Fields Fields { get; } = fields;
        public MimeValue Type { get; } = type;
        public int BodyStart { get; } = bodyStart;
        public int BodyEnd { get; } = bodyEnd;
        public List<Part>? Children { get; set; }
        public Part? Message { get; set; }
    }

    /// <summary>The header fields of one entity, as offsets into the message.</summary>
    private sealed class Fields(byte[] data)
    {
        private readonly List<(int NameStart, int NameEnd, int ValueStart, int ValueEnd)> _list = new(16);

        public void Add(int nameStart, int nameEnd, int valueStart, int valueEnd) => _list.Add((nameStart, nameEnd, valueStart, valueEnd));

        public void Extend(int valueEnd) => _list[^1] = _list[^1] with { ValueEnd = valueEnd };

        public bool Any => _list.Count > 0;

        /// <summary>The first field of that name: its value's position, or (-1, -1).</summary>
        public (int Start, int End) Find(string name)
        {
            foreach (var f in _list)
            {
                if (f.NameEnd - f.NameStart != name.Length) continue;
                bool same = true;
                for (int k = 0; k < name.Length && same; k++) same = (data[f.NameStart + k] | 0x20) == (name[k] | 0x20);
                if (same) return (f.ValueStart, f.ValueEnd);
            }
            return (-1, -1);
        }

        /// <summary>The first field of that name, unfolded, or null.</summary>
        public bool RawHasNonAscii(string name)
        {
            var (start, end) = Find(name);
            return start >= 0 && data.AsSpan(start, end - start).IndexOfAnyInRange((byte)0x80, (byte)0xff) >= 0;
        }

        public string? Get(string name)
        {
            var (start, end) = Find(name);
            return start < 0 ? null : Envelope.Unfold(Envelope.Text(data.AsSpan(start, end - start)));
        }
    }

    private static readonly System.Buffers.SearchValues<byte> HeaderControls = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 32).Where(b => b != '\t').Select(b => (byte)b), 0x7f]);

    private sealed class Scanner(byte[] data)
    {
        private int _parts;
        private readonly List<string> _open = []; // the boundaries of the multiparts being split

        /// <summary>Sizes as served: each bare LF in [from, to) counts one more byte.</summary>
        public long Size(int from, int to)
        {
            if (to <= from) return 0;
            var span = data.AsSpan(from, to - from);
            return span.Length + span.Count((byte)'\n') - span.Count("\r\n"u8);
        }

        public int Lines(int from, int to) => to <= from ? 0 : data.AsSpan(from, to - from).Count((byte)'\n');

        /// <summary>An entity in [start, end): its header, and below it its parts or its message.</summary>
        public Part? Entity(int start, int end, MimeValue? parent, int depth)
        {
            if (depth > MaxDepth || ++_parts > MaxParts) return null;
            var fields = new Fields(data);
            int i = start, bodyStart = end;
            while (i < end)
            {
                if (data[i] == '\n') { bodyStart = i + 1; break; }
                if (data[i] == '\r' && i + 1 < end && data[i + 1] == '\n') { bodyStart = i + 2; break; }
                int lf = data.AsSpan(i, end - i).IndexOf((byte)'\n');
                int lineEnd = lf < 0 ? end : i + lf;
                // Control bytes, a CR inside a line, a blank continuation line: how such a header
                // reads is MimeKit's call (these shapes were found by fuzz/run to differ).
                var text = data.AsSpan(i, lineEnd - i);
                if (text.EndsWith("\r"u8)) text = text[..^1];
                if (text.IndexOfAny(HeaderControls) >= 0 || text.Trim(" \t"u8).IsEmpty) return null;
                if (data[i] is (byte)' ' or (byte)'\t')
                {
                    if (!fields.Any) return null;
                    fields.Extend(lineEnd);
                }
                else
                {
                    int colon = data.AsSpan(i, lineEnd - i).IndexOf((byte)':');
                    if (colon <= 0) return null;
                    int nameEnd = i + colon;
                    while (nameEnd > i && data[nameEnd - 1] is (byte)' ' or (byte)'\t') nameEnd--;
                    for (int k = i; k < nameEnd; k++) if (data[k] is <= 32 or >= 127) return null;
                    if (nameEnd == i) return null;
                    fields.Add(i, nameEnd, i + colon + 1, lineEnd);
                }
                i = lineEnd + 1;
            }
            if (i >= end)
            {
                if (depth > 0) return null; // a part's header with no end: MimeKit's parse decides what it is
                bodyStart = end;
            }

            MimeValue type;
            if (fields.Get("Content-Type") is { } ctValue)
            {
                if (ctValue.Any(c => c >= 0x7f) || MimeValue.ContentType(ctValue) is not { } parsed) return null;
                // A byte beyond ASCII in the raw value (whatever it decodes to): MimeKit's parser then
                // takes the entity for text/plain while its header says otherwise; its parse decides.
                if (fields.RawHasNonAscii("Content-Type")) return null;
                type = parsed;
            }
            else type = parent != null && parent.Is("multipart", "digest") ? MimeValue.MessageRfc822 : MimeValue.TextPlain;

            var part = new Part(fields, type, bodyStart, end);
            if (type.Is("multipart", null))
            {
                var boundary = type.Param("boundary");
                if (string.IsNullOrEmpty(boundary)) return null;
                // A malformed parameter list ('boundary="b1"x', a stray quote) is read differently by
                // each parser: leave such a message to MimeKit's parse rather than split it another way.
                var raw = fields.Get("Content-Type")!;
                if (!MimeKit.ContentType.TryParse(raw, out var strict) || strict.Boundary != boundary || !QuotesClosed(raw)) return null;
                // A part that reuses an enclosing multipart's boundary: which of them a delimiter
                // line closes is a guess each parser makes its own way; MimeKit's parse decides.
                if (_open.Contains(boundary)) return null;
                part.Children = [];
                _open.Add(boundary);
                try { if (!Split(part, Encoding.UTF8.GetBytes("--" + boundary), depth)) return null; }
                finally { _open.RemoveAt(_open.Count - 1); }
            }
            else if (type.Is("message", "rfc822"))
            {
                part.Message = Entity(bodyStart, end, null, depth + 1);
                if (part.Message == null) return null;
            }
            return part;
        }

        /// <summary>Every quoted string of a header value ends (a backslash quotes the next character).</summary>
        private static bool QuotesClosed(string value)
        {
            bool inQuote = false;
            for (int i = 0; i < value.Length; i++)
            {
                if (value[i] == '\\') i++;
                else if (value[i] == '"') inQuote = !inQuote;
            }
            return !inQuote;
        }

        /// <summary>The parts of a multipart, between its delimiter lines; the preamble and epilogue are not parts.</summary>
        private bool Split(Part multi, byte[] marker, int depth)
        {
            int end = multi.BodyEnd, partStart = -1, line = multi.BodyStart;
            while (line < end)
            {
                int lf = data.AsSpan(line, end - line).IndexOf((byte)'\n');
                int lineEnd = lf < 0 ? end : line + lf;
                var kind = data[line] == '-' ? Delimiter(line, lineEnd, marker) : 0;
                if (kind < 0) return false;
                if (kind > 0)
                {
                    if (partStart >= 0)
                    {
                        // The line break before the delimiter belongs to the delimiter.
                        int contentEnd = line - 1;
                        if (contentEnd > partStart && data[contentEnd - 1] == '\r') contentEnd--;
                        var child = Entity(partStart, Math.Max(partStart, contentEnd), multi.Type, depth + 1);
                        if (child == null) return false;
                        multi.Children!.Add(child);
                    }
                    if (kind == 2) return true;
                    partStart = Math.Min(lineEnd + 1, end);
                }
                if (lf < 0) break;
                // Next line that may be a delimiter: one that starts with "--".
                int next = data.AsSpan(lineEnd, end - lineEnd).IndexOf("\n--"u8);
                if (next < 0) break;
                line = lineEnd + next + 1;
            }
            // A delimiter with nothing after it (the data ends there): whether that opens an empty
            // last part is MimeKit's call (found by fuzz/run: it makes none).
            if (partStart >= end) return false;
            if (partStart >= 0)
            {
                var last = Entity(partStart, end, multi.Type, depth + 1);
                if (last == null) return false;
                multi.Children!.Add(last);
            }
            return true;
        }

        /// <summary>1 for "--boundary", 2 for "--boundary--" (trailing white space allowed), -1 for the boundary and more, 0 otherwise.</summary>
        private int Delimiter(int line, int lineEnd, byte[] marker)
        {
            int e = lineEnd;
            while (e > line && data[e - 1] is (byte)' ' or (byte)'\t' or (byte)'\r') e--;
            var text = data.AsSpan(line, e - line);
            if (!text.StartsWith(marker)) return 0;
            if (text.Length == marker.Length) return 1;
            if (text.Length == marker.Length + 2 && text.EndsWith("--"u8)) return 2;
            // More after the boundary: another boundary that begins with this one ("outer-inner"),
            // or a line of text; with a control byte in it, what it is is MimeKit's call.
            return text[marker.Length..].IndexOfAny(HeaderControls) >= 0 ? -1 : 0;
        }
    }

    private static void Write(StringBuilder sb, Part p, Scanner scanner, bool ext)
    {
        if (p.Children != null)
        {
            sb.Append('(');
            foreach (var child in p.Children) Write(sb, child, scanner, ext);
            if (p.Children.Count == 0) sb.Append(EmptyPart);
            sb.Append(' ').Append(MessageView.Quote(p.Type.Subtype));
            if (ext) AppendMultipartExtension(sb, p.Type, p.Fields.Get);
            sb.Append(')');
            return;
        }
        Action<StringBuilder>? inner = null;
        if (p.Message is { } m)
            inner = s =>
            {
                s.Append(Envelope.Build(m.Fields.Get)).Append(' ');
                Write(s, m, scanner, ext);
            };
        AppendLeaf(sb, p.Type, p.Fields.Get, scanner.Size(p.BodyStart, p.BodyEnd), scanner.Lines(p.BodyStart, p.BodyEnd), inner, ext);
    }

    /// <summary>What a multipart without parts shows in its place.</summary>
    public const string EmptyPart = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";

    /// <summary>The extension data of a multipart: parameters, disposition, language, location.</summary>
    public static void AppendMultipartExtension(StringBuilder sb, MimeValue type, Func<string, string?> field) =>
        sb.Append(' ').Append(Params(type.Params, false)).Append(' ').Append(Disposition(field("Content-Disposition"))).Append(' ')
          .Append(Language(field("Content-Language"))).Append(' ').Append(MessageView.NString(field("Content-Location")));

    /// <summary>
    /// One non-multipart body: type, parameters (text gets the default charset us-ascii when it
    /// names none, RFC 2045 5.2), id, description, encoding, size; the line count of text and of
    /// message/rfc822 (which also carries its message's envelope and structure, given by
    /// <paramref name="inner"/>); the extension data when <paramref name="ext"/>. Values are
    /// given as the header has them (RFC 2231 parameters too, merged but not decoded), as
    /// Dovecot gives them.
    /// </summary>
    public static void AppendLeaf(StringBuilder s, MimeValue ct, Func<string, string?> field, long size, int lines, Action<StringBuilder>? inner, bool ext)
    {
        bool text = ct.Is("text", null);
        s.Append('(').Append(MessageView.Quote(ct.Type)).Append(' ').Append(MessageView.Quote(ct.Subtype)).Append(' ')
         .Append(Params(ct.Params, text)).Append(' ')
         .Append(MessageView.NString(field("Content-ID"))).Append(' ')
         .Append(MessageView.NString(field("Content-Description"))).Append(' ')
         .Append(MessageView.Quote(MimeValue.Token(field("Content-Transfer-Encoding")) ?? "7bit")).Append(' ')
         .Append(size.ToString(CultureInfo.InvariantCulture));
        if (inner != null)
        {
            s.Append(' ');
            inner(s);
            s.Append(' ').Append(lines.ToString(CultureInfo.InvariantCulture));
        }
        else if (text) s.Append(' ').Append(lines.ToString(CultureInfo.InvariantCulture));
        if (ext)
            s.Append(' ').Append(MessageView.NString(field("Content-MD5"))).Append(' ').Append(Disposition(field("Content-Disposition"))).Append(' ')
             .Append(Language(field("Content-Language"))).Append(' ').Append(MessageView.NString(field("Content-Location")));
        s.Append(')');
    }

    private static string Params(IReadOnlyList<(string Name, string Value)> list, bool defaultCharset)
    {
        if (list.Count == 0 && !defaultCharset) return "NIL";
        var sb = new StringBuilder("(");
        bool charset = false;
        foreach (var (name, value) in list)
        {
            if (sb.Length > 1) sb.Append(' ');
            sb.Append(MessageView.Quote(name)).Append(' ').Append(MessageView.Quote(value));
            charset |= name.Equals("charset", StringComparison.OrdinalIgnoreCase);
        }
        if (defaultCharset && !charset) sb.Append(sb.Length > 1 ? " " : "").Append("\"charset\" \"us-ascii\"");
        return sb.Append(')').ToString();
    }

    private static string Disposition(string? value) =>
        value == null || MimeValue.Disposition(value) is not { } d ? "NIL" : "(" + MessageView.Quote(d.Type) + " " + Params(d.Params, false) + ")";

    /// <summary>Content-Language: its comma-separated tags (RFC 3282), NIL when there are none.</summary>
    private static string Language(string? value)
    {
        var tags = value?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        return tags.Length == 0 ? "NIL" : "(" + string.Join(' ', tags.Select(MessageView.Quote)) + ")";
    }
}
