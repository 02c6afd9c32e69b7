using System.Net.Sockets;
using System.Text;
using Mail.Shared.Logging;

namespace Mail.Tests.Config;

/// <summary>
/// log_file = syslog: each line one datagram to the system log's socket, in the BSD format with
/// facility mail, as rsyslog files it into /var/log/mail.log. A stand-in log daemon listens on a
/// socket of the test's own.
/// </summary>
[NonParallelizable]
public sealed class SyslogTests
{
    private string _dir = null!;
    private Socket _logd = null!;

    [SetUp]
    public void Listen()
    {
        _dir = Directory.CreateTempSubdirectory("syslog-").FullName;
        _logd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _logd.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, "log")));
        _logd.ReceiveTimeout = 10_000;
        MailLog.SyslogSocket = Path.Combine(_dir, "log");
    }

    [TearDown]
    public void Stop()
    {
        MailLog.Configure("tests", null);
        MailLog.SyslogSocket = "/dev/log";
        _logd.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string Receive()
    {
        var buffer = new byte[16384];
        int n = _logd.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Test]
    public void Lines_go_to_the_system_log_with_facility_mail_and_their_severity()
    {
        MailLog.Configure("lmtpd", MailLog.Syslog);
        var log = MailLog.For("lmtp");
        log.Info("4A1B2C: to=<bob@example.org>, status=sent");
        log.Warn("authd unreachable");
        log.Error("disk full");
        var info = Receive();
        // <22>: mail (2) * 8 + info (6); the day padded as RFC 3164 writes it; the log daemon adds the host.
        Assert.That(info, Does.Match($@"^<22>[A-Z][a-z]{{2}} [ 1-3]\d \d\d:\d\d:\d\d lmtpd\[{Environment.ProcessId}\]: 4A1B2C: to=<bob@example\.org>, status=sent$"));
        Assert.That(Receive(), Does.StartWith("<20>").And.EndWith(": authd unreachable"));
        Assert.That(Receive(), Does.StartWith("<19>").And.EndWith(": disk full"));
    }

    [Test]
    public void A_log_daemon_that_is_away_costs_lines_not_the_program()
    {
        MailLog.Configure("mtad", MailLog.Syslog);
        var log = MailLog.For("smtp");
        _logd.Dispose();
        File.Delete(MailLog.SyslogSocket);
        Assert.DoesNotThrow(() => { for (int i = 0; i < 100; i++) log.Info("while the log daemon restarts " + i); NLog.LogManager.Flush(); });
        // It is back (a new socket at the same path): lines arrive again.
        _logd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _logd.Bind(new UnixDomainSocketEndPoint(MailLog.SyslogSocket));
        _logd.ReceiveTimeout = 10_000;
        log.Info("after the restart");
        Assert.That(Receive(), Does.EndWith(": after the restart"));
    }

    [Test]
    public void A_log_daemon_behind_gets_every_line_in_order_without_holding_up_the_program()
    {
        MailLog.Configure("authd", MailLog.Syslog);
        var log = MailLog.For("auth");
        // The log daemon reads nothing for now: its socket's buffer fills after some hundred lines.
        const int lines = 3000;
        var logging = Task.Run(() => { for (int i = 0; i < lines; i++) log.Info($"line {i} " + new string('x', 200)); });
        // The program is not held up by the full buffer: all 3000 calls return before anything is read
        // (a blocking send would wait for a read that never comes).
        Assert.That(logging.Wait(TimeSpan.FromSeconds(60)), Is.True, "logging waited for the log daemon");
        // Every line arrives, oldest first, once the log daemon reads again.
        for (int i = 0; i < lines; i++)
            Assert.That(Receive(), Does.Contain($": line {i} x"), $"line {i}");
    }
}
