// The queue file: what the MTA promised to deliver. A run of typed,
// length-prefixed records after a magic and version, closed by an END record
// that carries a SHA-256 of everything before it. A file without a valid END
// is incomplete, whatever else it holds; a file that fails any check is
// corrupt. The reader trusts nothing: every length is checked against what
// is left, and record counts and sizes are bounded.
//
//   "MQF" version(1 byte)
//   record: type(1 byte) length(4 bytes, little-endian) payload
//     T arrival time (8 bytes, Unix milliseconds)   S sender (UTF-8, may be empty)
//     R recipient (UTF-8)                           A attribute "name=value"
//     C content chunk (at most 64 KiB each)         E end: SHA-256 of all bytes before it
//     P header lines added once the content was in (the checks' results), written after the
//       content and read before it
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Mail.Queue;

public enum QueueFileStatus { Ok, Incomplete, Corrupt }

public sealed record QueueEnvelope(
    DateTimeOffset Arrival,
    string Sender,
    IReadOnlyList<string> Recipients,
    IReadOnlyDictionary<string, string> Attributes);

public static class QueueFileFormat
{
    public const byte Version = 1;
    public static readonly byte[] Magic = "MQF"u8.ToArray();
    public const int MaxChunk = 64 * 1024;
    public const int MaxRecipients = 100_000;
    public const int MaxEnvelopeField = 4096;
    public const byte Time = (byte)'T', Sender = (byte)'S', Recipient = (byte)'R', Attribute = (byte)'A', Content = (byte)'C', Prepend = (byte)'P', End = (byte)'E';
}

/// <summary>Writes one queue file; nothing is promised until <see cref="CommitAsync"/> returns.</summary>
public sealed class QueueFileWriter : IAsyncDisposable, IDisposable
{
    private readonly FileStream _file;
    /// <summary>Records go through this: a failed write (a full disk) is held until the commit.</summary>
    private readonly Mail.Shared.IO.HeldFailureStream _sink;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private byte[] _chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(QueueFileFormat.MaxChunk);
    private int _chunkLength;
    private bool _committed, _disposed;
    private readonly Action? _closed;
    private long _position;
    private readonly List<(long Offset, int Length)> _contentRecords = [];

    public string Path { get; }
    public long ContentLength { get; private set; }

    public QueueFileWriter(string path, QueueEnvelope envelope, Action? closed = null)
    {
        Path = path;
        _closed = closed;
        _file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read, // read back by the checks before the commit
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite, BufferSize = 64 * 1024,
        });
        _sink = new Mail.Shared.IO.HeldFailureStream(_file);
        Write([.. QueueFileFormat.Magic, QueueFileFormat.Version]);
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(time, envelope.Arrival.ToUnixTimeMilliseconds());
        Record(QueueFileFormat.Time, time);
        Record(QueueFileFormat.Sender, Encoding.UTF8.GetBytes(envelope.Sender));
        foreach (var (k, v) in envelope.Attributes) Record(QueueFileFormat.Attribute, Encoding.UTF8.GetBytes(k + "=" + v));
        foreach (var r in envelope.Recipients) Record(QueueFileFormat.Recipient, Encoding.UTF8.GetBytes(r));
    }

    /// <summary>A stream whose writes are the message content (for writers that want a Stream).</summary>
    public Stream ContentStream => new ContentWriter(this);

    private sealed class ContentWriter(QueueFileWriter file) : Mail.Shared.IO.WriteOnlyStream
    {
        public override void Write(ReadOnlySpan<byte> buffer) => file.WriteContent(buffer);
    }

    /// <summary>
    /// Appends message content (any amount, in any pieces). A write that fails (a full disk) is
    /// remembered, not thrown: the receiver reads on to the end of the message, in step with the
    /// client, and <see cref="CommitAsync"/> then throws it.
    /// </summary>
    public void WriteContent(ReadOnlySpan<byte> data)
    {
        if (_sink.Failure != null) return;
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, QueueFileFormat.MaxChunk - _chunkLength);
            data[..n].CopyTo(_chunk.AsSpan(_chunkLength));
            _chunkLength += n;
            data = data[n..];
            ContentLength += n;
            if (_chunkLength == QueueFileFormat.MaxChunk) FlushChunk();
        }
    }

    private void FlushChunk()
    {
        if (_chunkLength == 0) return;
        _contentRecords.Add((_position + 5, _chunkLength));
        Record(QueueFileFormat.Content, _chunk.AsSpan(0, _chunkLength));
        _chunkLength = 0;
    }

    /// <summary>
    /// The content written so far, to read back before the commit (the checks that need the whole
    /// message); null if a write failed. Seekable; valid until the commit or disposal.
    /// </summary>
    public Stream? ReadBack()
    {
        FlushChunk();
        if (_sink.Failure != null) return null;
        try { _file.Flush(); }
        catch (Exception e) when (Mail.Shared.IO.StorageError.Is(e)) { return null; }
        return new RangeStream(Path, _contentRecords);
    }

    /// <summary>Header lines (ending in CRLF) that readers get before the content; after all content, before the commit.</summary>
    public void Prepend(ReadOnlySpan<byte> lines)
    {
        if (lines.Length == 0) return;
        if (lines.Length > QueueFileFormat.MaxChunk) throw new ArgumentException("prepended header too long");
        FlushChunk();
        Record(QueueFileFormat.Prepend, lines);
        ContentLength += lines.Length;
    }

    /// <summary>Writes END, fsyncs the file and its directory. After this the message is safe.</summary>
    public async Task CommitAsync()
    {
        if (_sink.Failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        FlushChunk();
        var digest = _hash.GetHashAndReset();
        Span<byte> header = stackalloc byte[5];
        header[0] = QueueFileFormat.End;
        BinaryPrimitives.WriteInt32LittleEndian(header[1..], digest.Length);
        _file.Write(header);
        _file.Write(digest);
        await _file.FlushAsync().ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
        await _file.DisposeAsync().ConfigureAwait(false);
        Spool.FsyncDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _committed = true;
        ReturnChunk();
        _closed?.Invoke();
    }

    private void Record(byte type, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[5];
        header[0] = type;
        BinaryPrimitives.WriteInt32LittleEndian(header[1..], payload.Length);
        Write(header);
        Write(payload);
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _position += bytes.Length;
        _hash.AppendData(bytes);
        _sink.Write(bytes);
    }

    /// <summary>An uncommitted file is removed: the client never got its "250".</summary>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private void ReturnChunk()
    {
        if (_chunk.Length == 0) return;
        System.Buffers.ArrayPool<byte>.Shared.Return(_chunk);
        _chunk = [];
    }

    public void Dispose()
    {
        _hash.Dispose();
        if (_committed || _disposed) return;
        ReturnChunk();
        _disposed = true;
        try { _file.Dispose(); } catch (IOException) { } // its buffer cannot reach a full disk: the file goes anyway
        try { File.Delete(Path); } catch (IOException) { }
        _closed?.Invoke();
    }
}

/// <summary>Reads and checks a queue file.</summary>
public static class QueueFileReader
{
    /// <summary>Checks the whole file; on Ok gives the envelope and where each content chunk lies.</summary>
    public static QueueFileStatus Read(string path, out QueueEnvelope? envelope, out List<(long Offset, int Length)> chunks)
    {
        envelope = null;
        chunks = [];
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024);
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(QueueFileFormat.MaxChunk);
            try { return Parse(fs, buffer, out envelope, chunks); }
            finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
        }
        catch (FileNotFoundException) { return QueueFileStatus.Incomplete; }
        catch (IOException) { return QueueFileStatus.Corrupt; }
    }

    private static QueueFileStatus Parse(Stream fs, byte[] buffer, out QueueEnvelope? envelope, List<(long, int)> chunks)
    {
        envelope = null;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var head = new byte[4];
        if (!ReadExactly(fs, head)) return QueueFileStatus.Incomplete;
        if (!head.AsSpan(0, 3).SequenceEqual(QueueFileFormat.Magic)) return QueueFileStatus.Corrupt;
        if (head[3] != QueueFileFormat.Version) return QueueFileStatus.Corrupt;
        hash.AppendData(head);
        long? time = null;
        string? sender = null;
        var recipients = new List<string>();
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        int prepended = 0;
        var header = new byte[5];
        while (true)
        {
            if (!ReadExactly(fs, header)) return QueueFileStatus.Incomplete;
            var type = header[0];
            var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
            if (length < 0 || length > QueueFileFormat.MaxChunk || length > fs.Length - fs.Position)
                return fs.Length - fs.Position < length && length <= QueueFileFormat.MaxChunk ? QueueFileStatus.Incomplete : QueueFileStatus.Corrupt;
            if (type == QueueFileFormat.End)
            {
                var expected = hash.GetHashAndReset();
                if (length != expected.Length || !ReadExactly(fs, buffer.AsSpan(0, length))) return QueueFileStatus.Incomplete;
                if (!CryptographicOperations.FixedTimeEquals(expected, buffer.AsSpan(0, length))) return QueueFileStatus.Corrupt;
                if (fs.Position != fs.Length || time == null || sender == null || recipients.Count == 0) return QueueFileStatus.Corrupt;
                envelope = new QueueEnvelope(DateTimeOffset.FromUnixTimeMilliseconds(time.Value), sender, recipients, attributes);
                return QueueFileStatus.Ok;
            }
            hash.AppendData(header);
            var offset = fs.Position;
            if (!ReadExactly(fs, buffer.AsSpan(0, length))) return QueueFileStatus.Incomplete;
            var payload = buffer.AsSpan(0, length);
            hash.AppendData(payload);
            if (type is not (QueueFileFormat.Content or QueueFileFormat.Prepend) && length > QueueFileFormat.MaxEnvelopeField) return QueueFileStatus.Corrupt;
            switch (type)
            {
                case QueueFileFormat.Time when length == 8 && time == null:
                    time = BinaryPrimitives.ReadInt64LittleEndian(payload);
                    break;
                case QueueFileFormat.Sender when sender == null:
                    sender = Encoding.UTF8.GetString(payload);
                    break;
                case QueueFileFormat.Recipient when recipients.Count < QueueFileFormat.MaxRecipients:
                    recipients.Add(Encoding.UTF8.GetString(payload));
                    break;
                case QueueFileFormat.Attribute:
                    var kv = Encoding.UTF8.GetString(payload);
                    int eq = kv.IndexOf('=');
                    if (eq <= 0) return QueueFileStatus.Corrupt;
                    attributes[kv[..eq]] = kv[(eq + 1)..];
                    break;
                case QueueFileFormat.Content:
                    chunks.Add((offset, length));
                    break;
                case QueueFileFormat.Prepend:
                    chunks.Insert(prepended++, (offset, length));
                    break;
                default:
                    return QueueFileStatus.Corrupt;
            }
        }
    }

    private static bool ReadExactly(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) return false;
            total += n;
        }
        return true;
    }

    /// <summary>Copies the message content of a checked file to <paramref name="output"/>.</summary>
    public static void CopyContent(string path, IEnumerable<(long Offset, int Length)> chunks, Stream output)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(QueueFileFormat.MaxChunk);
        try
        {
            foreach (var (offset, length) in chunks)
            {
                fs.Position = offset;
                fs.ReadExactly(buffer, 0, length);
                output.Write(buffer, 0, length);
            }
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>
    /// The message content of a checked file, chunk by chunk as it was written (each at most
    /// MaxChunk bytes); a chunk is valid until the next one is asked for. Positioned reads into one buffer.
    /// </summary>
    #pragma warning disable CS1998 // synchronous reads of the page cache, consumed by an asynchronous writer
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadContentAsync(string path, IReadOnlyList<(long Offset, int Length)> chunks,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(QueueFileFormat.MaxChunk);
        try
        {
            foreach (var (offset, length) in chunks)
            {
                int read = 0;
                while (read < length)
                {
                    ct.ThrowIfCancellationRequested();
                    int n = RandomAccess.Read(handle, buffer.AsSpan(read, length - read), offset + read); // the page cache: a thread hop would cost more
                    if (n == 0) throw new IOException($"{path}: shorter than its records say");
                    read += n;
                }
                yield return buffer.AsMemory(0, length);
            }
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }
#pragma warning restore CS1998

    /// <summary>The content's header section (up to and including its empty line), at most <paramref name="max"/> bytes.</summary>
    public static byte[] ReadHeader(string path, IEnumerable<(long Offset, int Length)> chunks, int max) => ReadPrefix(path, chunks, max, headerOnly: true);

    /// <summary>The content as one seekable stream over the file (prepended header lines first), for a parser.</summary>
    public static Stream OpenContent(string path, IEnumerable<(long Offset, int Length)> chunks) => new RangeStream(path, chunks);

    /// <summary>The first <paramref name="max"/> bytes of the content at most.</summary>
    public static byte[] ReadContentPrefix(string path, IEnumerable<(long Offset, int Length)> chunks, int max) => ReadPrefix(path, chunks, max, headerOnly: false);

    /// <summary>
    /// The length of the header section with the empty line that ends it (CRLF, or a bare LF
    /// as in older queue files and BDAT chunks); -1 while that line has not been seen.
    /// </summary>
    public static int HeaderEnd(ReadOnlySpan<byte> bytes)
    {
        for (int start = 0; start < bytes.Length;)
        {
            var rest = bytes[start..];
            if (rest[0] == '\n') return start + 1;
            if (rest.Length >= 2 && rest[0] == '\r' && rest[1] == '\n') return start + 2;
            int lf = rest.IndexOf((byte)'\n');
            if (lf < 0) return -1;
            start += lf + 1;
        }
        return -1;
    }

    private static byte[] ReadPrefix(string path, IEnumerable<(long Offset, int Length)> chunks, int max, bool headerOnly)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        var result = new MemoryStream();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(QueueFileFormat.MaxChunk);
        try
        {
            foreach (var (offset, length) in chunks)
            {
                int n = (int)Math.Min(length, max - result.Length);
                if (n <= 0) break;
                fs.Position = offset;
                fs.ReadExactly(buffer, 0, n);
                result.Write(buffer, 0, n);
                if (!headerOnly) continue;
                var all = result.GetBuffer().AsSpan(0, (int)result.Length);
                int end = HeaderEnd(all);
                if (end >= 0) return all[..end].ToArray();
            }
            return result.ToArray();
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }
}

/// <summary>A read-only, seekable view of byte ranges of a file, one after another.</summary>
internal sealed class RangeStream : Stream
{
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    private readonly (long Offset, int Length)[] _ranges;
    private readonly long[] _starts;
    private long _position;

    public RangeStream(string path, IEnumerable<(long Offset, int Length)> ranges)
    {
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        _ranges = ranges.ToArray();
        _starts = new long[_ranges.Length + 1];
        for (int i = 0; i < _ranges.Length; i++) _starts[i + 1] = _starts[i] + _ranges[i].Length;
    }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => _starts[^1];
    public override long Position { get => _position; set => _position = Math.Clamp(value, 0, Length); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position >= Length || buffer.Length == 0) return 0;
        int i = Array.BinarySearch(_starts, _position);
        if (i < 0) i = ~i - 1;
        while (i < _ranges.Length && _starts[i + 1] <= _position) i++;
        var within = _position - _starts[i];
        int n = (int)Math.Min(buffer.Length, _ranges[i].Length - within);
        n = RandomAccess.Read(_handle, buffer[..n], _ranges[i].Offset + within);
        if (n == 0) throw new IOException("queue file shorter than written");
        _position += n;
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) =>
        Position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => Length + offset };

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _handle.Dispose();
        base.Dispose(disposing);
    }
}
