// The system log, as Postfix and Dovecot write it: one datagram per line to
// /dev/log in the BSD format (RFC 3164) with facility mail, so that rsyslog or
// journald files it in /var/log/mail.log where administrators and fail2ban
// look. A log daemon that is away (restarting) costs the lines sent meanwhile,
// never the mail daemon's progress.
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

    private readonly string _socketPath;
    private readonly string _tag;
    private Socket? _socket;

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
        var datagram = bytes.AsSpan(0, Math.Min(bytes.Length, MaxBytes));
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                _socket ??= Connect();
                _socket.Send(datagram);
                return;
            }
            catch (SocketException)
            {
                // The log daemon restarted (a new socket) or is away: connect again once, else drop the line.
                _socket?.Dispose();
                _socket = null;
            }
        }
    }

    private Socket Connect()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(_socketPath));
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
        _socket?.Dispose();
        _socket = null;
        base.CloseTarget();
    }
}
