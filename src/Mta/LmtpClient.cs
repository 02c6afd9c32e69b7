// The MTA's LMTP client (RFC 2033): one reply per accepted recipient after
// the data. The stored message (LF lines) is sent with CRLF and
// dot-stuffing. Replies are read with bounded line lengths. Connections are
// kept for reuse (RSET between transactions) for a few seconds, as Postfix's
// LMTP connection cache does; a cached connection that turns out to be dead
// before the transaction began is replaced by a fresh one.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mail.Mta;

/// <summary>A recipient's outcome at an LMTP or SMTP server: the reply that concerns it.</summary>
internal sealed record RecipientResult(string Recipient, string Reply)
{
    public bool Ok => Reply.StartsWith('2');
    public bool Permanent => Reply.StartsWith('5');

    /// <summary>The reply's enhanced status code (RFC 3463), or the class of its basic code ("4.0.0").</summary>
    public string Dsn => Reply.Length > 8 && char.IsAsciiDigit(Reply[4]) ? Reply.Split(' ')[1] : Reply[..1] + ".0.0";
}

internal sealed class LmtpClient(string destination, string hostname) : IDisposable
{
    private static readonly TimeSpan IdleLimit = TimeSpan.FromSeconds(5);
    private readonly ConcurrentBag<Connection> _idle = [];

    public async Task<List<RecipientResult>> DeliverAsync(string sender, IReadOnlyList<string> recipients, Action<Stream> writeContent, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(10));
        while (_idle.TryTake(out var cached))
        {
            if (DateTime.UtcNow - cached.LastUsed > IdleLimit) { cached.Dispose(); continue; }
            List<RecipientResult>? results;
            try { results = await cached.TransactAsync(sender, recipients, writeContent, timeout.Token); }
            catch (Exception e) when (e is IOException or SocketException && !cached.Started)
            {
                cached.Dispose(); // it went away while idle: nothing was said to it
                continue;
            }
            catch { cached.Dispose(); throw; }
            Keep(cached);
            return results;
        }
        var fresh = await Connection.OpenAsync(destination, hostname, timeout.Token);
        try
        {
            var results = await fresh.TransactAsync(sender, recipients, writeContent, timeout.Token);
            Keep(fresh);
            return results;
        }
        catch { fresh.Dispose(); throw; }
    }

    private void Keep(Connection c)
    {
        if (c.Usable) _idle.Add(c);
        else c.Dispose();
    }

    public void Dispose()
    {
        while (_idle.TryTake(out var c)) c.Dispose();
    }

    private sealed class Connection : IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly StreamReader _reader;
        public DateTime LastUsed { get; private set; } = DateTime.UtcNow;
        /// <summary>The current transaction got past its first command: a failure now is the server's answer, not a stale connection.</summary>
        public bool Started { get; private set; }
        public bool Usable { get; private set; } = true;

        private Connection(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
            _reader = new StreamReader(_stream, Encoding.UTF8, false, 4096);
        }

        public static async Task<Connection> OpenAsync(string destination, string hostname, CancellationToken ct)
        {
            var unix = destination.StartsWith("unix:", StringComparison.Ordinal);
            var socket = unix ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(unix ? new UnixDomainSocketEndPoint(destination[5..]) : IPEndPoint.Parse(destination), ct);
            }
            catch { socket.Dispose(); throw; }
            var c = new Connection(socket);
            try
            {
                var greeting = await c.ReadReplyAsync(ct);
                if (!greeting.StartsWith("220")) throw new IOException("LMTP greeting: " + greeting);
                await c.SendAsync($"LHLO {hostname}\r\n", ct);
                var lhlo = await c.ReadReplyAsync(ct);
                if (!lhlo.StartsWith("250")) throw new IOException("LHLO refused: " + lhlo);
                return c;
            }
            catch { c.Dispose(); throw; }
        }

        private async Task<string> ReadReplyAsync(CancellationToken ct)
        {
            while (true)
            {
                var line = await _reader.ReadLineAsync(ct) ?? throw new IOException("LMTP server closed the connection");
                if (line.Length > 2048) throw new IOException("LMTP reply too long");
                if (line.Length < 4 || line[3] != '-') return line;
            }
        }

        private async Task SendAsync(string text, CancellationToken ct) => await _stream.WriteAsync(Encoding.UTF8.GetBytes(text), ct);

        public async Task<List<RecipientResult>> TransactAsync(string sender, IReadOnlyList<string> recipients, Action<Stream> writeContent, CancellationToken ct)
        {
            Started = false;
            await SendAsync($"MAIL FROM:<{sender}>\r\n", ct);
            var mail = await ReadReplyAsync(ct);
            Started = true;
            LastUsed = DateTime.UtcNow;
            if (!mail.StartsWith("250"))
            {
                Usable = false;
                return recipients.Select(r => new RecipientResult(r, mail)).ToList();
            }
            var results = new List<RecipientResult>();
            var accepted = new List<string>();
            foreach (var r in recipients)
            {
                await SendAsync($"RCPT TO:<{r}>\r\n", ct);
                var reply = await ReadReplyAsync(ct);
                if (reply.StartsWith("250")) accepted.Add(r);
                else results.Add(new RecipientResult(r, reply));
            }
            if (accepted.Count == 0) return await ResetAsync(results, ct);
            await SendAsync("DATA\r\n", ct);
            var data = await ReadReplyAsync(ct);
            if (!data.StartsWith("354"))
            {
                results.AddRange(accepted.Select(r => new RecipientResult(r, data)));
                return await ResetAsync(results, ct);
            }
            var dots = new DotStuffingStream(_stream);
            writeContent(dots);
            dots.Finish();
            await _stream.FlushAsync(ct);
            foreach (var r in accepted) results.Add(new RecipientResult(r, await ReadReplyAsync(ct)));
            LastUsed = DateTime.UtcNow;
            return results;
        }

        private async Task<List<RecipientResult>> ResetAsync(List<RecipientResult> results, CancellationToken ct)
        {
            await SendAsync("RSET\r\n", ct);
            if (!(await ReadReplyAsync(ct)).StartsWith("250")) Usable = false;
            return results;
        }

        public void Dispose()
        {
            try
            {
                if (Usable && _socket.Connected) _socket.Send("QUIT\r\n"u8, SocketFlags.None);
            }
            catch (SocketException) { }
            _reader.Dispose();
            _stream.Dispose();
        }
    }
}
