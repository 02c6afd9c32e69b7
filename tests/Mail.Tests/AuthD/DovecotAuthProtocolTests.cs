using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>AuthD's Dovecot auth client protocol socket, spoken by hand and by the real doveadm.</summary>
public sealed class DovecotAuthProtocolTests
{
    private AuthDServer _s = null!;

    [SetUp]
    public async Task Start()
    {
        _s = await AuthDServer.StartAsync();
        await _s.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA256-CRYPT"));
    }

    [TearDown]
    public async Task Stop() => await _s.DisposeAsync();

    private sealed class Client : IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        public StreamReader Reader { get; }
        public List<string> Handshake { get; } = [];

        public Client(string path)
        {
            _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            _socket.Connect(new UnixDomainSocketEndPoint(path));
            _stream = new NetworkStream(_socket);
            Reader = new StreamReader(_stream, Encoding.UTF8);
        }

        public async Task HandshakeAsync()
        {
            while (await Reader.ReadLineAsync() is { } line && line != "DONE") Handshake.Add(line);
            await SendAsync("VERSION\t1\t2\nCPID\t4242\n");
        }

        public Task SendAsync(string text) => _stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

        public async Task<string?> ReadAsync() => await Reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));

        public void Dispose() { _stream.Dispose(); _socket.Dispose(); }
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    [Test]
    public async Task Handshake_lists_mechanisms_and_plain_logs_in()
    {
        using var c = new Client(_s.DovecotAuthSocket);
        await c.HandshakeAsync();
        Assert.That(c.Handshake[0], Is.EqualTo("VERSION\t1\t2"));
        Assert.That(c.Handshake, Does.Contain("MECH\tPLAIN\tplaintext").And.Contain("MECH\tSCRAM-SHA-256"));
        Assert.That(c.Handshake.Any(l => l.StartsWith("SPID\t")) && c.Handshake.Any(l => l.StartsWith("CUID\t")) && c.Handshake.Any(l => l.StartsWith("COOKIE\t")));
        await c.SendAsync($"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp={B64("\0bob@example.org\0bob pass")}\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo("OK\t1\tuser=bob@example.org"));
        await c.SendAsync($"AUTH\t2\tPLAIN\tservice=smtp\tlip=127.0.0.1\trip=127.0.0.1\tresp={B64("\0bob@example.org\0wrong")}\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo("FAIL\t2\tuser=bob@example.org"));
    }

    [Test]
    public async Task Login_runs_over_cont_steps()
    {
        using var c = new Client(_s.DovecotAuthSocket);
        await c.HandshakeAsync();
        await c.SendAsync("AUTH\t7\tLOGIN\tservice=smtp\trip=127.0.0.1\tlip=127.0.0.1\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo($"CONT\t7\t{B64("Username:")}"));
        await c.SendAsync($"CONT\t7\t{B64("bob@example.org")}\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo($"CONT\t7\t{B64("Password:")}"));
        await c.SendAsync($"CONT\t7\t{B64("bob pass")}\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo("OK\t7\tuser=bob@example.org"));
    }

    [Test]
    public async Task Plaintext_from_a_remote_client_without_tls_is_refused()
    {
        using var c = new Client(_s.DovecotAuthSocket);
        await c.HandshakeAsync();
        await c.SendAsync($"AUTH\t1\tPLAIN\tservice=smtp\tlip=192.0.2.1\trip=198.51.100.9\tresp={B64("\0bob@example.org\0bob pass")}\n");
        Assert.That(await c.ReadAsync(), Does.StartWith("FAIL\t1"));
        await c.SendAsync($"AUTH\t2\tPLAIN\tservice=smtp\tlip=192.0.2.1\trip=198.51.100.9\tsecured\tresp={B64("\0bob@example.org\0bob pass")}\n");
        Assert.That(await c.ReadAsync(), Is.EqualTo("OK\t2\tuser=bob@example.org"));
    }

    [Test]
    public async Task Bad_input_gets_fail_or_a_disconnect_and_the_server_goes_on()
    {
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            await c.HandshakeAsync();
            await c.SendAsync("AUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=!!!notbase64\n");
            Assert.That(await c.ReadAsync(), Does.StartWith("FAIL\t1\treason=Invalid base64"));
            await c.SendAsync("AUTH\t2\tNO-SUCH-MECH\tservice=smtp\trip=127.0.0.1\n");
            Assert.That(await c.ReadAsync(), Does.StartWith("FAIL\t2"));
            await c.SendAsync("CONT\t99\tAAAA\n");
            Assert.That(await c.ReadAsync(), Is.Null, "CONT for an unknown id ends the connection");
        }
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            await c.HandshakeAsync();
            await c.SendAsync("AUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\t" + new string('x', 100_000) + "\n");
            Assert.That(await c.ReadAsync(), Is.Null, "an overlong line ends the connection");
        }
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            await c.HandshakeAsync();
            await c.SendAsync("HELLO\tthere\n");
            Assert.That(await c.ReadAsync(), Is.Null, "an unknown command ends the connection");
        }
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            while (await c.Reader.ReadLineAsync() != "DONE") { }
            await c.SendAsync("VERSION\t2\t0\n");
            Assert.That(await c.ReadAsync(), Is.Null, "another major version ends the connection");
        }
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            await c.HandshakeAsync();
            await c.SendAsync("AUTH\t1\tLOGIN\tservice=smtp\trip=127.0.0.1\n");
            Assert.That(await c.ReadAsync(), Does.StartWith("CONT\t1"));
            // Vanish mid-exchange.
        }
        using (var c = new Client(_s.DovecotAuthSocket))
        {
            await c.HandshakeAsync();
            await c.SendAsync($"AUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp={B64("\0bob@example.org\0bob pass")}\n");
            Assert.That(await c.ReadAsync(), Is.EqualTo("OK\t1\tuser=bob@example.org"));
        }
    }

    [Test]
    public void Doveadm_auth_test_logs_in_through_the_socket()
    {
        var doveadm = Peers.Require("doveadm");
        var ok = Run.Program(doveadm, ["auth", "test", "-a", _s.DovecotAuthSocket, "bob@example.org", "bob pass"]);
        Assert.That(ok.ExitCode, Is.EqualTo(0), ok.Stdout + ok.Stderr);
        Assert.That(ok.Stdout, Does.Contain("passdb: bob@example.org auth succeeded"));
        var bad = Run.Program(doveadm, ["auth", "test", "-a", _s.DovecotAuthSocket, "bob@example.org", "wrong"]);
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
        Assert.That(bad.Stdout + bad.Stderr, Does.Contain("auth failed"));
    }

    [Test]
    public async Task Fail2ban_filter_matches_failed_logins_and_only_those()
    {
        var regex = Peers.Require("fail2ban-regex");
        using var c = new Client(_s.DovecotAuthSocket);
        await c.HandshakeAsync();
        await c.SendAsync($"AUTH\t1\tPLAIN\tservice=smtp\trip=203.0.113.5\tsecured\tresp={B64("\0bob@example.org\0guess")}\n");
        Assert.That(await c.ReadAsync(), Does.StartWith("FAIL"));
        await c.SendAsync($"AUTH\t2\tPLAIN\tservice=smtp\trip=203.0.113.6\tsecured\tresp={B64("\0nobody@example.org\0guess")}\n");
        Assert.That(await c.ReadAsync(), Does.StartWith("FAIL"));
        await c.SendAsync($"AUTH\t3\tPLAIN\tservice=smtp\trip=203.0.113.7\tsecured\tresp={B64("\0bob@example.org\0bob pass")}\n");
        Assert.That(await c.ReadAsync(), Does.StartWith("OK"));
        _s.Log();
        using var dir = new TempDir();
        System.IO.Directory.CreateDirectory(dir["filter.d"]);
        File.Copy("/etc/fail2ban/filter.d/common.conf", dir["filter.d/common.conf"]);
        File.Copy(Path.Combine(Repo.Root, "deploy", "fail2ban", "filter.d", "mail-authd.conf"), dir["filter.d/mail-authd.conf"]);
        var r = Run.Program(regex, ["--print-all-matched", "--print-no-missed", _s.LogFile, dir["filter.d/mail-authd.conf"]]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(r.Stdout, Does.Match(@"Failregex: 2 total"), r.Stdout);
        Assert.That(r.Stdout, Does.Contain("203.0.113.5").And.Contain("203.0.113.6"));
        Assert.That(r.Stdout, Does.Not.Contain("rip=203.0.113.7"));
    }
}
