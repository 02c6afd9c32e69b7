// A line-protocol client for tests that speak SMTP or LMTP by hand: send raw
// bytes, read replies with a time limit.
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mail.Tests.Support;

internal sealed class Raw : IDisposable
{
    private readonly TcpClient _tcp = new();
    private NetworkStream _s = null!;
    private StreamReader _r = null!;

    public static async Task<Raw> ConnectAsync(int port)
    {
        var raw = new Raw();
        await raw._tcp.ConnectAsync(IPAddress.Loopback, port);
        raw._s = raw._tcp.GetStream();
        raw._r = new StreamReader(raw._s, Encoding.ASCII);
        return raw;
    }

    public Task Send(string text) => _s.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();
    public async Task<string?> Read() => await _r.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));

    public async Task<string> Expect(string prefix)
    {
        var line = await Read();
        Assert.That(line, Does.StartWith(prefix));
        return line!;
    }

    public async Task ExpectLast(string last)
    {
        string? line;
        do line = await Read();
        while (line != null && line.Length > 3 && line[3] == '-');
        Assert.That(line, Is.EqualTo(last));
    }

    /// <summary>
    /// Sends <paramref name="text"/> a byte at a time, one every <paramref name="pace"/>, until the server
    /// answers or closes; returns the line it sent (null if it closed) and how many bytes had gone out.
    /// </summary>
    public async Task<(string? Reply, int Sent)> Trickle(string text, TimeSpan pace)
    {
        var reply = Read();
        int sent = 0;
        foreach (var b in Encoding.ASCII.GetBytes(text))
        {
            if (await Task.WhenAny(reply, Task.Delay(pace)) == reply) break;
            try { await _s.WriteAsync(new[] { b }); } catch (IOException) { break; }
            sent++;
        }
        return (await reply, sent);
    }

    public void Dispose() => _tcp.Dispose();
}
