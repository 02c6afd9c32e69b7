// Turns the bytes of DATA (dot-stuffed, CRLF lines) or of BDAT chunks into
// a stored form, stuffing removed: LF line ends for a Maildir (lmtpd, IMAP
// APPEND; the one line-end conversion between SMTP and the mailbox), or the
// lines as they came for mtad's queue (keepCrLf), which hands them on as
// they are. Pure and resumable: it is
// fed whatever the socket delivered and says how much it used; a trailing CR
// or an undecided "." at a line start waits for the next bytes. The end of
// DATA is CRLF "." CRLF only: a "." line after a bare LF is content (SMTP
// smuggling). What one call produces is staged in a small buffer and
// written to the output before the call returns.
using System.Buffers;

namespace Mail.Shared.Smtp;

public sealed class DataWriter(Stream output, long maxSize, bool dotStuffed, bool keepCrLf = false)
{
    private bool _atLineStart = true;
    private bool _lastLineCrLf = true;
    private bool _carriedCr;
    private readonly byte[] _stage = new byte[16 * 1024];
    private int _staged;
    public long Received { get; private set; }
    public long Lines { get; private set; }
    public bool TooBig => Received > maxSize;
    public bool HasNul { get; private set; }
    public bool HasBareLf { get; private set; }
    public bool HasBareCr { get; private set; }

    /// <summary>Consumes from <paramref name="buffer"/>; true when the end of DATA was reached.</summary>
    public async ValueTask<bool> FeedAsync(ReadOnlySequence<byte> buffer, Action<SequencePosition> consumed)
    {
        var done = await FeedCoreAsync(buffer, consumed).ConfigureAwait(false);
        await FlushStageAsync().ConfigureAwait(false);
        return done;
    }

    private async ValueTask<bool> FeedCoreAsync(ReadOnlySequence<byte> buffer, Action<SequencePosition> consumed)
    {
        var rest = buffer;
        if (_carriedCr && !rest.IsEmpty)
        {
            // The CR that ended the previous BDAT chunk: a line end if an LF follows.
            _carriedCr = false;
            if (rest.FirstSpan[0] == '\n')
            {
                await WriteAsync(new ReadOnlySequence<byte>(keepCrLf ? CrLf : Lf)).ConfigureAwait(false);
                if (!keepCrLf) Received++;
                Lines++;
                rest = rest.Slice(1);
                _atLineStart = true;
                _lastLineCrLf = true;
            }
            else
            {
                HasBareCr = true;
                await WriteAsync(new ReadOnlySequence<byte>(Cr)).ConfigureAwait(false);
                _atLineStart = false;
            }
        }
        while (!rest.IsEmpty)
        {
            if (dotStuffed && _atLineStart && rest.FirstSpan[0] == '.')
            {
                byte second = rest.Length >= 2 ? rest.Slice(1, 1).FirstSpan[0] : (byte)0;
                if (rest.Length < 2 || (second == '\r' && rest.Length < 3)) break; // undecided yet
                if (second == '\r' && rest.Slice(2, 1).FirstSpan[0] == '\n' && _lastLineCrLf)
                {
                    consumed(rest.GetPosition(3));
                    return true;
                }
                rest = rest.Slice(1); // unstuff
                Received++;
            }
            var lf = rest.PositionOf((byte)'\n');
            if (lf == null)
            {
                // No line end yet: store all but a trailing CR, which may start a CRLF.
                var keep = LastByte(rest) == '\r' ? 1 : 0;
                var store = rest.Slice(0, rest.Length - keep);
                if (!store.IsEmpty)
                {
                    if (store.PositionOf((byte)'\r') != null) HasBareCr = true;
                    await WriteAsync(store).ConfigureAwait(false);
                    _atLineStart = false;
                }
                rest = rest.Slice(store.Length);
                break;
            }
            var line = rest.Slice(0, lf.Value);
            bool crlf = line.Length > 0 && LastByte(line) == '\r';
            if (!crlf) HasBareLf = true;
            var content = crlf ? line.Slice(0, line.Length - 1) : line;
            if (content.PositionOf((byte)'\r') != null) HasBareCr = true;
            await WriteAsync(content).ConfigureAwait(false);
            // keepCrLf: a line that ended in a bare LF is stored as if it ended in CRLF (as
            // Postfix's smtpd_forbid_bare_newline = normalize); the caller may refuse it instead.
            await WriteAsync(new ReadOnlySequence<byte>(keepCrLf ? CrLf : Lf)).ConfigureAwait(false);
            if (crlf && !keepCrLf) Received++;
            Lines++;
            rest = rest.Slice(rest.GetPosition(1, lf.Value));
            _atLineStart = true;
            _lastLineCrLf = crlf;
        }
        consumed(rest.Start);
        return false;
    }

    /// <summary>
    /// A BDAT chunk ended and <see cref="FeedAsync"/> held back its final CR: the caller
    /// consumes it and the CR is judged with the next chunk's first byte.
    /// </summary>
    public void CarryCr() => _carriedCr = true;

    /// <summary>At the end of BDAT LAST: a CR still carried was a bare CR, stored as it came.</summary>
    public async ValueTask FinishAsync()
    {
        if (!_carriedCr) return;
        _carriedCr = false;
        HasBareCr = true;
        await WriteAsync(new ReadOnlySequence<byte>(Cr)).ConfigureAwait(false);
        await FlushStageAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Converts all of <paramref name="input"/> as one last chunk (no dot-stuffing): how an IMAP
    /// APPEND literal in its CRLF form is stored.
    /// </summary>
    public async Task CopyFromAsync(Stream input)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int n;
            while ((n = await input.ReadAsync(buffer.AsMemory(0, 64 * 1024)).ConfigureAwait(false)) > 0)
            {
                var chunk = new ReadOnlySequence<byte>(buffer, 0, n);
                SequencePosition used = chunk.Start;
                await FeedAsync(chunk, p => used = p).ConfigureAwait(false);
                if (chunk.Slice(0, used).Length < n) CarryCr(); // only a final CR is held back without dot-stuffing
            }
            await FinishAsync().ConfigureAwait(false);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>Reads DATA from <paramref name="conn"/> to its end; false if the client went away first.</summary>
    public async Task<bool> ReadDataAsync(Mail.Shared.Net.LineConnection conn)
    {
        conn.BeginTransfer(); // a client that trickles bytes runs out of time (Postfix's smtpd_min_data_rate)
        try
        {
            while (true)
            {
                var read = await conn.ReadRawAsync().ConfigureAwait(false);
                if (read == null) return false;
                var buffer = read.Value.Buffer;
                SequencePosition used = buffer.Start;
                var done = await FeedAsync(buffer, p => used = p).ConfigureAwait(false);
                conn.Credit(buffer.Slice(0, used).Length);
                // Once the end is found, what follows (a pipelined command) is not yet examined.
                conn.Input.AdvanceTo(used, done ? used : buffer.End);
                if (done) return true;
                if (read.Value.IsCompleted) return false;
            }
        }
        finally { conn.EndTransfer(); }
    }

    /// <summary>Reads one BDAT chunk of exactly <paramref name="size"/> bytes; false if the client went away first.</summary>
    public async Task<bool> ReadChunkAsync(Mail.Shared.Net.LineConnection conn, long size, bool last)
    {
        long remaining = size;
        conn.BeginTransfer();
        try
        {
            while (remaining > 0)
            {
                var read = await conn.ReadRawAsync().ConfigureAwait(false);
                if (read == null) return false;
                var buffer = read.Value.Buffer;
                var take = buffer.Slice(0, Math.Min(buffer.Length, remaining));
                SequencePosition used = take.Start;
                await FeedAsync(take, p => used = p).ConfigureAwait(false);
                var usedLength = take.Slice(0, used).Length;
                // A CR held back at the chunk's end is judged with the next chunk's first byte.
                if (usedLength < take.Length && take.Length == remaining)
                {
                    CarryCr();
                    usedLength = take.Length;
                    used = take.End;
                }
                remaining -= usedLength;
                conn.Credit(usedLength);
                conn.Input.AdvanceTo(used, remaining == 0 ? used : buffer.End);
                if (usedLength == 0 && read.Value.IsCompleted) return false;
            }
        }
        finally { conn.EndTransfer(); }
        if (last) await FinishAsync().ConfigureAwait(false);
        return true;
    }

    private static readonly byte[] Lf = [(byte)'\n'];
    private static readonly byte[] CrLf = [(byte)'\r', (byte)'\n'];
    private static readonly byte[] Cr = [(byte)'\r'];

    private static byte LastByte(ReadOnlySequence<byte> s) => s.Slice(s.Length - 1).FirstSpan[0];

    /// <summary>Stores bytes: staged when they fit (no await), else written through.</summary>
    private ValueTask WriteAsync(ReadOnlySequence<byte> bytes)
    {
        Received += bytes.Length;
        if (TooBig) return default; // keep reading to the end, store no more
        if (bytes.Length > _stage.Length - _staged) return WriteSlowAsync(bytes);
        foreach (var seg in bytes)
        {
            if (seg.Span.IndexOf((byte)0) >= 0) HasNul = true;
            seg.Span.CopyTo(_stage.AsSpan(_staged));
            _staged += seg.Length;
        }
        return default;
    }

    private async ValueTask WriteSlowAsync(ReadOnlySequence<byte> bytes)
    {
        await FlushStageAsync().ConfigureAwait(false);
        foreach (var seg in bytes)
        {
            if (seg.Span.IndexOf((byte)0) >= 0) HasNul = true;
            await output.WriteAsync(seg).ConfigureAwait(false);
        }
    }

    private async ValueTask FlushStageAsync()
    {
        if (_staged == 0) return;
        var n = _staged;
        _staged = 0;
        await output.WriteAsync(_stage.AsMemory(0, n)).ConfigureAwait(false);
    }
}
