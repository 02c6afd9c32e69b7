using System.Net.Sockets;
using System.Text;
using Mail.Shared.Net;
using Mail.Tests.Support;

namespace Mail.Tests.Net;

/// <summary>
/// The Unix-socket listener AuthD serves Dovecot and Postfix on (its own accept loop and its socket
/// pipes), driven over a real socket by LineListenerTests' echo protocol: bytes that come one at a
/// time, lines far longer than the limit, many lines in one send, a client that idles or half-closes,
/// and a stop.
/// </summary>
public sealed class UnixLineListenerTests
{
    private sealed class Server : IDisposable
    {
        public required UnixLineListener Listener { get; init; }
        public required CancellationTokenSource Stopping { get; init; }
        public required TempDir Dir { get; init; }
        public string Path => Dir["echo.sock"];

        public void Stop()
        {
            Stopping.Cancel();
            Listener.WaitStopped(TimeSpan.FromSeconds(10));
        }

        public void Dispose()
        {
            if (!Stopping.IsCancellationRequested) Stop();
            Stopping.Dispose();
            Dir.Dispose();
        }
    }

    private static Server Start(NetLimits limits)
    {
        var dir = new TempDir();
        var stopping = new CancellationTokenSource();
        var listener = UnixLineListener.Bind(new LineListenerOptions { Name = "echo", Address = ListenAddress.Parse("unix:" + dir["echo.sock"]), Limits = limits },
            UnixFileMode.UserRead | UnixFileMode.UserWrite, new ConnectionGate(limits), c => LineListenerTests.EchoSession(c, null));
        listener.Start(stopping.Token);
        return new Server { Listener = listener, Stopping = stopping, Dir = dir };
    }

    private static async Task<(Socket, NetworkStream, StreamReader)> ConnectAsync(Server server)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(server.Path));
        var stream = new NetworkStream(socket, ownsSocket: true);
        var reader = new StreamReader(stream, Encoding.UTF8, false, 1024, leaveOpen: true);
        Assert.That(await reader.ReadLineAsync(), Is.EqualTo("+ ready"));
        return (socket, stream, reader);
    }

    [Test]
    public async Task Lines_sent_a_byte_at_a_time_are_echoed_in_order()
    {
        using var server = Start(new NetLimits());
        var (_, s, r) = await ConnectAsync(server);
        await using var __ = s;
        foreach (var b in Encoding.UTF8.GetBytes("ECHO one\r\nECHO twø\nECHO three\r\n"))
        {
            await s.WriteAsync(new[] { b });
            await s.FlushAsync();
        }
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ one"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ twø"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ three"));
    }

    [Test]
    public async Task Many_lines_in_one_send_are_all_answered_in_order()
    {
        using var server = Start(new NetLimits());
        var (_, s, r) = await ConnectAsync(server);
        await using var __ = s;
        // 300 lines of 3000 bytes: they straddle every read and the buffer's end again and again.
        var lines = Enumerable.Range(0, 300).Select(i => $"{i:D4}" + new string((char)('a' + i % 26), 2996)).ToList();
        var send = s.WriteAsync(Encoding.ASCII.GetBytes(string.Concat(lines.Select(l => "ECHO " + l + "\r\n")))).AsTask();
        foreach (var line in lines) Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ " + line));
        await send;
    }

    [Test]
    public async Task An_overlong_line_is_refused_and_the_session_goes_on()
    {
        using var server = Start(new NetLimits { MaxLineLength = 100 });
        var (_, s, r) = await ConnectAsync(server);
        await using var __ = s;
        await s.WriteAsync(Encoding.ASCII.GetBytes("ECHO " + new string('x', 1 << 20) + "\r\nECHO after\r\n"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- line too long"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ after"));
        await s.WriteAsync(Encoding.ASCII.GetBytes("ECHO " + new string('y', 95) + "\r\n"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ " + new string('y', 95)));
    }

    [Test]
    public async Task An_idle_client_is_told_and_disconnected()
    {
        using var server = Start(new NetLimits { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        var (_, s, r) = await ConnectAsync(server);
        await using var __ = s;
        await s.WriteAsync(Encoding.ASCII.GetBytes("ECHO half a li"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- idle timeout"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
    }

    [Test]
    public async Task A_client_that_closes_its_side_still_gets_its_answers()
    {
        using var server = Start(new NetLimits());
        var (socket, s, r) = await ConnectAsync(server);
        await using var __ = s;
        await s.WriteAsync(Encoding.ASCII.GetBytes("ECHO last\r\nECHO words\r\n"));
        socket.Shutdown(SocketShutdown.Send);
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ last"));
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("+ words"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
    }

    [Test]
    public async Task Stopping_tells_connected_clients_and_removes_the_socket()
    {
        using var server = Start(new NetLimits());
        var (_, s, r) = await ConnectAsync(server);
        await using var __ = s;
        var stop = Task.Run(server.Stop);
        Assert.That(await r.ReadLineAsync(), Is.EqualTo("- shutting down"));
        Assert.That(await r.ReadLineAsync(), Is.Null);
        await stop;
        Assert.That(File.Exists(server.Path), Is.False);
    }
}
