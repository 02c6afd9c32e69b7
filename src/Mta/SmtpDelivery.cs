// The MTA's SMTP client (RFC 5321) for mail to other domains, as Postfix's
// smtp(8): a connection is kept for a few seconds after its transaction and
// used for the next one to the same host (RSET after one that did not end in
// a delivery; a kept connection found dead before MAIL is replaced).
// EHLO (HELO when refused), STARTTLS when offered (RFC 3207; with
// smtp_tls_security_level = may an unverified certificate is accepted, as
// opportunistic TLS does; = encrypt refuses to go on without TLS), MAIL with
// SIZE when offered, one RCPT per recipient, DATA with the stored message
// sent with CRLF and dot-stuffing, QUIT. Replies are read with bounded
// lengths and a time limit. A failure before any recipient has an answer is
// thrown (the caller tries the next MX host); after that, every recipient
// gets the reply that concerns it.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Mail.Mta;

internal enum TlsLevel { None, May, Encrypt }

internal sealed class SmtpDelivery(string hostname, TlsLevel tls) : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(5);

    /// <summary>The recipients' results; whether the connection was encrypted (for the log) and the server took DSN requests (it reports success itself).</summary>
    public sealed record Outcome(List<RecipientResult> Results, bool Encrypted, bool Dsn = false);

    /// <summary>
    /// One transaction. The DSN requests of <paramref name="attributes"/> (RFC 3461: RET, ENVID,
    /// NOTIFY, ORCPT) go along when the server offers DSN; BODY=8BITMIME when it offers 8BITMIME;
    /// addresses that are not ASCII need its SMTPUTF8 (RFC 6531), or fail 5.6.7.
    /// </summary>
    public async Task<Outcome> DeliverAsync(IPEndPoint server, string serverName, string sender, IReadOnlyList<string> recipients, long size,
                                            IReadOnlyDictionary<string, string> attributes, Action<Stream> writeContent, CancellationToken ct)
    {
        // A connection kept from an earlier transaction first; one that went away while idle is replaced.
        while (TakeIdle(server) is { } cached)
        {
            try
            {
                var outcome = await TransactAsync(cached, server, serverName, sender, recipients, size, attributes, writeContent, ct);
                await KeepAsync(server, cached);
                return outcome;
            }
            catch (Exception e) when (e is IOException or SocketException && !cached.Started) { await cached.DisposeAsync(); }
            catch { await cached.DisposeAsync(); throw; }
        }
        Session session;
        try { session = await OpenAsync(server, serverName, tls, ct); }
        catch (System.Security.Authentication.AuthenticationException) when (tls == TlsLevel.May)
        {
            // Opportunistic TLS that fails is not worth a delay: again, in plain text (as Postfix does).
            session = await OpenAsync(server, serverName, TlsLevel.None, ct);
        }
        try
        {
            // A next hop that greets with our own name is ourselves: the mail would go round for ever (Postfix: "loops back to myself").
            var peerName = session.Ehlo.Lines[0].Length > 4 ? session.Ehlo.Lines[0][4..].Split(' ')[0] : "";
            if (peerName.Equals(hostname, StringComparison.OrdinalIgnoreCase))
            {
                session.Usable = false;
                return new Outcome(recipients.Select(r => new RecipientResult(r, $"554 5.4.6 mail for {r[(r.LastIndexOf('@') + 1)..]} loops back to myself")).ToList(), false);
            }
            var outcome = await TransactAsync(session, server, serverName, sender, recipients, size, attributes, writeContent, ct);
            await KeepAsync(server, session);
            session = null!;
            return outcome;
        }
        finally { if (session != null) await session.DisposeAsync(); }
    }

    /// <summary>Connected, greeted, EHLO (HELO) said, and TLS when offered and allowed.</summary>
    private async Task<Session> OpenAsync(IPEndPoint server, string serverName, TlsLevel tls, CancellationToken ct)
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connect.CancelAfter(ConnectTimeout);
                try { await socket.ConnectAsync(server, connect.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new IOException($"connect to {serverName}[{server}]: timed out"); }
                catch (SocketException e) { throw new IOException($"connect to {serverName}[{server}]: {e.Message}"); }
            }
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            var c = new Wire(stream);
            var greeting = await c.ReplyAsync(ct);
            if (!greeting.Last.StartsWith("220")) throw new IOException($"host {serverName}[{server}] refused to talk to me: {greeting.Last}");
            var ehlo = await HelloAsync(c, ct);
            bool encrypted = false;
            if (tls != TlsLevel.None && ehlo.Has("STARTTLS"))
            {
                await c.SendAsync("STARTTLS\r\n", ct);
                var go = await c.ReplyAsync(ct);
                if (go.Last.StartsWith("220"))
                {
                    var ssl = new SslStream(stream, leaveInnerStreamOpen: false, (_, _, _, _) => true); // opportunistic: not verified, as Postfix's "may" and "encrypt"
                    await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = serverName }, ct);
                    stream = ssl;
                    c = new Wire(stream);
                    encrypted = true;
                    ehlo = await HelloAsync(c, ct);
                }
                else if (tls == TlsLevel.Encrypt) throw new IOException($"TLS is required, but {serverName}[{server}] refused STARTTLS: {go.Last}");
            }
            else if (tls == TlsLevel.Encrypt) throw new IOException($"TLS is required, but was not offered by host {serverName}[{server}]");
            return new Session(stream, c, ehlo, encrypted);
        }
        catch { socket.Dispose(); throw; }
    }

    private async Task<Outcome> TransactAsync(Session session, IPEndPoint server, string serverName, string sender, IReadOnlyList<string> recipients, long size,
                                              IReadOnlyDictionary<string, string> attributes, Action<Stream> writeContent, CancellationToken ct)
    {
        var (c, ehlo, encrypted) = (session.Wire, session.Ehlo, session.Encrypted);
        session.Started = false;
        var results = new List<RecipientResult>();
        bool utf8 = !Ascii.IsValid(sender) || recipients.Any(r => !Ascii.IsValid(r));
        if (utf8 && !ehlo.Has("SMTPUTF8"))
        {
            results.AddRange(recipients.Select(r => new RecipientResult(r, $"550 5.6.7 SMTPUTF8 is required, but was not offered by host {serverName}[{server.Address}]")));
            return new Outcome(results, encrypted);
        }
        bool dsn = ehlo.Has("DSN");
        var mailParams = new StringBuilder();
        if (ehlo.Has("SIZE")) mailParams.Append(" SIZE=").Append(size);
        if (ehlo.Has("8BITMIME")) mailParams.Append(" BODY=8BITMIME");
        if (utf8) mailParams.Append(" SMTPUTF8");
        if (dsn && attributes.TryGetValue("ret", out var ret)) mailParams.Append(" RET=").Append(ret);
        if (dsn && attributes.TryGetValue("envid", out var envid)) mailParams.Append(" ENVID=").Append(envid);
        await c.SendAsync($"MAIL FROM:<{sender}>{mailParams}\r\n", ct);
        var mail = await c.ReplyAsync(ct);
        session.Started = true;
        if (!mail.Last.StartsWith("250"))
        {
            results.AddRange(recipients.Select(r => new RecipientResult(r, mail.Last)));
            await ResetAsync(session, ct);
            return new Outcome(results, encrypted, dsn);
        }
        var accepted = new List<string>();
        foreach (var r in recipients)
        {
            var rcptParams = "";
            if (dsn && attributes.TryGetValue(Dsn.NotifyKey(r), out var notify)) rcptParams += " NOTIFY=" + notify;
            if (dsn && attributes.TryGetValue(Dsn.OrcptKey(r), out var orcpt)) rcptParams += " ORCPT=" + orcpt;
            await c.SendAsync($"RCPT TO:<{r}>{rcptParams}\r\n", ct);
            var reply = await c.ReplyAsync(ct);
            if (reply.Last.StartsWith("25")) accepted.Add(r);
            else results.Add(new RecipientResult(r, reply.Last));
        }
        if (accepted.Count == 0) { await ResetAsync(session, ct); return new Outcome(results, encrypted, dsn); }
        await c.SendAsync("DATA\r\n", ct);
        var data = await c.ReplyAsync(ct);
        if (!data.Last.StartsWith("354"))
        {
            results.AddRange(accepted.Select(r => new RecipientResult(r, data.Last)));
            await ResetAsync(session, ct);
            return new Outcome(results, encrypted, dsn);
        }
        var dots = new DotStuffingStream(session.Stream);
        writeContent(dots);
        dots.Finish();
        await session.Stream.FlushAsync(ct);
        var done = await c.ReplyAsync(ct);
        results.AddRange(accepted.Select(r => new RecipientResult(r, done.Last)));
        if (!done.Last.StartsWith('2')) await ResetAsync(session, ct);
        return new Outcome(results, encrypted, dsn);
    }

    /// <summary>RSET after a transaction that did not end in a delivery; a connection that does not take it is not kept.</summary>
    private static async Task ResetAsync(Session session, CancellationToken ct)
    {
        try
        {
            await session.Wire.SendAsync("RSET\r\n", ct);
            if (!(await session.Wire.ReplyAsync(ct)).Last.StartsWith("250")) session.Usable = false;
        }
        catch (IOException) { session.Usable = false; }
    }

    // ---- connections kept for reuse (as Postfix's smtp connection cache) ----

    private static readonly TimeSpan IdleLimit = TimeSpan.FromSeconds(5);
    private const int MaxIdlePerHost = 20;
    private readonly ConcurrentDictionary<IPEndPoint, ConcurrentQueue<Session>> _idle = new();

    /// <summary>A kept connection to <paramref name="server"/>, the oldest first; those kept too long are closed on the way.</summary>
    private Session? TakeIdle(IPEndPoint server)
    {
        if (!_idle.TryGetValue(server, out var queue)) return null;
        while (queue.TryDequeue(out var s))
        {
            if (DateTime.UtcNow - s.LastUsed <= IdleLimit) return s;
            _ = s.DisposeAsync().AsTask();
        }
        return null;
    }

    private async Task KeepAsync(IPEndPoint server, Session session)
    {
        var queue = _idle.GetOrAdd(server, _ => new ConcurrentQueue<Session>());
        if (!session.Usable || queue.Count >= MaxIdlePerHost) { await session.DisposeAsync(); return; }
        session.LastUsed = DateTime.UtcNow;
        queue.Enqueue(session);
        // Connections kept too long for any host are closed now rather than left to the other side's timeout
        // (each queue is in the order its connections were kept, so the expired ones are at its head).
        foreach (var (_, other) in _idle)
            while (other.TryPeek(out var oldest) && DateTime.UtcNow - oldest.LastUsed > IdleLimit && other.TryDequeue(out var old))
                await old.DisposeAsync();
    }

    /// <summary>Says QUIT on every kept connection.</summary>
    public void Dispose()
    {
        foreach (var (_, queue) in _idle)
            while (queue.TryDequeue(out var s)) s.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>One connection: its stream (plain or TLS), reply reader, EHLO reply and state.</summary>
    private sealed class Session(Stream stream, Wire wire, Reply ehlo, bool encrypted) : IAsyncDisposable
    {
        public Stream Stream { get; } = stream;
        public Wire Wire { get; } = wire;
        public Reply Ehlo { get; } = ehlo;
        public bool Encrypted { get; } = encrypted;
        public DateTime LastUsed { get; set; } = DateTime.UtcNow;
        /// <summary>The current transaction got an answer to MAIL: a failure now is not a stale connection's.</summary>
        public bool Started { get; set; }
        public bool Usable { get; set; } = true;

        public async ValueTask DisposeAsync()
        {
            try
            {
                using var quit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await Wire.SendAsync("QUIT\r\n", quit.Token);
                await Wire.ReplyAsync(quit.Token);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException) { }
            await Stream.DisposeAsync();
        }
    }

    private async Task<Reply> HelloAsync(Wire c, CancellationToken ct)
    {
        await c.SendAsync($"EHLO {hostname}\r\n", ct);
        var ehlo = await c.ReplyAsync(ct);
        if (ehlo.Last.StartsWith("250")) return ehlo;
        await c.SendAsync($"HELO {hostname}\r\n", ct);
        var helo = await c.ReplyAsync(ct);
        if (!helo.Last.StartsWith("250")) throw new IOException("HELO refused: " + helo.Last);
        return helo;
    }

    /// <summary>A reply: its lines (continuations included) and its last line.</summary>
    private sealed record Reply(List<string> Lines)
    {
        public string Last => Lines[^1];

        /// <summary>Does an EHLO reply announce this extension?</summary>
        public bool Has(string keyword) => Lines.Skip(1).Any(l => l.Length > 4 &&
            (l.AsSpan(4).Equals(keyword, StringComparison.OrdinalIgnoreCase) || l.AsSpan(4).StartsWith(keyword + " ", StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>Commands out, replies in: lines of at most 2,048 bytes, at most 100 to a reply, each within the command time limit.</summary>
    private sealed class Wire(Stream stream)
    {
        private readonly byte[] _buffer = new byte[4096];
        private int _start, _end;

        public async Task SendAsync(string text, CancellationToken ct) => await stream.WriteAsync(Encoding.UTF8.GetBytes(text), ct);

        public async Task<Reply> ReplyAsync(CancellationToken ct)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(CommandTimeout);
            var lines = new List<string>();
            try
            {
                while (lines.Count < 100)
                {
                    var line = await LineAsync(limit.Token);
                    lines.Add(line);
                    if (line.Length < 4 || line[3] != '-') return new Reply(lines);
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new IOException("timed out waiting for the server's reply"); }
            throw new IOException("reply of more than 100 lines");
        }

        private async Task<string> LineAsync(CancellationToken ct)
        {
            while (true)
            {
                int lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (lf >= 0)
                {
                    var line = Encoding.UTF8.GetString(_buffer, _start, lf - _start).TrimEnd('\r');
                    _start = lf + 1;
                    return line;
                }
                if (_start > 0) { Array.Copy(_buffer, _start, _buffer, 0, _end - _start); _end -= _start; _start = 0; }
                if (_end == 2048 || _end == _buffer.Length) throw new IOException("reply line too long");
                int n = await stream.ReadAsync(_buffer.AsMemory(_end), ct);
                if (n == 0) throw new IOException("lost connection with the server");
                _end += n;
            }
        }
    }
}
