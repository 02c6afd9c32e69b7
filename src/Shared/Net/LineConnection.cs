// One client connection of a line protocol (SMTP, LMTP, IMAP, POP3, the
// Dovecot auth protocol, socketmap), over System.IO.Pipelines. Everything read
// here comes from the network: lines are bounded by NetLimits.MaxLineLength,
// reads by the idle timeout, and a STARTTLS upgrade drops whatever the client
// pipelined before the handshake.
using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mail.Shared.Logging;
using Microsoft.AspNetCore.Connections;
using NLog;

namespace Mail.Shared.Net;

public enum LineStatus { Line, TooLong, Closed, Timeout, Shutdown }

public readonly record struct LineRead(LineStatus Status, string Text = "")
{
    public bool IsLine => Status == LineStatus.Line;
}

public sealed class LineConnection : IAsyncDisposable
{
    private static readonly Logger Log = MailLog.For("net");
    private readonly ConnectionContext _context;
    private readonly NetLimits _limits;
    private readonly CancellationToken _stopping;
    private readonly Timer _idleTimer;
    private readonly CancellationTokenRegistration _stoppingRegistration;
    private long _readSince; // Environment.TickCount64 when the pending read began; 0 when none
    private volatile bool _timedOut;
    private volatile bool _shuttingDown;
    private SslStream? _tls;

    public PipeReader Input { get; private set; }
    public PipeWriter Output { get; private set; }
    public string SessionId { get; } = MailLog.NewId();
    public string ListenerName { get; }
    public IPAddress? RemoteIp { get; }
    public int RemotePort { get; }
    public IPAddress? LocalIp { get; }
    public bool IsUnixSocket { get; }
    public bool IsTls { get; private set; }
    /// <summary>Loopback TCP or a Unix socket: plaintext authentication is allowed.</summary>
    public bool IsLocal => IsUnixSocket || (RemoteIp != null && IPAddress.IsLoopback(RemoteIp));
    /// <summary>Safe for plaintext credentials: TLS, loopback, or a Unix socket.</summary>
    public bool IsSecure => IsTls || IsLocal;
    public string TlsProtocol => _tls?.SslProtocol.ToString() ?? "";
    public NetLimits Limits => _limits;
    public CancellationToken Stopping => _stopping;
    /// <summary>The client's address for logs, as Postfix prints it: host[ip]:port or unix.</summary>
    public string ClientDescription => IsUnixSocket ? "unix" : $"[{RemoteIp}]:{RemotePort}";

    internal LineConnection(ConnectionContext context, string listenerName, NetLimits limits, CancellationToken stopping, bool implicitTls)
    {
        _context = context;
        _limits = limits;
        _stopping = stopping;
        // One timer per connection checks for a read pending too long; each read
        // only notes when it began, so the hot path costs no timer operations.
        var period = TimeSpan.FromTicks(Math.Max(limits.IdleTimeout.Ticks / 4, TimeSpan.FromMilliseconds(20).Ticks));
        _idleTimer = new Timer(static s => ((LineConnection)s!).CheckIdle(), this, period, period);
        _stoppingRegistration = stopping.Register(static s =>
        {
            var c = (LineConnection)s!;
            c._shuttingDown = true;
            c.Input.CancelPendingRead();
        }, this);
        ListenerName = listenerName;
        Input = context.Transport.Input;
        Output = context.Transport.Output;
        IsTls = implicitTls;
        if (context.RemoteEndPoint is IPEndPoint ip)
        {
            RemoteIp = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
            RemotePort = ip.Port;
        }
        else
        {
            IsUnixSocket = true;
        }
        if (context.LocalEndPoint is IPEndPoint local) LocalIp = local.Address;
    }

    /// <summary>
    /// Reads one line without its CRLF (or bare LF). A line longer than the limit
    /// is read to its end and thrown away: the answer is TooLong.
    /// </summary>
    public async ValueTask<LineRead> ReadLineAsync()
    {
        var max = _limits.MaxLineLength;
        bool discarding = false;
        while (true)
        {
            var read = await ReadRawAsync().ConfigureAwait(false);
            if (read == null) return new LineRead(_shuttingDown ? LineStatus.Shutdown : _timedOut ? LineStatus.Timeout : LineStatus.Closed);
            var result = read.Value;
            var buffer = result.Buffer;
            var lf = buffer.PositionOf((byte)'\n');
            if (lf != null)
            {
                var lineSeq = buffer.Slice(0, lf.Value);
                var after = buffer.GetPosition(1, lf.Value);
                if (discarding)
                {
                    Input.AdvanceTo(after);
                    return new LineRead(LineStatus.TooLong);
                }
                if (lineSeq.Length > max + 1 || (lineSeq.Length == max + 1 && lineSeq.Slice(max).FirstSpan[0] != '\r'))
                {
                    Input.AdvanceTo(after);
                    return new LineRead(LineStatus.TooLong);
                }
                var text = Decode(lineSeq);
                Input.AdvanceTo(after);
                return new LineRead(LineStatus.Line, text);
            }
            if (buffer.Length > max + 1)
            {
                discarding = true;
                Input.AdvanceTo(buffer.End);
            }
            else
            {
                Input.AdvanceTo(buffer.Start, buffer.End);
            }
            if (result.IsCompleted)
                return new LineRead(LineStatus.Closed);
        }
    }

    /// <summary>
    /// One raw read for protocols that are not line-based (netstrings, literals).
    /// Null when the client closed, idled out, or the server is stopping. The
    /// caller must AdvanceTo on Input after each successful read.
    /// </summary>
    public async ValueTask<ReadResult?> ReadRawAsync()
    {
        if (_shuttingDown || _timedOut) return null;
        try
        {
            Volatile.Write(ref _readSince, Environment.TickCount64);
            var result = await Input.ReadAsync().ConfigureAwait(false);
            Volatile.Write(ref _readSince, 0);
            IdleMemoryTrim.Touch();
            if (result.IsCanceled)
            {
                if (_shuttingDown || _timedOut) return null;
                return result.Buffer.IsEmpty && result.IsCompleted ? null : result; // a stray cancel: go on
            }
            return result;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException or ObjectDisposedException)
        {
            return null;
        }
    }

    private void CheckIdle()
    {
        var since = Volatile.Read(ref _readSince);
        if (since == 0 || _timedOut) return;
        if (Environment.TickCount64 - since >= (long)_limits.IdleTimeout.TotalMilliseconds)
        {
            _timedOut = true;
            Input.CancelPendingRead();
        }
    }

    private static string Decode(ReadOnlySequence<byte> line)
    {
        if (line.Length > 0)
        {
            var last = line.Slice(line.Length - 1).FirstSpan[0];
            if (last == '\r') line = line.Slice(0, line.Length - 1);
        }
        return Encoding.UTF8.GetString(line);
    }

    /// <summary>Writes one line and CRLF, and sends it.</summary>
    public async ValueTask WriteLineAsync(string line)
    {
        BufferLine(line);
        await Output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Queues one line and CRLF without sending it (for replies to a pipelined group).</summary>
    public void BufferLine(string line)
    {
        var count = Encoding.UTF8.GetByteCount(line);
        var span = Output.GetSpan(count + 2);
        Encoding.UTF8.GetBytes(line, span);
        span[count] = (byte)'\r';
        span[count + 1] = (byte)'\n';
        Output.Advance(count + 2);
    }

    /// <summary>Queues text as it is, for protocols whose lines end in a bare LF.</summary>
    public void BufferText(string text)
    {
        var count = Encoding.UTF8.GetByteCount(text);
        Encoding.UTF8.GetBytes(text, Output.GetSpan(count));
        Output.Advance(count);
    }

    /// <summary>Queues raw bytes.</summary>
    public void BufferBytes(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Output.GetSpan(bytes.Length));
        Output.Advance(bytes.Length);
    }

    public async ValueTask FlushAsync() => await Output.FlushAsync().ConfigureAwait(false);

    /// <summary>True if the client has sent bytes that are not yet read.</summary>
    public bool HasBufferedInput()
    {
        if (!Input.TryRead(out var r)) return false;
        var any = !r.Buffer.IsEmpty;
        Input.AdvanceTo(r.Buffer.Start, r.Buffer.Start);
        return any;
    }

    /// <summary>
    /// Upgrades to TLS: first drops whatever the client pipelined after its
    /// STARTTLS command (RFC 3207 section 4.2; CVE-2011-0411) and logs it,
    /// then sends <paramref name="goAhead"/> and runs the handshake. The
    /// discard must come before the reply: once the reply is out, the next
    /// bytes are the client's TLS hello. Returns false if the handshake failed;
    /// the connection is then unusable.
    /// </summary>
    public async Task<bool> StartTlsAsync(X509Certificate2 certificate, string goAhead)
    {
        if (IsTls) throw new InvalidOperationException("TLS is already active");
        if (Input.TryRead(out var pending))
        {
            var n = pending.Buffer.Length;
            Input.AdvanceTo(pending.Buffer.End);
            if (n > 0)
                Log.Warn($"{SessionId}: {ClientDescription}: discarded {n} bytes pipelined after STARTTLS");
        }
        await WriteLineAsync(goAhead).ConfigureAwait(false);
        var transport = new DuplexPipeStream(_context.Transport.Input, _context.Transport.Output);
        var tls = new SslStream(transport, leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
            timeout.CancelAfter(_limits.IdleTimeout);
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = certificate,
                ClientCertificateRequired = false,
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
        {
            Log.Info($"{SessionId}: {ClientDescription}: TLS handshake failed: {MailLog.Safe(e.Message)}");
            await tls.DisposeAsync().ConfigureAwait(false);
            return false;
        }
        _tls = tls;
        Input = PipeReader.Create(tls, new StreamPipeReaderOptions(leaveOpen: true));
        Output = PipeWriter.Create(tls, new StreamPipeWriterOptions(leaveOpen: true));
        IsTls = true;
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _idleTimer.DisposeAsync().ConfigureAwait(false);
        _stoppingRegistration.Dispose();
        if (_tls != null)
        {
            try { await Output.CompleteAsync().ConfigureAwait(false); } catch { }
            try { await Input.CompleteAsync().ConfigureAwait(false); } catch { }
            await _tls.DisposeAsync().ConfigureAwait(false);
        }
    }
}
