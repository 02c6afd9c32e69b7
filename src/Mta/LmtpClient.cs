// The MTA's LMTP client (RFC 2033): one transaction, one reply per accepted
// recipient after the data. The stored message (LF lines) is sent with CRLF
// and dot-stuffing. Replies are read with bounded line lengths.
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mail.Mta;

internal sealed record LmtpResult(string Recipient, string Reply)
{
    public bool Ok => Reply.StartsWith('2');
    public bool Permanent => Reply.StartsWith('5');
}

internal static class LmtpClient
{
    public static async Task<List<LmtpResult>> DeliverAsync(string destination, string hostname, string sender,
        IReadOnlyList<string> recipients, Action<Stream> writeContent, CancellationToken ct)
    {
        using var socket = destination.StartsWith("unix:", StringComparison.Ordinal)
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        EndPoint ep = destination.StartsWith("unix:", StringComparison.Ordinal)
            ? new UnixDomainSocketEndPoint(destination[5..])
            : IPEndPoint.Parse(destination);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(10));
        await socket.ConnectAsync(ep, timeout.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        async Task<string> ReadReply()
        {
            while (true)
            {
                var line = await reader.ReadLineAsync(timeout.Token) ?? throw new IOException("LMTP server closed the connection");
                if (line.Length > 2048) throw new IOException("LMTP reply too long");
                if (line.Length < 4 || line[3] != '-') return line;
            }
        }
        async Task Send(string text) => await stream.WriteAsync(Encoding.UTF8.GetBytes(text), timeout.Token);
        var greeting = await ReadReply();
        if (!greeting.StartsWith("220")) throw new IOException("LMTP greeting: " + greeting);
        await Send($"LHLO {hostname}\r\n");
        if (!(await ReadReply()).StartsWith("250")) throw new IOException("LHLO refused");
        await Send($"MAIL FROM:<{sender}>\r\n");
        var mail = await ReadReply();
        if (!mail.StartsWith("250")) return recipients.Select(r => new LmtpResult(r, mail)).ToList();
        var results = new List<LmtpResult>();
        var accepted = new List<string>();
        foreach (var r in recipients)
        {
            await Send($"RCPT TO:<{r}>\r\n");
            var reply = await ReadReply();
            if (reply.StartsWith("250")) accepted.Add(r);
            else results.Add(new LmtpResult(r, reply));
        }
        if (accepted.Count == 0) { await Send("QUIT\r\n"); return results; }
        await Send("DATA\r\n");
        var data = await ReadReply();
        if (!data.StartsWith("354")) { results.AddRange(accepted.Select(r => new LmtpResult(r, data))); return results; }
        var dots = new DotStuffingStream(stream);
        writeContent(dots);
        dots.Finish();
        await stream.FlushAsync(timeout.Token);
        foreach (var r in accepted) results.Add(new LmtpResult(r, await ReadReply()));
        await Send("QUIT\r\n");
        return results;
    }

    /// <summary>LF lines in, CRLF lines out with leading dots doubled, then the final ".".</summary>
    private sealed class DotStuffingStream(Stream inner) : Mail.Shared.IO.WriteOnlyStream
    {
        private bool _atLineStart = true;
        private readonly MemoryStream _buffer = new();

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            foreach (var b in buffer)
            {
                if (_atLineStart && b == '.') _buffer.WriteByte((byte)'.');
                if (b == '\n') { _buffer.WriteByte((byte)'\r'); _buffer.WriteByte((byte)'\n'); _atLineStart = true; }
                else { _buffer.WriteByte(b); _atLineStart = false; }
                if (_buffer.Length >= 64 * 1024) Drain();
            }
        }

        private void Drain()
        {
            inner.Write(_buffer.GetBuffer(), 0, (int)_buffer.Length);
            _buffer.SetLength(0);
        }

        public void Finish()
        {
            if (!_atLineStart) { _buffer.WriteByte((byte)'\r'); _buffer.WriteByte((byte)'\n'); }
            _buffer.Write(".\r\n"u8);
            Drain();
        }

    }
}
