// The message as a script sees it: the envelope, the header fields in order
// (editheader changes them, and later tests see the change), and the body,
// parsed only when a body test asks for it. The message itself is never
// changed on disk: when the header was edited, Write gives the new header
// with the original body for the copies that store or send it.
using System.Text;
using MimeKit;

namespace Mail.Sieve;

public sealed class SieveMessage
{
    private readonly Func<Stream> _open;
    private readonly long _bodyOffset;
    private MimeMessage? _parsed;
    private string? _rawBody;

    /// <summary>The header fields in order, as changed by editheader.</summary>
    public List<Header> Headers { get; }

    public bool HeadersChanged { get; internal set; }

    private const long MaxParsed = 8 << 20;

    /// <summary>MAIL FROM, without brackets; empty for the null sender.</summary>
    public string EnvelopeFrom { get; init; } = "";

    /// <summary>The recipient this delivery is for, as the client gave it (with its +detail).</summary>
    public string EnvelopeTo { get; init; } = "";

    /// <summary>The logged-in user who submitted it, if any (envelope "auth").</summary>
    public string? AuthUser { get; init; }

    /// <summary>The size in octets, as the size test compares it.</summary>
    public long Size { get; }

    private SieveMessage(Func<Stream> open, List<Header> headers, long bodyOffset, long size)
    {
        _open = open;
        Headers = headers;
        _bodyOffset = bodyOffset;
        Size = size;
    }

    /// <summary>Reads the header of the message <paramref name="open"/> gives (at most 1 MiB of it).</summary>
    public static SieveMessage Load(Func<Stream> open, string envelopeFrom, string envelopeTo, string? authUser = null)
    {
        using var stream = open();
        long size = stream.Length;
        long bodyOffset = HeaderEnd(stream);
        stream.Position = 0;
        var headers = new List<Header>();
        var parser = new MimeParser(new BoundedStream(stream, 1 << 20, leaveOpen: true), MimeFormat.Entity, persistent: false);
        try
        {
            foreach (var h in parser.ParseHeaders()) headers.Add(h);
        }
        catch (FormatException) { }
        return new SieveMessage(open, headers, bodyOffset, size) { EnvelopeFrom = envelopeFrom, EnvelopeTo = envelopeTo, AuthUser = authUser };
    }

    public static SieveMessage Load(string path, string envelopeFrom, string envelopeTo, string? authUser = null) =>
        Load(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 16384), envelopeFrom, envelopeTo, authUser);

    public static SieveMessage FromBytes(byte[] message, string envelopeFrom, string envelopeTo, string? authUser = null) =>
        Load(() => new MemoryStream(message, writable: false), envelopeFrom, envelopeTo, authUser);

    /// <summary>Where the body starts: after the first empty line, or the end when there is none.</summary>
    private static long HeaderEnd(Stream s)
    {
        var buffer = new byte[8192];
        long at = 0;
        int lineLength = 0, read;
        while (at < (1 << 20) && (read = s.Read(buffer)) > 0)
        {
            for (int i = 0; i < read; i++)
            {
                byte b = buffer[i];
                if (b == '\n')
                {
                    if (lineLength == 0) return at + i + 1;
                    lineLength = 0;
                }
                else if (b != '\r') lineLength++;
            }
            at += read;
        }
        return Math.Min(at, s.Length);
    }

    /// <summary>The values of the fields named <paramref name="name"/>, decoded and unfolded, in order.</summary>
    public IEnumerable<Header> Fields(string name)
    {
        foreach (var h in Headers)
            if (h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)) yield return h;
    }

    /// <summary>The whole message parsed (for body tests), with the edited header.</summary>
    public MimeMessage Parsed()
    {
        if (_parsed != null) return _parsed;
        // At most 8 MiB of a message is parsed for body tests: a larger one is judged by its beginning.
        using var s = new BoundedStream(_open(), MaxParsed);
        try { _parsed = MimeMessage.Load(s); }
        catch (FormatException) { _parsed = new MimeMessage(); }
        return _parsed;
    }

    /// <summary>The body as it is on disk, at most <paramref name="limit"/> characters (body :raw).</summary>
    public string RawBody(int limit)
    {
        if (_rawBody != null) return _rawBody;
        using var s = _open();
        s.Position = Math.Min(_bodyOffset, s.Length);
        var buffer = new byte[(int)Math.Min(limit, Math.Max(0, s.Length - s.Position))];
        s.ReadExactly(buffer);
        return _rawBody = Encoding.UTF8.GetString(buffer);
    }

    /// <summary>
    /// The message with its edited header (LF line ends, as the Maildir keeps them) and the
    /// original body, for a copy that stores or sends it.
    /// </summary>
    public void Write(Stream output)
    {
        var sb = new StringBuilder();
        foreach (var h in Headers)
        {
            var raw = Encoding.UTF8.GetString(h.RawValue).Replace("\r\n", "\n");
            if (!raw.EndsWith('\n')) raw += "\n";
            sb.Append(h.Field).Append(':').Append(raw);
        }
        sb.Append('\n');
        output.Write(Encoding.UTF8.GetBytes(sb.ToString()));
        using var s = _open();
        s.Position = Math.Min(_bodyOffset, s.Length);
        s.CopyTo(output);
    }

    /// <summary>Reads at most a limit from a stream, then reports its end (the header parser's bound).</summary>
    private sealed class BoundedStream(Stream inner, long limit, bool leaveOpen = false) : Stream
    {
        private long _left = limit;
        protected override void Dispose(bool disposing)
        {
            if (disposing && !leaveOpen) inner.Dispose();
            base.Dispose(disposing);
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
            _left -= n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
