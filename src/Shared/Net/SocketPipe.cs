// A connection's two pipes read and written straight on its socket: one
// pooled buffer each way, receives into the reader's buffer, sends from the
// writer's. For UnixLineListener, whose clients (Dovecot's login and mail
// processes, Postfix's smtpd) open a connection for a request or two: the
// general route (a NetworkStream with a stream pipe reader and writer on it)
// costs each such connection more objects, buffers and awaits than its
// requests do. What comes in is bounded by the reader's user (LineConnection
// consumes or discards what it examined), as with any PipeReader.
using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Mail.Shared.Net;

internal sealed class SocketPipe : IDuplexPipe, IDisposable
{
    private readonly Socket _socket;
    private readonly Reader _input;
    private readonly Writer _output;

    public SocketPipe(Socket socket)
    {
        _socket = socket;
        _input = new Reader(socket);
        _output = new Writer(socket);
    }

    public PipeReader Input => _input;
    public PipeWriter Output => _output;

    /// <summary>Returns both buffers and closes the socket.</summary>
    public void Dispose()
    {
        _input.Complete();
        _output.Complete();
        _socket.Dispose();
    }

    private sealed class Reader(Socket socket) : PipeReader
    {
        private const int Initial = 4096;
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Initial);
        private int _start, _end; // the unconsumed bytes
        private int _examined; // up to where the reader has looked: a read waits for bytes beyond it
        private bool _eof, _completed;
        // Cancelled by CancelPendingRead: ends the pending receive (or the next one at once). Replaced
        // after use and never disposed (it holds no timer): a late CancelPendingRead from the deadline
        // watch or the stopping token on a replaced or completed reader then does nothing.
        private volatile CancellationTokenSource _cancel = new();

        private ReadResult Result(bool canceled) =>
            new(new ReadOnlySequence<byte>(_buffer, _start, _end - _start), canceled, _eof);

        public override bool TryRead(out ReadResult result)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (_cancel.IsCancellationRequested)
            {
                _cancel = new CancellationTokenSource();
                result = Result(canceled: true);
                return true;
            }
            if (_end > _start || _eof)
            {
                result = Result(canceled: false);
                return true;
            }
            result = default;
            return false;
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (_end > _examined || _eof) return Result(canceled: false);
            if (_end == _buffer.Length) MakeRoom();
            int n;
            try
            {
                var receive = cancellationToken.CanBeCanceled
                    ? ReceiveAsync(cancellationToken)
                    : socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, _cancel.Token);
                n = await receive.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_cancel.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                _cancel = new CancellationTokenSource();
                return Result(canceled: true);
            }
            catch (SocketException e)
            {
                throw new IOException(e.Message, e);
            }
            if (n == 0) _eof = true;
            _end += n;
            return Result(canceled: false);
        }

        private async ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cancel.Token);
            return await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, linked.Token).ConfigureAwait(false);
        }

        /// <summary>The buffer is full to its end: moves the unconsumed bytes to its start, or doubles it when they fill it.</summary>
        private void MakeRoom()
        {
            var length = _end - _start;
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, length);
            }
            else
            {
                var bigger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
                Buffer.BlockCopy(_buffer, 0, bigger, 0, length);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = bigger;
            }
            _examined -= _start;
            (_start, _end) = (0, length);
        }

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            // Positions in a sequence over one array are indexes into it.
            var c = consumed.GetInteger();
            var e = examined.GetInteger();
            if (c < _start || c > _end || e < c || e > _end) throw new InvalidOperationException("position outside the last read");
            _start = c;
            _examined = e;
            if (_start == _end) _start = _end = _examined = 0;
        }

        public override void CancelPendingRead() => _cancel.Cancel();

        public override void Complete(Exception? exception = null)
        {
            if (_completed) return;
            _completed = true;
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    private sealed class Writer(Socket socket) : PipeWriter
    {
        private const int Initial = 4096;
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Initial);
        private int _written;
        private bool _completed;

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            Reserve(sizeHint);
            return _buffer.AsMemory(_written);
        }

        public override Span<byte> GetSpan(int sizeHint = 0)
        {
            Reserve(sizeHint);
            return _buffer.AsSpan(_written);
        }

        private void Reserve(int sizeHint)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            var need = _written + Math.Max(sizeHint, 1);
            if (need <= _buffer.Length) return;
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(need, _buffer.Length * 2));
            Buffer.BlockCopy(_buffer, 0, bigger, 0, _written);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        public override void Advance(int bytes)
        {
            if (bytes < 0 || _written + bytes > _buffer.Length) throw new ArgumentOutOfRangeException(nameof(bytes));
            _written += bytes;
        }

        public override bool CanGetUnflushedBytes => true;
        public override long UnflushedBytes => _written;

        /// <summary>Sends what was written; a send the socket takes at once (the usual case) completes without an await.</summary>
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            var sent = 0;
            try
            {
                while (sent < _written)
                {
                    var send = socket.SendAsync(_buffer.AsMemory(sent, _written - sent), SocketFlags.None, cancellationToken);
                    if (!send.IsCompletedSuccessfully) return FlushSlowAsync(send, sent, cancellationToken);
                    sent += send.Result;
                }
            }
            catch (SocketException e)
            {
                throw new IOException(e.Message, e);
            }
            _written = 0;
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<FlushResult> FlushSlowAsync(ValueTask<int> pending, int sent, CancellationToken cancellationToken)
        {
            try
            {
                sent += await pending.ConfigureAwait(false);
                while (sent < _written)
                    sent += await socket.SendAsync(_buffer.AsMemory(sent, _written - sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new IOException(e.Message, e);
            }
            _written = 0;
            return new FlushResult(isCanceled: false, isCompleted: false);
        }

        public override void CancelPendingFlush() { }

        public override void Complete(Exception? exception = null)
        {
            if (_completed) return;
            _completed = true;
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
