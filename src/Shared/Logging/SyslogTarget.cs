// The system log, as Postfix and Dovecot write it: one datagram per line to
// /dev/log in the BSD format (RFC 3164) with facility mail, so that rsyslog or
// journald files it in /var/log/mail.log where administrators and fail2ban
// look. A log daemon that is away (restarting) costs the lines sent meanwhile,
// never the mail daemon's progress.
// A line is sent on the thread that logs it, without blocking, as syslog(3)
// does: no hand-over to a writer thread, which cost more than the send. When
// the log daemon's buffer is full (a burst it has not caught up with), lines
// queue, in order and up to QueueLimit, for a background task that waits for
// room; beyond that they are dropped and counted.
using System.Net.Sockets;
using System.Text;
using NLog;
using NLog.Targets;

namespace Mail.Shared.Logging;

public sealed class SyslogTarget : TargetWithLayout
{
    /// <summary>Facility mail (RFC 5424 6.2.1).</summary>
    private const int Mail = 2;
    /// <summary>rsyslog's default largest message; longer lines are cut.</summary>
    private const int MaxBytes = 8000;

    /// <summary>Lines held while the log daemon catches up; more are dropped.</summary>
    public const int QueueLimit = 10_000;

    private readonly string _socketPath;
    private readonly string _tag;
    private readonly object _gate = new();
    private readonly Queue<byte[]> _queue = new();
    private Socket? _socket;
    private bool _draining;
    private long _dropped;

    /// <summary>Lines dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public SyslogTarget(string socketPath, string program)
    {
        _socketPath = socketPath;
        _tag = $"{program}[{Environment.ProcessId}]: ";
        Name = "syslog";
    }

    /// <summary>RFC 5424 6.2.1 severities of NLog's levels.</summary>
    private static int Severity(LogLevel level) =>
        level == LogLevel.Fatal ? 2 : level == LogLevel.Error ? 3 : level == LogLevel.Warn ? 4 : level == LogLevel.Info ? 6 : 7;

    /// <summary>"&lt;PRI&gt;Mmm dd hh:mm:ss program[pid]: message": the log daemon adds the host.</summary>
    public string Format(LogEventInfo e, string message) =>
        $"<{Mail * 8 + Severity(e.Level)}>{Timestamp(e.TimeStamp.ToLocalTime())} {_tag}{message}";

    /// <summary>RFC 3164 4.1.2: "Mmm dd hh:mm:ss", the day padded with a space ("Dec  7").</summary>
    private static string Timestamp(DateTime t) =>
        t.ToString("MMM ", System.Globalization.CultureInfo.InvariantCulture) + t.Day.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(2)
        + t.ToString(" HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);

    protected override void Write(LogEventInfo logEvent)
    {
        var bytes = Encoding.UTF8.GetBytes(Format(logEvent, RenderLogEvent(Layout, logEvent)));
        if (bytes.Length > MaxBytes) bytes = bytes[..MaxBytes];
        lock (_gate)
        {
            // Behind queued lines, a line waits its turn; else it goes now unless the buffer is full.
            if (_queue.Count == 0 && Send(bytes) != SocketError.WouldBlock) return;
            if (_queue.Count >= QueueLimit) { Interlocked.Increment(ref _dropped); return; }
            _queue.Enqueue(bytes);
            if (_draining) return;
            _draining = true;
        }
        _ = Task.Run(Drain);
    }

    /// <summary>Sends the queued lines as the log daemon makes room, oldest first.</summary>
    private void Drain()
    {
        while (true)
        {
            byte[] next;
            lock (_gate)
            {
                if (!_queue.TryPeek(out next!)) { _draining = false; return; }
            }
            var sent = Send(next);
            for (int waits = 0; sent == SocketError.WouldBlock && waits < 50; waits++)
            {
                try { _socket?.Poll(100_000, SelectMode.SelectWrite); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
                sent = Send(next);
            }
            lock (_gate)
            {
                _queue.Dequeue(); // sent, or the log daemon is stuck for 5 s: the line is lost
                if (sent == SocketError.WouldBlock) Interlocked.Increment(ref _dropped);
            }
        }
    }

    /// <summary>One datagram without blocking: Success, WouldBlock (buffer full), or another error (the line is lost).</summary>
    private SocketError Send(byte[] datagram)
    {
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                _socket ??= Connect();
                _socket.Send(datagram, SocketFlags.None, out var error);
                if (error is SocketError.Success or SocketError.WouldBlock) return error;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            // The log daemon restarted (a new socket) or is away: connect again once, else drop the line.
            _socket?.Dispose();
            _socket = null;
        }
        return SocketError.NotConnected;
    }

    private Socket Connect()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(_socketPath));
            socket.Blocking = false;
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    protected override void CloseTarget()
    {
        // Queued lines get a moment to reach the log daemon.
        SpinWait.SpinUntil(() => !Volatile.Read(ref _draining), TimeSpan.FromSeconds(1));
        lock (_gate)
        {
            _socket?.Dispose();
            _socket = null;
        }
        base.CloseTarget();
    }
}
