using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using MailKit.Net.Imap;

namespace Mail.Tests.Config;

/// <summary>
/// A daemon as systemd runs it (Type=notify, WatchdogSec=, ExecReload=kill -HUP): imappopd as
/// its own process with NOTIFY_SOCKET pointing at a socket of the test's. It says READY=1 once
/// it listens, pings the watchdog, reloads its TLS certificate at SIGHUP without dropping a
/// connection, refuses a broken configuration and keeps the one it runs, and says STOPPING=1.
/// </summary>
[NonParallelizable]
public sealed class DaemonLifecycleTests
{
    private AuthDServer _authd = null!;
    private Socket _notify = null!;
    private Process? _imappopd;
    private string _config = null!;
    private int _tlsPort;

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _notify.Bind(new UnixDomainSocketEndPoint(_authd.Dir["notify"]));
        _notify.ReceiveTimeout = 30_000;
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "first.test");
        _tlsPort = Ports.Free();
        _config = _authd.Dir["imappopd.conf"];
        File.WriteAllText(_config, Config(""));
    }

    private string Config(string extra) => $"""
        imap_listen =
        imaps_listen = 127.0.0.1:{_tlsPort}
        pop3_listen =
        pop3s_listen =
        managesieve_listen =
        tls_cert = {_authd.Dir["cert.pem"]}
        tls_key = {_authd.Dir["key.pem"]}
        authd_socket = {_authd.Socket}
        log_file = {_authd.Dir["imappopd.log"]}
        {extra}
        """;

    [TearDown]
    public async Task Stop()
    {
        if (_imappopd is { HasExited: false }) { _imappopd.Kill(); _imappopd.WaitForExit(); }
        _imappopd?.Dispose();
        _notify.Dispose();
        await _authd.DisposeAsync();
    }

    private string Receive()
    {
        var buffer = new byte[4096];
        return Encoding.UTF8.GetString(buffer, 0, _notify.Receive(buffer));
    }

    /// <summary>Datagrams until one is <paramref name="state"/> (watchdog pings may come between).</summary>
    private List<string> ReceiveUntil(string state)
    {
        var seen = new List<string>();
        while (true)
        {
            var got = Receive();
            seen.Add(got);
            if (got.Split('\n').Contains(state)) return seen;
            Assert.That(seen, Has.Count.LessThan(200), $"no {state}: {string.Join(" | ", seen)}");
        }
    }

    private static void Signal(int pid, string signal) =>
        Assert.That(Run.Program("/bin/kill", ["-" + signal, pid.ToString()]).ExitCode, Is.EqualTo(0));

    /// <summary>The certificate the daemon presents to a new TLS client.</summary>
    private async Task<string> PresentedSubject()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _tlsPort);
        using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("localhost");
        return tls.RemoteCertificate!.Subject;
    }

    private string Log() => File.Exists(_authd.Dir["imappopd.log"]) ? File.ReadAllText(_authd.Dir["imappopd.log"]) : "";

    [Test]
    public async Task Notify_watchdog_reload_of_the_certificate_and_a_refused_configuration()
    {
        var psi = new ProcessStartInfo(Repo.Program("imappopd")) { ArgumentList = { "--config", _config }, UseShellExecute = false };
        psi.Environment["NOTIFY_SOCKET"] = _authd.Dir["notify"];
        psi.Environment["WATCHDOG_USEC"] = "1000000";
        _imappopd = Process.Start(psi)!;
        var pid = _imappopd.Id;

        ReceiveUntil("READY=1");
        // Ready means listening: a client is served at once.
        Assert.That(await PresentedSubject(), Is.EqualTo("CN=first.test"));
        ReceiveUntil("WATCHDOG=1");
        ReceiveUntil("WATCHDOG=1"); // and again: a timeout here fails the test

        // A session open across the reload keeps going.
        using var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync("127.0.0.1", _tlsPort, MailKit.Security.SecureSocketOptions.SslOnConnect);
        await client.AuthenticateAsync("bob@example.org", "bob pass");

        // certbot renewed the certificate: its deploy hook runs `systemctl reload`.
        File.Delete(_authd.Dir["cert.pem"]);
        File.Delete(_authd.Dir["key.pem"]);
        Certificates.EnsureSelfSigned(_authd.Dir["cert.pem"], _authd.Dir["key.pem"], "second.test");
        File.WriteAllText(_config, Config("max_connections_per_ip = 77"));
        Signal(pid, "HUP");
        var states = ReceiveUntil("READY=1");
        Assert.That(states.Any(s => s.Contains("RELOADING=1")), Is.True, string.Join(" | ", states));
        Assert.That(await PresentedSubject(), Is.EqualTo("CN=second.test"));
        await client.NoOpAsync();
        Assert.That(await Wait.UntilAsync(() => Log().Contains("in force at the next restart: max_connections_per_ip"), TimeSpan.FromSeconds(10)), Is.True, Log());

        // A configuration that does not load is refused; the running one stays.
        File.WriteAllText(_config, Config("no_such_parameter = 1"));
        Signal(pid, "HUP");
        ReceiveUntil("READY=1");
        Assert.That(await Wait.UntilAsync(() => Log().Contains("reload refused, the running configuration stays") && Log().Contains("no_such_parameter"), TimeSpan.FromSeconds(10)), Is.True, Log());
        // So is a certificate that does not load.
        File.WriteAllText(_config, Config(""));
        File.WriteAllText(_authd.Dir["cert.pem"], "not a certificate\n");
        Signal(pid, "HUP");
        ReceiveUntil("READY=1");
        Assert.That(await Wait.UntilAsync(() => System.Text.RegularExpressions.Regex.Matches(Log(), "reload refused").Count == 2, TimeSpan.FromSeconds(10)), Is.True, Log());
        Assert.That(await PresentedSubject(), Is.EqualTo("CN=second.test"));
        await client.NoOpAsync();
        Assert.That(_imappopd.HasExited, Is.False);

        Signal(pid, "TERM");
        ReceiveUntil("STOPPING=1");
        Assert.That(_imappopd.WaitForExit(30_000), Is.True);
        Assert.That(_imappopd.ExitCode, Is.EqualTo(0));
    }
}
