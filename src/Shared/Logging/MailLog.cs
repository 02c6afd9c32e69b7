// Logging in the style of Postfix's mail.log: one line per event,
// "Mon DD HH:MM:SS host program[pid]: SESSION: what, key=value, ...".
// Values that came from the network pass through Safe() first so that a
// client cannot forge log lines or flood the log.
using System.Text;
using NLog;
using NLog.Config;
using NLog.Targets;

namespace Mail.Shared.Logging;

public static class MailLog
{
    public const string Layout =
        "${date:format=MMM dd HH\\:mm\\:ss} ${hostname} ${gdc:item=program}[${processid}]: ${message}${onexception:inner= ${exception:format=ToString}}";

    /// <summary>The log_file value that sends the log to the system log (as Dovecot's log_path = syslog).</summary>
    public const string Syslog = "syslog";

    /// <summary>The system log's socket (a test points it elsewhere).</summary>
    public static string SyslogSocket { get; set; } = "/dev/log";

    /// <summary>
    /// Sends the program's log to the system log (facility mail) for "syslog", to a file when
    /// one is given, else to stderr (the journal under systemd). A line is written when it is logged.
    /// </summary>
    public static void Configure(string program, string? logFile, string minLevel = "Info")
    {
        GlobalDiagnosticsContext.Set("program", program);
        var config = new LoggingConfiguration();
        var level = LogLevel.FromString(minLevel);
        // The framework's own chatter (Kestrel, gRPC) is kept to warnings and worse.
        var quiet = new NullTarget("quiet");
        foreach (var noisy in new[] { "Microsoft.*", "Grpc.*", "System.*" })
            config.AddRule(LogLevel.Trace, LogLevel.Info, quiet, noisy, final: true);
        // Lines are written on the thread that logs them (one send or write each, as Postfix and
        // Dovecot do): handing each to a writer thread woke two threads per line, which cost a
        // short request (an AuthD look-up) more than the request itself.
        if (logFile == Syslog)
        {
            config.AddRule(level, LogLevel.Fatal, new SyslogTarget(SyslogSocket, program) { Layout = "${message}${onexception:inner= ${exception:format=ToString}}" });
        }
        else if (string.IsNullOrEmpty(logFile))
        {
            config.AddRule(level, LogLevel.Fatal, new ConsoleTarget("stderr") { Layout = Layout, StdErr = true });
        }
        else
        {
            // Appended by one write(2) per line into the page cache; nothing waits for the disk.
            config.AddRule(level, LogLevel.Fatal, new FileTarget("file")
            {
                FileName = logFile,
                Layout = Layout,
                KeepFileOpen = true,
                AutoFlush = true,
            });
        }
        config.AddRule(LogLevel.Error, LogLevel.Fatal, new ErrorCounter());
        LogManager.Configuration = config;
    }

    public static Logger For(string name) => LogManager.GetLogger(name);

    /// <summary>
    /// A network-supplied value made fit for one log line: control characters
    /// escaped, at most <paramref name="max"/> characters.
    /// </summary>
    public static string Safe(string? value, int max = 200)
    {
        if (string.IsNullOrEmpty(value)) return "";
        var sb = new StringBuilder(Math.Min(value.Length, max) + 8);
        foreach (var c in value)
        {
            if (sb.Length >= max) { sb.Append("..."); break; }
            if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2"));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>A short unique id for a session or queue file, as Postfix's queue ids.</summary>
    public static string NewId()
    {
        Span<byte> b = stackalloc byte[6];
        System.Security.Cryptography.RandomNumberGenerator.Fill(b);
        return Convert.ToHexString(b);
    }
}
