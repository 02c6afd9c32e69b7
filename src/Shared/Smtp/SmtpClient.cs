// The one SMTP and LMTP client (RFC 5321, RFC 2033), for mtad's deliveries to
// an LMTP server and to other domains' hosts, and for sendmail's hand-over:
// EHLO (HELO when refused) or LHLO; STARTTLS when offered and allowed (RFC
// 3207; opportunistic, as Postfix's "may" and "encrypt", the certificate is
// not verified); MAIL with SIZE, BODY, SMTPUTF8 and the DSN parameters when
// offered; the envelope pipelined when PIPELINING is offered (RFC 2920); the
// content in BDAT chunks when CHUNKING is offered (RFC 3030), else DATA with
// dot-stuffing (WireEncoder: the queue's CRLF lines pass as they are). LMTP
// gives one reply per accepted recipient after the content. Every reply is
// read with bounded lines, a bounded count and a time limit: what comes from
// the server is untrusted. A failure before the server answered MAIL is
// thrown (the caller tries another host); after that, every recipient gets
// the reply that concerns it. Connections are kept a few seconds and used for
// the next transaction to the same server (RSET after one that did not end
// in a delivery; a kept connection found dead before MAIL is replaced), as
// Postfix's connection cache. A relay host that wants a login gets AUTH PLAIN
// (or LOGIN) after STARTTLS, never before: credentials are not sent in clear;
// a refused login is an SmtpLoginException with the server's reply.
using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Mail.Shared.Smtp;

public enum ClientProtocol { Smtp, Lmtp }

public enum TlsLevel { None, May, Encrypt }

/// <summary>A recipient's outcome at an LMTP or SMTP server: the reply that concerns it.</summary>
public sealed record RecipientResult(string Recipient, string Reply)
{
    public bool Ok => Reply.StartsWith('2');
    public bool Permanent => Reply.StartsWith('5');

    /// <summary>The reply's enhanced status code (RFC 3463), or the class of its basic code ("4.0.0").</summary>
    public string Dsn => Reply.Length > 8 && char.IsAsciiDigit(Reply[4]) ? Reply.Split(' ')[1] : Reply[..1] + ".0.0";
}

/// <summary>The names under which a queued message keeps its DSN requests (RFC 3461), to be passed on.</summary>
public static class DsnAttributes
{
    public const string Ret = "ret", EnvId = "envid";
    public static string Notify(string rcpt) => "notify:" + rcpt;
    public static string Orcpt(string rcpt) => "orcpt:" + rcpt;
}

/// <summary>A server to talk to: its name for the log and the greeting check, and where it listens.</summary>
public sealed record ServerAddress(string Name, EndPoint EndPoint)
{
    public override string ToString() => EndPoint is IPEndPoint ip ? $"{Name}[{ip.Address}]:{ip.Port}" : Name;

    /// <summary>
    /// An LMTP destination as Postfix writes it: unix:PATH, inet:host:port, host:port or
    /// [address]:port. A host name is resolved when connecting; null when the text is none of these.
    /// </summary>
    public static Func<CancellationToken, Task<ServerAddress>>? ParseDestination(string text)
    {
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text[5..];
            if (path.Length == 0 || path.Contains('\0')) return null;
            var unix = new ServerAddress(text, new UnixDomainSocketEndPoint(path));
            return _ => Task.FromResult(unix);
        }
        if (text.StartsWith("inet:", StringComparison.Ordinal)) text = text[5..];
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            return null;
        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (IPAddress.TryParse(host, out var address))
        {
            var fixedAddress = new ServerAddress(host, new IPEndPoint(address, port));
            return _ => Task.FromResult(fixedAddress);
        }
        if (Uri.CheckHostName(host) != UriHostNameType.Dns) return null;
        return async ct =>
        {
            IPAddress[] found;
            try { found = await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false); }
            catch (SocketException e) { throw new IOException($"cannot resolve {host}: {e.Message}"); }
            var first = found.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? found.FirstOrDefault()
                        ?? throw new IOException($"{host} has no address");
            return new ServerAddress(host, new IPEndPoint(first, port));
        };
    }
}

/// <summary>One message to hand over: the envelope, its DSN requests and its content as stored (CRLF lines; a bare LF gains its CR on the way).</summary>
public sealed record OutgoingMessage(string Sender, IReadOnlyList<string> Recipients, long Size, IReadOnlyDictionary<string, string> Attributes,
    Func<CancellationToken, IAsyncEnumerable<ReadOnlyMemory<byte>>> Content);

/// <summary>A user name and password for a relay host (Postfix's smtp_sasl_password_maps).</summary>
public sealed record SmtpLogin(string User, string Password)
{
    public override string ToString() => User; // never the password
}

/// <summary>The server refused the login, or could not be logged in to safely: the message waits (a temporary failure).</summary>
public sealed class SmtpLoginException(string message) : IOException(message);

public sealed class SmtpClient(ClientProtocol protocol, string hostname, TlsLevel tls) : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(5);
    /// <summary>Content bytes per BDAT chunk (before the line-end conversion).</summary>
    private const int ChunkSize = 64 * 1024;
    private bool Lmtp => protocol == ClientProtocol.Lmtp;

    /// <summary>A server that greets with our own name is taken for ourselves (not for a hand-over on this host).</summary>
    public bool DetectLoops { get; init; } = true;

    /// <summary>The recipients' results; whether the connection was encrypted (for the log) and the server took DSN requests (it reports success itself).</summary>
    public sealed record Outcome(List<RecipientResult> Results, bool Encrypted, bool Dsn = false);

    /// <summary>
    /// One transaction. The DSN requests of the message's attributes (RFC 3461: RET, ENVID,
    /// NOTIFY, ORCPT) go along when the server offers DSN; BODY=8BITMIME when it offers 8BITMIME;
    /// addresses that are not ASCII need its SMTPUTF8 (RFC 6531), or fail 5.6.7.
    /// </summary>
    public async Task<Outcome> DeliverAsync(ServerAddress server, OutgoingMessage message, CancellationToken ct, SmtpLogin? login = null)
    {
        var key = (server.EndPoint, login?.User ?? "");
        while (TakeIdle(key) is { } cached)
        {
            try
            {
                var outcome = await TransactAsync(cached, server, message, ct).ConfigureAwait(false);
                await KeepAsync(key, cached).ConfigureAwait(false);
                return outcome;
            }
            catch (Exception e) when (e is IOException or SocketException && !cached.Started) { await cached.DisposeAsync().ConfigureAwait(false); }
            catch { await cached.DisposeAsync().ConfigureAwait(false); throw; }
        }
        Session session;
        try { session = await OpenAsync(server, login != null && tls == TlsLevel.May ? TlsLevel.Encrypt : tls, ct, login).ConfigureAwait(false); }
        catch (System.Security.Authentication.AuthenticationException) when (tls == TlsLevel.May && login == null)
        {
            // Opportunistic TLS that fails is not worth a delay: again, in plain text (as Postfix does).
            session = await OpenAsync(server, TlsLevel.None, ct).ConfigureAwait(false);
        }
        try
        {
            // A next hop that greets with our own name is ourselves: the mail would go round for ever (Postfix: "loops back to myself").
            var peerName = session.Ehlo.Lines[0].Length > 4 ? session.Ehlo.Lines[0][4..].Split(' ')[0] : "";
            if (!Lmtp && DetectLoops && peerName.Equals(hostname, StringComparison.OrdinalIgnoreCase))
            {
                session.Usable = false;
                return new Outcome(message.Recipients.Select(r => new RecipientResult(r, $"554 5.4.6 mail for {r[(r.LastIndexOf('@') + 1)..]} loops back to myself")).ToList(), false);
            }
            var outcome = await TransactAsync(session, server, message, ct).ConfigureAwait(false);
            await KeepAsync(key, session).ConfigureAwait(false);
            session = null!;
            return outcome;
        }
        finally { if (session != null) await session.DisposeAsync().ConfigureAwait(false); }
    }

    /// <summary>Connected, greeted, EHLO (HELO) or LHLO said, and TLS when offered and allowed.</summary>
    private async Task<Session> OpenAsync(ServerAddress server, TlsLevel level, CancellationToken ct, SmtpLogin? login = null)
    {
        var endPoint = server.EndPoint;
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connect.CancelAfter(ConnectTimeout);
                try { await socket.ConnectAsync(endPoint, connect.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new IOException($"connect to {server}: timed out"); }
                catch (SocketException e) { throw new IOException($"connect to {server}: {e.Message}"); }
            }
            var wire = new Wire(new NetworkStream(socket, ownsSocket: true));
            var greeting = await wire.ReplyAsync(ct).ConfigureAwait(false);
            if (!greeting.Last.StartsWith("220")) throw new IOException($"host {server} refused to talk to me: {greeting.Last}");
            var ehlo = await HelloAsync(wire, ct).ConfigureAwait(false);
            bool encrypted = false;
            if (!Lmtp && level != TlsLevel.None && ehlo.Has("STARTTLS"))
            {
                wire.Command("STARTTLS");
                await wire.FlushAsync(ct).ConfigureAwait(false);
                var go = await wire.ReplyAsync(ct).ConfigureAwait(false);
                if (go.Last.StartsWith("220"))
                {
                    var ssl = new SslStream(wire.Stream, leaveInnerStreamOpen: false, (_, _, _, _) => true); // opportunistic: not verified, as Postfix's "may" and "encrypt"
                    await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = server.Name }, ct).ConfigureAwait(false);
                    wire = new Wire(ssl); // RFC 3207 4.2: nothing said before TLS counts after it
                    encrypted = true;
                    ehlo = await HelloAsync(wire, ct).ConfigureAwait(false);
                }
                else if (level == TlsLevel.Encrypt) throw new IOException($"TLS is required, but {server} refused STARTTLS: {go.Last}");
            }
            else if (!Lmtp && level == TlsLevel.Encrypt)
                throw login != null ? new SmtpLoginException($"cannot log in to {server} as {login.User}: it offers no STARTTLS, and the password is not sent in clear")
                    : new IOException($"TLS is required, but was not offered by host {server}");
            if (login != null) await LoginAsync(wire, ehlo, server, login, ct).ConfigureAwait(false);
            return new Session(wire, ehlo, encrypted);
        }
        catch { socket.Dispose(); throw; }
    }

    /// <summary>RFC 4954 AUTH, PLAIN (RFC 4616) when offered, else LOGIN; over TLS only (the caller made sure).</summary>
    private static async Task LoginAsync(Wire wire, Reply ehlo, ServerAddress server, SmtpLogin login, CancellationToken ct)
    {
        var mechanisms = ehlo.Lines.Skip(1).Select(l => l.Length > 4 ? l[4..] : "")
            .Where(l => l.StartsWith("AUTH ", StringComparison.OrdinalIgnoreCase) || l.StartsWith("AUTH=", StringComparison.OrdinalIgnoreCase))
            .SelectMany(l => l[5..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(m => m.ToUpperInvariant()).ToHashSet();
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
        Reply reply;
        if (mechanisms.Contains("PLAIN"))
        {
            wire.Command("AUTH PLAIN " + B64("\0" + login.User + "\0" + login.Password));
            await wire.FlushAsync(ct).ConfigureAwait(false);
            reply = await wire.ReplyAsync(ct).ConfigureAwait(false);
        }
        else if (mechanisms.Contains("LOGIN"))
        {
            wire.Command("AUTH LOGIN");
            await wire.FlushAsync(ct).ConfigureAwait(false);
            reply = await wire.ReplyAsync(ct).ConfigureAwait(false);
            foreach (var answer in new[] { login.User, login.Password })
            {
                if (!reply.Last.StartsWith("334")) break;
                wire.Command(B64(answer));
                await wire.FlushAsync(ct).ConfigureAwait(false);
                reply = await wire.ReplyAsync(ct).ConfigureAwait(false);
            }
        }
        else throw new SmtpLoginException($"cannot log in to {server} as {login.User}: it offers no AUTH PLAIN or LOGIN");
        if (!reply.Last.StartsWith("235")) throw new SmtpLoginException($"SASL login to {server} as {login.User} failed: {reply.Last}");
    }

    private async Task<Reply> HelloAsync(Wire wire, CancellationToken ct)
    {
        wire.Command((Lmtp ? "LHLO " : "EHLO ") + hostname);
        await wire.FlushAsync(ct).ConfigureAwait(false);
        var ehlo = await wire.ReplyAsync(ct).ConfigureAwait(false);
        if (ehlo.Last.StartsWith("250")) return ehlo;
        if (Lmtp) throw new IOException("LHLO refused: " + ehlo.Last);
        wire.Command("HELO " + hostname);
        await wire.FlushAsync(ct).ConfigureAwait(false);
        var helo = await wire.ReplyAsync(ct).ConfigureAwait(false);
        if (!helo.Last.StartsWith("250")) throw new IOException("HELO refused: " + helo.Last);
        return helo;
    }

    private async Task<Outcome> TransactAsync(Session session, ServerAddress server, OutgoingMessage message, CancellationToken ct)
    {
        var (wire, ehlo, encrypted) = (session.Wire, session.Ehlo, session.Encrypted);
        session.Started = false;
        var recipients = message.Recipients;
        var attributes = message.Attributes;
        var results = new List<RecipientResult>();
        bool utf8 = !Ascii.IsValid(message.Sender) || recipients.Any(r => !Ascii.IsValid(r));
        if (utf8 && !ehlo.Has("SMTPUTF8"))
        {
            results.AddRange(recipients.Select(r => new RecipientResult(r, $"550 5.6.7 SMTPUTF8 is required, but was not offered by host {server}")));
            return new Outcome(results, encrypted);
        }
        bool dsn = ehlo.Has("DSN");
        bool pipelining = ehlo.Has("PIPELINING");
        bool chunking = ehlo.Has("CHUNKING");
        var mail = new StringBuilder("MAIL FROM:<").Append(message.Sender).Append('>');
        if (ehlo.Has("SIZE")) mail.Append(" SIZE=").Append(message.Size);
        if (ehlo.Has("8BITMIME")) mail.Append(" BODY=8BITMIME");
        if (utf8) mail.Append(" SMTPUTF8");
        if (dsn && attributes.TryGetValue(DsnAttributes.Ret, out var ret)) mail.Append(" RET=").Append(ret);
        if (dsn && attributes.TryGetValue(DsnAttributes.EnvId, out var envid)) mail.Append(" ENVID=").Append(envid);

        // The envelope: with PIPELINING, MAIL, every RCPT and (without CHUNKING) DATA go in one
        // write and their replies are read in order (RFC 2920 3.1); otherwise one at a time.
        var commands = new List<string>(recipients.Count + 2) { mail.ToString() };
        foreach (var r in recipients)
        {
            var rcpt = "RCPT TO:<" + r + ">";
            if (dsn && attributes.TryGetValue(DsnAttributes.Notify(r), out var notify)) rcpt += " NOTIFY=" + notify;
            if (dsn && attributes.TryGetValue(DsnAttributes.Orcpt(r), out var orcpt)) rcpt += " ORCPT=" + orcpt;
            commands.Add(rcpt);
        }
        if (!chunking) commands.Add("DATA");
        var replies = new List<Reply>(commands.Count);
        if (pipelining)
        {
            foreach (var c in commands) wire.Command(c);
            await wire.FlushAsync(ct).ConfigureAwait(false);
            for (int i = 0; i < commands.Count; i++)
            {
                replies.Add(await wire.ReplyAsync(ct).ConfigureAwait(false));
                if (i == 0) session.Started = true;
            }
        }
        else
        {
            for (int i = 0; i < commands.Count; i++)
            {
                wire.Command(commands[i]);
                await wire.FlushAsync(ct).ConfigureAwait(false);
                var reply = await wire.ReplyAsync(ct).ConfigureAwait(false);
                replies.Add(reply);
                if (i == 0) session.Started = true;
                if (i == 0 && !reply.Last.StartsWith("250")) break;
                if (i == recipients.Count && !replies.Skip(1).Any(x => x.Last.StartsWith("25"))) break; // no recipient: no DATA
            }
        }
        if (!replies[0].Last.StartsWith("250"))
        {
            results.AddRange(recipients.Select(r => new RecipientResult(r, replies[0].Last)));
            if (pipelining && !chunking && replies[^1].Last.StartsWith("354")) await SendContentAsync(wire, null, ct, dataEnd: true).ConfigureAwait(false);
            await ResetAsync(session, ct).ConfigureAwait(false);
            return new Outcome(results, encrypted, dsn);
        }
        var accepted = new List<string>();
        for (int i = 0; i < recipients.Count; i++)
        {
            var reply = replies[i + 1];
            if (reply.Last.StartsWith("25")) accepted.Add(recipients[i]);
            else results.Add(new RecipientResult(recipients[i], reply.Last));
        }
        if (!chunking && replies.Count == commands.Count && replies[^1].Last.StartsWith("354") && accepted.Count == 0)
        {
            // A server that said 354 with no recipient (RFC 2920 3.1 forbids it): an empty message ends the DATA.
            await SendContentAsync(wire, null, ct, dataEnd: true).ConfigureAwait(false);
            await wire.ReplyAsync(ct).ConfigureAwait(false);
        }
        if (accepted.Count == 0) { await ResetAsync(session, ct).ConfigureAwait(false); return new Outcome(results, encrypted, dsn); }

        List<Reply> finals;
        if (chunking)
        {
            var chunks = await SendContentAsync(wire, message, ct, dataEnd: false).ConfigureAwait(false);
            // One reply per chunk; after the last, LMTP gives one per accepted recipient.
            Reply? failedChunk = null;
            for (int i = 0; i < chunks - 1; i++)
            {
                var r = await wire.ReplyAsync(ct).ConfigureAwait(false);
                if (!r.Last.StartsWith('2')) failedChunk ??= r;
            }
            finals = await FinalRepliesAsync(wire, accepted.Count, ct).ConfigureAwait(false);
            if (failedChunk != null) finals = [.. accepted.Select(_ => failedChunk)];
        }
        else
        {
            var data = replies[^1];
            if (!data.Last.StartsWith("354"))
            {
                results.AddRange(accepted.Select(r => new RecipientResult(r, data.Last)));
                await ResetAsync(session, ct).ConfigureAwait(false);
                return new Outcome(results, encrypted, dsn);
            }
            await SendContentAsync(wire, message, ct, dataEnd: true).ConfigureAwait(false);
            finals = await FinalRepliesAsync(wire, accepted.Count, ct).ConfigureAwait(false);
        }
        for (int i = 0; i < accepted.Count; i++) results.Add(new RecipientResult(accepted[i], finals[i].Last));
        if (!Lmtp && !finals[0].Last.StartsWith('2')) await ResetAsync(session, ct).ConfigureAwait(false);
        return new Outcome(results, encrypted, dsn);
    }

    /// <summary>After the content: LMTP's reply per accepted recipient (RFC 2033 4.2), SMTP's one for all.</summary>
    private async Task<List<Reply>> FinalRepliesAsync(Wire wire, int accepted, CancellationToken ct)
    {
        if (!Lmtp) return [.. Enumerable.Repeat(await wire.ReplyAsync(ct).ConfigureAwait(false), accepted)];
        var replies = new List<Reply>(accepted);
        for (int i = 0; i < accepted; i++) replies.Add(await wire.ReplyAsync(ct).ConfigureAwait(false));
        return replies;
    }

    /// <summary>
    /// Sends the content converted once into the wire form: as DATA (dot-stuffed, then ".")
    /// or as BDAT chunks, each with its command line in the same write. No message: an empty
    /// DATA. Returns the number of BDAT chunks sent.
    /// </summary>
    private static async Task<int> SendContentAsync(Wire wire, OutgoingMessage? message, CancellationToken ct, bool dataEnd)
    {
        const int Head = 32; // room for "BDAT n LAST\r\n" in front of the chunk
        var buffer = ArrayPool<byte>.Shared.Rent(Head + WireEncoder.MaxOutput(ChunkSize) + 8);
        var encoder = new WireEncoder(dotStuff: dataEnd);
        int chunks = 0;
        int length = 0; // encoded bytes waiting at buffer[Head..]
        try
        {
            async Task Send(bool last)
            {
                if (dataEnd)
                {
                    if (last)
                    {
                        length += encoder.Finish(buffer.AsSpan(Head + length));
                        ".\r\n"u8.CopyTo(buffer.AsSpan(Head + length));
                        length += 3;
                    }
                    await wire.WriteAsync(buffer.AsMemory(Head, length), ct).ConfigureAwait(false);
                }
                else
                {
                    if (last) length += encoder.Finish(buffer.AsSpan(Head + length));
                    var command = Encoding.ASCII.GetBytes(last ? $"BDAT {length} LAST\r\n" : $"BDAT {length}\r\n");
                    command.CopyTo(buffer.AsSpan(Head - command.Length));
                    await wire.WriteAsync(buffer.AsMemory(Head - command.Length, command.Length + length), ct).ConfigureAwait(false);
                    chunks++;
                }
                length = 0;
            }
            if (message != null)
                await foreach (var piece in message.Content(ct).ConfigureAwait(false))
                {
                    var rest = piece.Span.Length;
                    int offset = 0;
                    while (rest > 0)
                    {
                        int n = Math.Min(rest, ChunkSize - length / 2);
                        length += encoder.Encode(piece.Span.Slice(offset, n), buffer.AsSpan(Head + length));
                        offset += n;
                        rest -= n;
                        if (length >= ChunkSize) await Send(last: false).ConfigureAwait(false);
                    }
                }
            await Send(last: true).ConfigureAwait(false);
            await wire.FlushAsync(ct).ConfigureAwait(false);
            return chunks;
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>RSET after a transaction that did not end in a delivery; a connection that does not take it is not kept.</summary>
    private static async Task ResetAsync(Session session, CancellationToken ct)
    {
        try
        {
            session.Wire.Command("RSET");
            await session.Wire.FlushAsync(ct).ConfigureAwait(false);
            if (!(await session.Wire.ReplyAsync(ct).ConfigureAwait(false)).Last.StartsWith("250")) session.Usable = false;
        }
        catch (IOException) { session.Usable = false; }
    }

    // ---- connections kept for reuse (as Postfix's connection cache) ----

    private static readonly TimeSpan IdleLimit = TimeSpan.FromSeconds(5);
    private const int MaxIdlePerServer = 20;
    // By server and the user logged in as (a connection logged in as one user never carries another's mail).
    private readonly ConcurrentDictionary<(EndPoint, string), ConcurrentQueue<Session>> _idle = new();

    /// <summary>A kept connection to the server (as the user), the oldest first; those kept too long are closed on the way.</summary>
    private Session? TakeIdle((EndPoint, string) key)
    {
        if (!_idle.TryGetValue(key, out var queue)) return null;
        while (queue.TryDequeue(out var s))
        {
            if (DateTime.UtcNow - s.LastUsed <= IdleLimit) return s;
            _ = s.DisposeAsync().AsTask();
        }
        return null;
    }

    private async Task KeepAsync((EndPoint, string) key, Session session)
    {
        var queue = _idle.GetOrAdd(key, _ => new ConcurrentQueue<Session>());
        if (!session.Usable || queue.Count >= MaxIdlePerServer) { await session.DisposeAsync().ConfigureAwait(false); return; }
        session.LastUsed = DateTime.UtcNow;
        queue.Enqueue(session);
        // Connections kept too long for any server are closed now rather than left to the other side's timeout
        // (each queue is in the order its connections were kept, so the expired ones are at its head).
        foreach (var (_, other) in _idle)
            while (other.TryPeek(out var oldest) && DateTime.UtcNow - oldest.LastUsed > IdleLimit && other.TryDequeue(out var old))
                await old.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Says QUIT on every kept connection.</summary>
    public void Dispose()
    {
        foreach (var (_, queue) in _idle)
            while (queue.TryDequeue(out var s)) s.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
    }

    /// <summary>One connection: its wire, EHLO reply and state.</summary>
    private sealed class Session(Wire wire, Reply ehlo, bool encrypted) : IAsyncDisposable
    {
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
                Wire.Command("QUIT");
                await Wire.FlushAsync(quit.Token).ConfigureAwait(false);
                await Wire.ReplyAsync(quit.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException) { }
            await Wire.Stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A reply: its lines (continuations included) and its last line.</summary>
    private sealed record Reply(List<string> Lines)
    {
        public string Last => Lines[^1];

        /// <summary>Does an EHLO reply announce this extension?</summary>
        public bool Has(string keyword) => Lines.Skip(1).Any(l => l.Length > 4 &&
            (l.AsSpan(4).Equals(keyword, StringComparison.OrdinalIgnoreCase) || l.AsSpan(4).StartsWith(keyword + " ", StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>
    /// Commands out (gathered until a flush: a pipelined group is one write), replies in: lines
    /// of at most 2,048 bytes, at most 100 to a reply, each reply within the command time limit.
    /// </summary>
    private sealed class Wire(Stream stream)
    {
        private readonly byte[] _buffer = new byte[4096];
        private int _start, _end;
        private readonly ArrayBufferWriter<byte> _out = new(1024);
        public Stream Stream => stream;

        public void Command(string line)
        {
            var span = _out.GetSpan(Encoding.UTF8.GetMaxByteCount(line.Length) + 2);
            int n = Encoding.UTF8.GetBytes(line, span);
            span[n] = (byte)'\r';
            span[n + 1] = (byte)'\n';
            _out.Advance(n + 2);
        }

        /// <summary>Sends the gathered commands, then <paramref name="bytes"/>, in one write when they fit.</summary>
        public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
        {
            await FlushAsync(ct).ConfigureAwait(false);
            await stream.WriteAsync(bytes, ct).ConfigureAwait(false);
        }

        public async Task FlushAsync(CancellationToken ct)
        {
            if (_out.WrittenCount == 0) return;
            await stream.WriteAsync(_out.WrittenMemory, ct).ConfigureAwait(false);
            _out.ResetWrittenCount();
            await stream.FlushAsync(ct).ConfigureAwait(false);
        }

        public async Task<Reply> ReplyAsync(CancellationToken ct)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(CommandTimeout);
            var lines = new List<string>();
            try
            {
                while (lines.Count < 100)
                {
                    var line = await LineAsync(limit.Token).ConfigureAwait(false);
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
                if (_end >= 2048) throw new IOException("reply line too long");
                int n = await stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
                if (n == 0) throw new IOException("lost connection with the server");
                _end += n;
            }
        }
    }
}
