// COMPRESS=DEFLATE (RFC 4978) and the like: a connection's streams from some
// point on carried as raw deflate both ways. What the client sent compressed
// right after its command (already read into the old buffer) is inflated
// first. Inflating is bounded: a stream that inflates beyond 200 times its
// compressed size (plus 16 MiB) is a deflate bomb, and ends the connection.
// Mail compresses some 3-10 to 1; only long runs of one byte reach 1,000 to 1.
using System.IO.Compression;
using Mail.Shared.IO;

namespace Mail.Shared.Net;

/// <summary>A compressed stream inflated beyond its bound (a deflate bomb).</summary>
internal sealed class InflateLimitException() : IOException("compressed input inflates beyond its limit");

internal sealed class DeflateLayer : IAsyncDisposable
{
    private const long Ratio = 200, Slack = 16 << 20;
    public Stream Reading { get; }
    public Stream Writing { get; }
    private readonly CountingStream _compressed;
    private readonly DeflateStream _inflate, _deflate;

    public DeflateLayer(Stream transport, byte[] pending)
    {
        _compressed = new CountingStream(transport, pending);
        _inflate = new DeflateStream(_compressed, CompressionMode.Decompress, leaveOpen: true);
        _deflate = new DeflateStream(transport, CompressionLevel.Fastest, leaveOpen: true);
        Reading = new BoundedInflate(_inflate, _compressed);
        Writing = _deflate;
    }

    public async ValueTask DisposeAsync()
    {
        try { await _deflate.DisposeAsync().ConfigureAwait(false); } catch (IOException) { } catch (ObjectDisposedException) { }
        await _inflate.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The compressed side: the bytes read before the switch, then the transport; counted.</summary>
    private sealed class CountingStream(Stream inner, byte[] pending) : ReadOnlyStream
    {
        private int _pendingAt;
        public long BytesRead { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            int n;
            if (_pendingAt < pending.Length)
            {
                n = Math.Min(buffer.Length, pending.Length - _pendingAt);
                pending.AsMemory(_pendingAt, n).CopyTo(buffer);
                _pendingAt += n;
            }
            else n = await inner.ReadAsync(buffer, ct).ConfigureAwait(false);
            BytesRead += n;
            return n;
        }
    }

    /// <summary>The inflated side, ending the connection when it outgrows the compressed one too far.</summary>
    private sealed class BoundedInflate(Stream inflate, CountingStream compressed) : ReadOnlyStream
    {
        private long _inflated;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await inflate.ReadAsync(buffer, ct).ConfigureAwait(false);
            _inflated += n;
            if (_inflated > compressed.BytesRead * Ratio + Slack) throw new InflateLimitException();
            return n;
        }
    }
}
