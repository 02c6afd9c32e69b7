// One client connection of a line protocol (SMTP, LMTP, IMAP, POP3, the
// Dovecot auth protocol, socketmap), over System.IO.Pipelines. Everything read
// here comes from the network: lines are bounded by NetLimits.MaxLineLength,
// reads by the idle timeout, and a STARTTLS upgrade drops whatever the client
// pipelined before the handshake.
//
// Deadlines, as Postfix's smtpd_per_record_deadline and smtpd_min_data_rate:
// a whole line must arrive within the timeout (a byte now and then does not
// keep it alive); a transfer (DATA, a BDAT chunk, an IMAP command with its
// literals) starts with the timeout and earns time only at the minimum data
// rate; while the server is stressed (most of its connection slots taken) the
// timeout is the short stress timeout; a session may also have a deadline of
// its own (IMAP and POP3 before login). One process-wide watch checks them.
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
    private readonly IDuplexPipe _transport;
    private readonly NetLimits _limits;
    private readonly CancellationToken _stopping;
    private readonly CancellationTokenRegistration _stoppingRegistration;
    private readonly Func<bool>? _stressed;
    private long _readDeadline; // Environment.TickCount64 by which the pending read must end; 0 when none is pending
    private long _readStart; // when the pending read began
    private long _sessionDeadline; // 0 when none
    private long _transferDeadline; // while a transfer is on (else 0)
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

    internal LineConnection(ConnectionContext context, string listenerName, NetLimits limits, CancellationToken stopping, bool implicitTls,
        Func<bool>? stressed = null)
        : this(context.Transport, context.RemoteEndPoint, context.LocalEndPoint, listenerName, limits, stopping, implicitTls, stressed)
    {
    }

    /// <summary>A connection on <paramref name="transport"/>; a remote end point that is not an IP one is a Unix socket's.</summary>
    internal LineConnection(IDuplexPipe transport, EndPoint? remote, EndPoint? local, string listenerName, NetLimits limits, CancellationToken stopping,
        bool implicitTls, Func<bool>? stressed = null)
    {
        _transport = transport;
        _limits = limits;
        _stopping = stopping;
        _stressed = stressed;
        DeadlineWatch.Add(this, TimeSpan.FromTicks(Math.Min(limits.IdleTimeout.Ticks, limits.StressTimeout.Ticks)));
        _stoppingRegistration = stopping.Register(static s =>
        {
            var c = (LineConnection)s!;
            c._shuttingDown = true;
            c.Input.CancelPendingRead();
        }, this);
        ListenerName = listenerName;
        Input = transport.Input;
        Output = transport.Output;
        IsTls = implicitTls;
        if (remote is IPEndPoint ip)
        {
            RemoteIp = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
            RemotePort = ip.Port;
        }
        else
        {
            IsUnixSocket = true;
        }
        if (local is IPEndPoint localIp) LocalIp = localIp.Address;
    }

    /// <summary>
    /// Reads one line without its CRLF (or bare LF). A line longer than the limit
    /// is read to its end and thrown away: the answer is TooLong.
    /// </summary>
    public async ValueTask<LineRead> ReadLineAsync()
    {
        var max = _limits.MaxLineLength;
        bool discarding = false;
        long deadline = Environment.TickCount64 + (long)Timeout.TotalMilliseconds; // for the whole line
        while (true)
        {
            var read = await ReadCoreAsync(deadline).ConfigureAwait(false);
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
    public ValueTask<ReadResult?> ReadRawAsync()
    {
        var transfer = Volatile.Read(ref _transferDeadline);
        return ReadCoreAsync(transfer != 0 ? transfer : Environment.TickCount64 + (long)Timeout.TotalMilliseconds);
    }

    /// <summary>The timeout now: the stress timeout while most connection slots are taken.</summary>
    public TimeSpan Timeout => Stressed ? _limits.StressTimeout : _limits.IdleTimeout;

    private bool Stressed => StressApplies && _stressed?.Invoke() == true && _limits.StressTimeout < _limits.IdleTimeout;

    /// <summary>
    /// Does the stress timeout apply to this session? Yes by default; IMAP turns it off at login,
    /// so that a logged-in client's IDLE is not cut short when strangers fill the slots.
    /// </summary>
    public bool StressApplies { get; set; } = true;

    /// <summary>
    /// Starts a transfer (DATA, a BDAT chunk, an IMAP command and its literals): its reads share one
    /// deadline, which <see cref="Credit"/> extends as bytes arrive, at NetLimits.MinDataRate.
    /// </summary>
    public void BeginTransfer() => Volatile.Write(ref _transferDeadline, Environment.TickCount64 + (long)Timeout.TotalMilliseconds);

    /// <summary><paramref name="bytes"/> of the transfer arrived: the deadline moves on by their time at the minimum rate, at most to a full timeout from now.</summary>
    public void Credit(long bytes)
    {
        var deadline = Volatile.Read(ref _transferDeadline);
        if (deadline == 0 || bytes <= 0) return;
        var earned = deadline + bytes * 1000 / Math.Max(1, _limits.MinDataRate);
        Volatile.Write(ref _transferDeadline, Math.Min(earned, Environment.TickCount64 + (long)Timeout.TotalMilliseconds));
    }

    /// <summary>Starts a transfer unless one is on.</summary>
    public void BeginTransferOnce()
    {
        if (Volatile.Read(ref _transferDeadline) == 0) BeginTransfer();
    }

    public void EndTransfer() => Volatile.Write(ref _transferDeadline, 0);

    /// <summary>The session must end by then, whatever it does (IMAP and POP3 before login); null clears it.</summary>
    public void SetSessionDeadline(TimeSpan? after) =>
        Volatile.Write(ref _sessionDeadline, after is { } a ? Environment.TickCount64 + (long)a.TotalMilliseconds : 0);

    /// <summary>
    /// Has the client closed its side with nothing left unread? Looks without consuming: a
    /// server asks before it commits what the client can no longer be told about.
    /// </summary>
    public bool ClientClosed()
    {
        if (!Input.TryRead(out var r)) return false;
        var closed = r.IsCompleted && r.Buffer.IsEmpty;
        Input.AdvanceTo(r.Buffer.Start);
        return closed;
    }

    /// <summary>Did the session end by a deadline (rather than the client closing)?</summary>
    public bool TimedOut => _timedOut;

    private async ValueTask<ReadResult?> ReadCoreAsync(long deadline)
    {
        if (_shuttingDown || _timedOut) return null;
        try
        {
            Volatile.Write(ref _readStart, Environment.TickCount64);
            Volatile.Write(ref _readDeadline, deadline);
            var result = await Input.ReadAsync().ConfigureAwait(false);
            Volatile.Write(ref _readDeadline, 0);
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
            if (e is InflateLimitException) Log.Warn($"{SessionId}: {ClientDescription}: {e.Message}: connection ended");
            return null;
        }
    }

    /// <summary>Called by the watch: ends a read past its deadline, or a session past its own.</summary>
    internal void CheckDeadline(long now)
    {
        if (_timedOut) return;
        var read = Volatile.Read(ref _readDeadline);
        var session = Volatile.Read(ref _sessionDeadline);
        // Stress that began during a read shortens it too: the slots already held are freed.
        var stressedOut = read != 0 && Stressed && now - Volatile.Read(ref _readStart) >= (long)_limits.StressTimeout.TotalMilliseconds;
        if ((read != 0 && now >= read) || (session != 0 && now >= session) || stressedOut)
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

    /// <summary>Queues " n" for each number: a long list (a SEARCH or SORT of a large mailbox) without making it a string first.</summary>
    public void BufferNumbers(IEnumerable<uint> numbers)
    {
        foreach (var n in numbers)
        {
            var span = Output.GetSpan(11);
            span[0] = (byte)' ';
            n.TryFormat(span[1..], out int written, default, System.Globalization.CultureInfo.InvariantCulture);
            Output.Advance(written + 1);
        }
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
        var transport = new DuplexPipeStream(_transport.Input, _transport.Output);
        var tls = new SslStream(transport, leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
            timeout.CancelAfter(Timeout);
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

    private DeflateLayer? _deflate;

    /// <summary>Whether the connection is compressed (COMPRESS=DEFLATE).</summary>
    public bool IsCompressed => _deflate != null;

    /// <summary>
    /// Sends <paramref name="goAhead"/> as it is, then carries both directions as raw deflate
    /// (RFC 4978 3): what the client sent after its command is the start of its compressed stream.
    /// </summary>
    public async Task StartCompressionAsync(string goAhead)
    {
        if (_deflate != null) throw new InvalidOperationException("already compressed");
        byte[] pending = [];
        if (Input.TryRead(out var read))
        {
            pending = read.Buffer.ToArray();
            Input.AdvanceTo(read.Buffer.End);
        }
        await WriteLineAsync(goAhead).ConfigureAwait(false);
        Stream transport = _tls != null ? _tls : new DuplexPipeStream(_transport.Input, _transport.Output);
        _deflate = new DeflateLayer(transport, pending);
        Input = PipeReader.Create(_deflate.Reading, new StreamPipeReaderOptions(leaveOpen: true));
        Output = PipeWriter.Create(_deflate.Writing, new StreamPipeWriterOptions(leaveOpen: true));
    }

    public async ValueTask DisposeAsync()
    {
        DeadlineWatch.Remove(this);
        _stoppingRegistration.Dispose();
        if (_deflate != null)
        {
            try { await Output.CompleteAsync().ConfigureAwait(false); } catch { }
            try { await Input.CompleteAsync().ConfigureAwait(false); } catch { }
            await _deflate.DisposeAsync().ConfigureAwait(false);
        }
        if (_tls != null)
        {
            try { await Output.CompleteAsync().ConfigureAwait(false); } catch { }
            try { await Input.CompleteAsync().ConfigureAwait(false); } catch { }
            await _tls.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>
/// One timer for all connections of the process: it runs only while there are connections (until the first tick without), at a
/// quarter of the shortest timeout (at most once a second), and ends reads past their deadline.
/// Reads note their deadline in a field, so the hot path costs no timer operations.
/// </summary>
internal static class DeadlineWatch
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<LineConnection, byte> Watched = new();
    private static readonly Lock Gate = new();
    private static Timer? _timer;
    private static long _periodMs = 1000;

    public static void Add(LineConnection conn, TimeSpan shortestTimeout)
    {
        lock (Gate)
        {
            Watched[conn] = 0;
            var period = Math.Clamp((long)shortestTimeout.TotalMilliseconds / 4, 20, 1000);
            if (_timer == null)
            {
                _periodMs = period;
                _timer = new Timer(static _ => Tick(), null, _periodMs, _periodMs);
            }
            else if (period < _periodMs)
            {
                _periodMs = period;
                _timer.Change(_periodMs, _periodMs);
            }
        }
    }

    public static void Remove(LineConnection conn) => Watched.TryRemove(conn, out _);

    private static void Tick()
    {
        var now = Environment.TickCount64;
        foreach (var conn in Watched.Keys) conn.CheckDeadline(now);
        if (!Watched.IsEmpty) return;
        // No connections at a tick: the timer stops (no wake-ups at all while idle). Stopping here
        // rather than when the last connection closes spares a process whose clients come and go
        // (a login per connection) a timer set up and torn down for each of them.
        lock (Gate)
        {
            if (!Watched.IsEmpty || _timer == null) return;
            _timer.Dispose();
            _timer = null;
        }
    }
}
