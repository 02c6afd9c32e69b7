using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mail.Shared.Net;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Net;

/// <summary>
/// The listener layer driven over real sockets by a tiny echo protocol:
/// "ECHO x" answers "+ x", "STARTTLS" upgrades, "TLS" says whether TLS is on.
/// </summary>
public sealed class LineListenerTests
{
    private TempDir _dir = null!;
    private X509Certificate2 _cert = null!;

    [OneTimeSetUp]
    public void MakeCertificate()
    {
        _dir = new TempDir();
        Certificates.EnsureSelfSigned(_dir["cert.pem"], _dir["key.pem"], "localhost");
        _cert = Certificates.Load(_dir["cert.pem"], _dir["key.pem"]);
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        _cert.Dispose();
        _dir.Dispose();
    }

    internal static async Task EchoSession(LineConnection c, X509Certificate2? cert)
    {
        await c.WriteLineAsync("+ ready");
        while (true)
        {
            var line = await c.ReadLineAsync();
            switch (line.Status)
            {
                case LineStatus.TooLong: await c.WriteLineAsync("- line too long"); continue;
                case LineStatus.Timeout: await c.WriteLineAsync("- idle timeout"); return;
                case LineStatus.Shutdown: await c.WriteLineAsync("- shutting down"); return;
                case LineStatus.Closed: return;
            }
            var text = line.Text;
            if (text.StartsWith("ECHO ", StringComparison.Ordinal)) await c.WriteLineAsync("+ " + text[5..]);
            else if (text == "TLS") await c.WriteLineAsync(c.IsTls ? "+ yes" : "+ no");
            else if (text == "STARTTLS")
            {
                if (cert == null || !await c.StartTlsAsync(cert, "+ go ahead")) return;
            }
            else if (text == "QUIT") { await c.WriteLineAsync("+ bye"); return; }
            else await c.WriteLineAsync("- unknown");
        }
    }

    private sealed class Server : IAsyncDisposable
    {
        public required WebApplication App { get; init; }
        public int Port { get; set; }
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    private async Task<Server> StartAsync(NetLimits limits, bool implicitTls = false, string? unixPath = null)
    {
        var port = Ports.Free();
        var gate = new ConnectionGate(limits);
        var address = unixPath != null ? ListenAddress.Parse("unix:" + unixPath) : ListenAddress.Parse($"127.0.0.1:{port}");
        var app = LineHost.Create((k, stopping) => k.ListenLines(new LineListenerOptions
        {
            Name = "echo",
            Address = address,
            ImplicitTls = implicitTls,
            Limits = limits,
            BusyReply = "- busy",
        }, gate, () => _cert, stopping, c => EchoSession(c, _cert)), TimeSpan.FromSeconds(10));
        await app.StartAsync();
        return new Server { App = app, Port = port };
    }


    private static async Task<(TcpClient, Stream, StreamReader)> ConnectAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var stream = tcp.GetStream();
        var reader = new StreamReader(stream, Encoding.UTF8, false, 1024, leaveOpen: true);
        return (tcp, stream, reader);
    }

    private static Task Send(Stream s, string text) => s.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

    [Test]
    public async Task Echoes_lines_over_tcp()
    {
        await using var server = await StartAsync(new NetLimits());
        var (tcp, s, r) = await ConnectAsync(server.Port);
        using var _ = tcp;
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
        await Send(s, "ECHO hello\r\nECHO bare-lf\nQUIT\r\n");
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ hello"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ bare-lf"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ bye"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
    }

    [Test]
    public async Task Echoes_lines_over_a_unix_socket()
    {
        using var dir = new TempDir();
        var path = dir["echo.sock"];
        await using var server = await StartAsync(new NetLimits(), unixPath: path);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        await using var s = new NetworkStream(socket);
        using var r = new StreamReader(s);
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
        await Send(s, "ECHO via unix\r\n");
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ via unix"));
    }

    [Test]
    public async Task Overlong_line_is_refused_and_the_session_goes_on()
    {
        await using var server = await StartAsync(new NetLimits { MaxLineLength = 100 });
        var (tcp, s, r) = await ConnectAsync(server.Port);
        using var _ = tcp;
        await r.ReadLineAsync();
        // 1 MiB without a line end must neither be buffered whole nor end the session.
        var big = new string('x', 1 << 20);
        await Send(s, "ECHO " + big + "\r\nECHO after\r\n");
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- line too long"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ after"));
        await Send(s, "ECHO " + new string('y', 95) + "\r\n");
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ " + new string('y', 95)));
    }

    [Test]
    public async Task Idle_client_is_disconnected()
    {
        await using var server = await StartAsync(new NetLimits { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        var (tcp, _, r) = await ConnectAsync(server.Port);
        using var __ = tcp;
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- idle timeout"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
    }

    [Test]
    public async Task Connections_per_ip_are_limited()
    {
        await using var server = await StartAsync(new NetLimits { MaxConnectionsPerIp = 2 });
        var (a, _, ra) = await ConnectAsync(server.Port);
        var (b, _, rb) = await ConnectAsync(server.Port);
        using var _a = a;
        using var _b = b;
        Assert.That(await ra.ReadLineAsync(), Is.EqualTo("+ ready"));
        Assert.That(await rb.ReadLineAsync(), Is.EqualTo("+ ready"));
        var (c, _, rc) = await ConnectAsync(server.Port);
        using (c)
        {
            Assert.That(await rc.ReadLineAsync(), Is.EqualTo("- busy"));
            Assert.That(await rc.ReadLineAsync(), Is.Null);
        }
        a.Dispose();
        // Once one slot frees, a new client is served again.
        Assert.That(await Wait.UntilAsync(async () =>
        {
            var (d, _, rd) = await ConnectAsync(server.Port);
            using (d) return await rd.ReadLineAsync() == "+ ready";
        }, TimeSpan.FromSeconds(10)), Is.True);
    }

    [Test]
    public async Task Total_connections_are_limited()
    {
        await using var server = await StartAsync(new NetLimits { MaxConnections = 1 });
        var (a, _, ra) = await ConnectAsync(server.Port);
        using var _a = a;
        Assert.That(await ra.ReadLineAsync(), Is.EqualTo("+ ready"));
        var (b, _, rb) = await ConnectAsync(server.Port);
        using var _b = b;
        Assert.That(await rb.ReadLineAsync(), Is.EqualTo("- busy"));
    }

    [Test]
    public async Task Starttls_discards_commands_pipelined_before_the_handshake()
    {
        await using var server = await StartAsync(new NetLimits { IdleTimeout = TimeSpan.FromSeconds(20) });
        // Repeated: the discard must never eat the client's TLS hello.
        for (int i = 0; i < 20; i++)
        {
            var (tcp, s, r) = await ConnectAsync(server.Port);
            using var _ = tcp;
            Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
            // The injected command arrives in the same packet as STARTTLS (CVE-2011-0411).
            await Send(s, "STARTTLS\r\nECHO injected\r\n");
            Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ go ahead"));
            using var tls = new SslStream(s, leaveInnerStreamOpen: true, (_, _, _, _) => true);
            await tls.AuthenticateAsClientAsync("localhost");
            using var tr = new StreamReader(tls);
            await Send(tls, "TLS\r\nECHO after\r\n");
            Assert.That(await tr.ReadLineAsync(), Is.EqualTo("+ yes"));
            Assert.That(await tr.ReadLineAsync(), Is.EqualTo("+ after"));
        }
    }

    [Test]
    public async Task Implicit_tls_listener_speaks_tls_from_the_first_byte()
    {
        await using var server = await StartAsync(new NetLimits(), implicitTls: true);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.Port);
        using var tls = new SslStream(tcp.GetStream(), false, (_, cert, _, _) => cert!.Subject == "CN=localhost");
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" });
        Assert.That(tls.NegotiatedApplicationProtocol.Protocol.Length, Is.EqualTo(0), "no HTTP ALPN on a mail port");
        using var r = new StreamReader(tls);
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
        await Send(tls, "TLS\r\n");
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ yes"));
    }

    [Test]
    public async Task Shutdown_tells_connected_clients_and_closes()
    {
        var server = await StartAsync(new NetLimits());
        var (tcp, _, r) = await ConnectAsync(server.Port);
        using var _ = tcp;
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ ready"));
        var stop = server.DisposeAsync().AsTask();
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- shutting down"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
        await stop;
    }

    [Test]
    public void Self_signed_certificate_names_localhost_and_is_made_once()
    {
        using var dir = new TempDir();
        Certificates.EnsureSelfSigned(dir["c.pem"], dir["k.pem"], "mail.example.org");
        var first = File.ReadAllText(dir["c.pem"]);
        Certificates.EnsureSelfSigned(dir["c.pem"], dir["k.pem"], "mail.example.org");
        Assert.That(File.ReadAllText(dir["c.pem"]), Is.EqualTo(first));
        using var cert = Certificates.Load(dir["c.pem"], dir["k.pem"]);
        Assert.That(cert.HasPrivateKey, Is.True);
        Assert.That(cert.MatchesHostname("mail.example.org"), Is.True);
        Assert.That(cert.MatchesHostname("localhost"), Is.True);
        Assert.That(File.GetUnixFileMode(dir["k.pem"]) & (UnixFileMode.OtherRead | UnixFileMode.GroupRead), Is.EqualTo(UnixFileMode.None));
    }

    [TestCase("127.0.0.1:25", true)]
    [TestCase("[::1]:587", true)]
    [TestCase("*:143", true)]
    [TestCase("unix:/run/x.sock", true)]
    [TestCase("127.0.0.1:99999", false)]
    [TestCase("localhost", false)]
    [TestCase("unix:", false)]
    public void Listen_addresses_parse(string text, bool ok) =>
        Assert.That(ListenAddress.TryParse(text, out _), Is.EqualTo(ok));
}
