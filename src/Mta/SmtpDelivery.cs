// The MTA's SMTP client (RFC 5321) for mail to other domains: one
// transaction on one connection to one host, as Postfix's smtp(8) makes it.
// EHLO (HELO when refused), STARTTLS when offered (RFC 3207; with
// smtp_tls_security_level = may an unverified certificate is accepted, as
// opportunistic TLS does; = encrypt refuses to go on without TLS), MAIL with
// SIZE when offered, one RCPT per recipient, DATA with the stored message
// sent with CRLF and dot-stuffing, QUIT. Replies are read with bounded
// lengths and a time limit. A failure before any recipient has an answer is
// thrown (the caller tries the next MX host); after that, every recipient
// gets the reply that concerns it.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Mail.Mta;

internal enum TlsLevel { None, May, Encrypt }

internal sealed class SmtpDelivery(string hostname, TlsLevel tls)
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(5);

    /// <summary>The recipients' results; whether the connection was encrypted (for the log) and the server took DSN requests (it reports success itself).</summary>
    public sealed record Outcome(List<LmtpResult> Results, bool Encrypted, bool Dsn = false);

    /// <summary>
    /// One transaction. The DSN requests of <paramref name="attributes"/> (RFC 3461: RET, ENVID,
    /// NOTIFY, ORCPT) go along when the server offers DSN; BODY=8BITMIME when it offers 8BITMIME;
    /// addresses that are not ASCII need its SMTPUTF8 (RFC 6531), or fail 5.6.7.
    /// </summary>
    public async Task<Outcome> DeliverAsync(IPEndPoint server, string serverName, string sender, IReadOnlyList<string> recipients, long size,
                                            IReadOnlyDictionary<string, string> attributes, Action<Stream> writeContent, CancellationToken ct)
    {
        try { return await TransactAsync(server, serverName, sender, recipients, size, attributes, writeContent, tls, ct); }
        catch (System.Security.Authentication.AuthenticationException) when (tls == TlsLevel.May)
        {
            // Opportunistic TLS that fails is not worth a delay: again, in plain text (as Postfix does).
            return await TransactAsync(server, serverName, sender, recipients, size, attributes, writeContent, TlsLevel.None, ct);
        }
    }

    private async Task<Outcome> TransactAsync(IPEndPoint server, string serverName, string sender, IReadOnlyList<string> recipients, long size,
                                              IReadOnlyDictionary<string, string> attributes, Action<Stream> writeContent, TlsLevel tls, CancellationToken ct)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            connect.CancelAfter(ConnectTimeout);
            try { await socket.ConnectAsync(server, connect.Token); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new IOException($"connect to {serverName}[{server}]: timed out"); }
            catch (SocketException e) { throw new IOException($"connect to {serverName}[{server}]: {e.Message}"); }
        }
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        var c = new Wire(stream);
        try
        {
            var greeting = await c.ReplyAsync(ct);
            if (!greeting.Last.StartsWith("220")) throw new IOException($"host {serverName}[{server}] refused to talk to me: {greeting.Last}");
            var ehlo = await HelloAsync(c, ct);
            // A next hop that greets with our own name is ourselves: the mail would go round for ever (Postfix: "loops back to myself").
            var peerName = ehlo.Lines[0].Length > 4 ? ehlo.Lines[0][4..].Split(' ')[0] : "";
            if (peerName.Equals(hostname, StringComparison.OrdinalIgnoreCase))
            {
                await QuitAsync(c, ct);
                return new Outcome(recipients.Select(r => new LmtpResult(r, $"554 5.4.6 mail for {r[(r.LastIndexOf('@') + 1)..]} loops back to myself")).ToList(), false);
            }
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

            var results = new List<LmtpResult>();
            bool utf8 = !Ascii.IsValid(sender) || recipients.Any(r => !Ascii.IsValid(r));
            if (utf8 && !ehlo.Has("SMTPUTF8"))
            {
                results.AddRange(recipients.Select(r => new LmtpResult(r, $"550 5.6.7 SMTPUTF8 is required, but was not offered by host {serverName}[{server.Address}]")));
                await QuitAsync(c, ct);
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
            if (!mail.Last.StartsWith("250"))
            {
                results.AddRange(recipients.Select(r => new LmtpResult(r, mail.Last)));
                await QuitAsync(c, ct);
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
                else results.Add(new LmtpResult(r, reply.Last));
            }
            if (accepted.Count > 0)
            {
                await c.SendAsync("DATA\r\n", ct);
                var data = await c.ReplyAsync(ct);
                if (!data.Last.StartsWith("354")) results.AddRange(accepted.Select(r => new LmtpResult(r, data.Last)));
                else
                {
                    var dots = new DotStuffingStream(stream);
                    writeContent(dots);
                    dots.Finish();
                    await stream.FlushAsync(ct);
                    var done = await c.ReplyAsync(ct);
                    results.AddRange(accepted.Select(r => new LmtpResult(r, done.Last)));
                }
            }
            await QuitAsync(c, ct);
            return new Outcome(results, encrypted, dsn);
        }
        finally { await stream.DisposeAsync(); }
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

    private static async Task QuitAsync(Wire c, CancellationToken ct)
    {
        try
        {
            await c.SendAsync("QUIT\r\n", ct);
            await c.ReplyAsync(ct);
        }
        catch (IOException) { } // the transaction's outcome stands
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
