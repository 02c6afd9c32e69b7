// One SMTP session (RFC 5321) on the MX, submission or submissions port.
// Relay control as Postfix's permit_mynetworks, permit_sasl_authenticated,
// reject_unauth_destination; AUTH through AuthD, offered only under TLS or
// on loopback; on submission the sender must belong to the logged-in user.
// DATA ends only at CRLF.CRLF and a bare LF or CR is refused (SMTP
// smuggling). "250 queued" is said after the queue file and its directory
// are fsynced.
using System.Buffers;
using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.Smtp;
using Mail.Queue;
using NLog;

namespace Mail.Mta;

internal enum SmtpPort { Mx, Submission, Submissions }

internal sealed record SmtpOptions(string Hostname, long MaxMessageSize, int MaxRecipients, IReadOnlyList<(IPAddress Net, int Bits)> MyNetworks);

internal sealed class SmtpSession(LineConnection conn, SmtpPort port, AuthClient auth, RecipientCache recipients, Spool spool, QueueManager queue,
    Func<X509Certificate2?> certificate, SmtpOptions options) : SmtpServerSession<SmtpSession>(conn)
{
    private static readonly Logger SmtpdLog = MailLog.For("smtpd");
    protected override Logger Log => SmtpdLog;
    protected override string Protocol => "SMTP";
    protected override string Greeting => $"220 {options.Hostname} ESMTP";
    protected override string ConnectDetail => $" port={port}";
    protected override bool Greeted => _helo != null;
    protected override string HeloFirst => "503 5.5.1 Error: send HELO/EHLO first";
    protected override FrozenDictionary<string, SmtpCommand<SmtpSession>> Commands => Table;
    protected override void Ended() => _bdat?.Dispose();

    /// <summary>The commands (RFC 5321 4.1, 3207, 4954, 3030), as Postfix's smtpd_cmd_table.</summary>
    private static readonly FrozenDictionary<string, SmtpCommand<SmtpSession>> Table = new SmtpCommand<SmtpSession>[]
    {
        new("EHLO", SmtpCommandFlags.Junk, (s, a) => s.HelloAsync("EHLO", a)),
        new("HELO", SmtpCommandFlags.Junk, (s, a) => s.HelloAsync("HELO", a)),
        new("STARTTLS", SmtpCommandFlags.None, (s, a) => s.StartTlsAsync(a)),
        new("AUTH", SmtpCommandFlags.None, (s, a) => s.AuthAsync(a)),
        new("MAIL", SmtpCommandFlags.NeedsHelo, (s, a) => s.MailAsync(a)),
        new("RCPT", SmtpCommandFlags.None, (s, a) => s.RcptAsync(a)),
        new("DATA", SmtpCommandFlags.None, (s, a) => s.DataAsync(a)),
        new("BDAT", SmtpCommandFlags.None, (s, a) => s.BdatAsync(a)),
        new("RSET", SmtpCommandFlags.Junk, (s, _) => { s.Reset(); return s.Reply("250 2.0.0 Ok"); }),
        new("NOOP", SmtpCommandFlags.Junk, (s, _) => s.Reply("250 2.0.0 Ok")),
        new("VRFY", SmtpCommandFlags.Junk, (s, _) => s.Reply("502 5.5.1 VRFY command is disabled")),
        new("QUIT", SmtpCommandFlags.None, (s, _) => s.QuitAsync()),
    }.ToFrozenDictionary(c => c.Verb, StringComparer.Ordinal);
    private string? _helo;
    private string? _user;
    private string? _from;
    private readonly List<string> _rcpts = [];
    private readonly Dictionary<string, string> _dsn = new(StringComparer.Ordinal); // RET, ENVID, NOTIFY, ORCPT as queue attributes
    private Incoming? _bdat;
    private bool _bdatFailed;

    private bool AuthOffered => port != SmtpPort.Mx && conn.IsSecure;
    private bool Trusted => _user != null || InMyNetworks(conn.RemoteIp);

    private async Task<bool> HelloAsync(string verb, string arg)
    {
        if (arg.Length == 0) return await Reply($"501 5.5.4 {verb} needs a host name");
        _helo = arg;
        Reset();
        if (verb == "HELO") return await Reply($"250 {options.Hostname}");
        conn.BufferLine($"250-{options.Hostname}");
        conn.BufferLine("250-PIPELINING");
        conn.BufferLine($"250-SIZE {options.MaxMessageSize}");
        if (!conn.IsTls && certificate() != null) conn.BufferLine("250-STARTTLS");
        if (AuthOffered) conn.BufferLine("250-AUTH PLAIN LOGIN");
        conn.BufferLine("250-ENHANCEDSTATUSCODES");
        conn.BufferLine("250-8BITMIME");
        conn.BufferLine("250-DSN");
        conn.BufferLine("250-CHUNKING");
        conn.BufferLine("250 SMTPUTF8");
        await conn.FlushAsync();
        return true;
    }

    private async Task<bool> QuitAsync()
    {
        await conn.WriteLineAsync("221 2.0.0 Bye");
        return false;
    }

    private async Task<bool> StartTlsAsync(string arg)
    {
        var cert = certificate();
        if (conn.IsTls || cert == null) return await Reply("502 5.5.1 STARTTLS not available");
        if (arg.Length > 0) return await Reply("501 5.5.4 STARTTLS takes no argument");
        if (!await conn.StartTlsAsync(cert, "220 2.0.0 Ready to start TLS")) return false;
        _helo = null; // RFC 3207 4.2: forget what was said before TLS
        Reset();
        return true;
    }

    private void Reset()
    {
        _from = null;
        _rcpts.Clear();
        _dsn.Clear();
        _bdat?.Dispose();
        _bdat = null;
        _bdatFailed = false;
    }

    private async Task<bool> AuthAsync(string arg)
    {
        if (!AuthOffered) return await Reply(port == SmtpPort.Mx ? "503 5.5.1 Error: authentication not enabled" : "538 5.7.11 Encryption required for requested authentication mechanism");
        if (_helo == null) return await Reply("503 5.5.1 Error: send EHLO first");
        if (_user != null) return await Reply("503 5.5.1 Error: already authenticated");
        if (_from != null) return await Reply("503 5.5.1 Error: MAIL transaction in progress");
        var parts = arg.Split(' ', 2);
        var mech = parts[0].ToUpperInvariant();
        byte[]? initial = null;
        if (parts.Length == 2)
        {
            if (parts[1] == "=") initial = [];
            else if (!TryBase64(parts[1], out initial)) return await Reply("501 5.5.2 Cannot decode response");
        }
        SaslServerMessage result;
        try
        {
            var client = new ClientInfo { Service = "smtp", RemoteIp = conn.RemoteIp?.ToString() ?? "", Secured = conn.IsSecure, SessionId = conn.SessionId };
            result = await auth.AuthenticateInteractiveAsync(mech, initial, client, Challenge);
        }
        catch (RpcException e)
        {
            Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            return await Reply("454 4.7.0 Temporary authentication failure");
        }
        switch (result.Status)
        {
            case SaslStatus.Success:
                _user = result.User;
                Log.Info($"{conn.SessionId}: client={conn.ClientDescription}, sasl_method={MailLog.Safe(mech, 20)}, sasl_username={MailLog.Safe(_user)}");
                return await Reply("235 2.7.0 Authentication successful");
            case SaslStatus.Tempfail: return await Reply("454 4.7.0 Temporary authentication failure");
            case SaslStatus.BadMechanism: return await Reply("504 5.5.4 Unrecognized authentication type");
            case SaslStatus.Aborted: return await Reply("501 5.7.0 Authentication aborted");
            case SaslStatus.Malformed: return await Reply("501 5.5.2 Malformed authentication response");
            default: return await Reply("535 5.7.8 Error: authentication failed");
        }
    }

    /// <summary>Sends a 334 challenge and reads the client's answer; null cancels.</summary>
    private async Task<byte[]?> Challenge(byte[] challenge)
    {
        await conn.WriteLineAsync("334 " + Convert.ToBase64String(challenge));
        var line = await conn.ReadLineAsync();
        if (!line.IsLine || line.Text == "*") return null;
        return TryBase64(line.Text, out var bytes) ? bytes : null;
    }

    private static bool TryBase64(string s, out byte[] bytes)
    {
        bytes = new byte[s.Length];
        if (!Convert.TryFromBase64String(s, bytes, out var n)) return false;
        bytes = bytes[..n];
        return true;
    }

    private async Task<bool> MailAsync(string arg)
    {
        if (_from != null) return await Reply("503 5.5.1 Error: nested MAIL command");
        if (port != SmtpPort.Mx && _user == null) return await Reply("530 5.7.0 Authentication required");
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) return await Reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        var (path, rest) = SmtpPath.Parse(arg[5..]);
        if (path == null || (path.Length > 0 && !MailAddress.TryParse(path, out _))) return await Reply("501 5.1.7 Bad sender address syntax");
        var dsn = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in rest.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = p.IndexOf('=');
            var (k, v) = eq > 0 ? (p[..eq].ToUpperInvariant(), p[(eq + 1)..]) : (p.ToUpperInvariant(), "");
            if (k == "SIZE") { if (!long.TryParse(v, out var size) || size < 0) return await Reply("501 5.5.4 Bad SIZE"); if (size > options.MaxMessageSize) return await Reply("552 5.3.4 Message size exceeds fixed limit"); }
            else if (k == "BODY") { if (v.ToUpperInvariant() is not ("7BIT" or "8BITMIME")) return await Reply("501 5.5.4 Bad BODY"); }
            else if (k == "RET")
            {
                v = v.ToUpperInvariant();
                if (v is not ("FULL" or "HDRS") || dsn.ContainsKey(DsnAttributes.Ret)) return await Reply("501 5.5.4 Bad RET parameter");
                dsn[DsnAttributes.Ret] = v;
            }
            else if (k == "ENVID")
            {
                if (!Dsn.IsValidEnvId(v) || dsn.ContainsKey(DsnAttributes.EnvId)) return await Reply("501 5.5.4 Bad ENVID parameter");
                dsn[DsnAttributes.EnvId] = v;
            }
            else if (k is not ("SMTPUTF8" or "AUTH")) return await Reply("555 5.5.4 Unsupported option: " + MailLog.Safe(k, 20));
        }
        if (_user != null && port != SmtpPort.Mx && !await SenderBelongsToUserAsync(path))
        {
            Log.Warn($"{conn.SessionId}: reject MAIL from=<{MailLog.Safe(path)}>: not owned by user {MailLog.Safe(_user)}");
            return await Reply($"553 5.7.1 <{path}>: Sender address rejected: not owned by user {_user}");
        }
        _from = path;
        foreach (var (k, v) in dsn) _dsn[k] = v;
        return await Reply("250 2.1.0 Ok");
    }

    /// <summary>As Postfix's reject_sender_login_mismatch: the sender is the login, or an address that delivers to it.</summary>
    private async Task<bool> SenderBelongsToUserAsync(string sender)
    {
        if (!MailAddress.TryParse(sender, out var a)) return false;
        if (a.ToString() == _user) return true;
        try
        {
            var r = await recipients.ResolveAsync(a.ToString(), null);
            return r.Status == RecipientStatus.Ok && r.Targets.Any(t => t.Local && t.Mailbox == _user);
        }
        catch (RpcException) { return false; }
    }

    private async Task<bool> RcptAsync(string arg)
    {
        if (_from == null) return await Reply("503 5.5.1 Error: need MAIL command");
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) return await Reply("501 5.5.4 Syntax: RCPT TO:<address>");
        var (path, rest) = SmtpPath.Parse(arg[3..]);
        if (string.IsNullOrEmpty(path) || !MailAddress.TryParse(path, out var address) || address.Local.Contains('"'))
            return await Reply("501 5.1.3 Bad recipient address syntax");
        DsnNotify? notify = null;
        string? orcpt = null;
        foreach (var p in rest.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = p.IndexOf('=');
            var (k, v) = eq > 0 ? (p[..eq].ToUpperInvariant(), p[(eq + 1)..]) : (p.ToUpperInvariant(), "");
            if (k == "NOTIFY" && notify == null && Dsn.TryParseNotify(v, out var n)) notify = n;
            else if (k == "ORCPT" && orcpt == null && Dsn.IsValidOrcpt(v)) orcpt = v;
            else if (k is "NOTIFY" or "ORCPT") return await Reply($"501 5.5.4 Bad {k} parameter");
            else return await Reply("555 5.5.4 Unsupported option: " + MailLog.Safe(k, 20));
        }
        if (_rcpts.Count >= options.MaxRecipients) return await Reply("452 4.5.3 Error: too many recipients");
        ResolveRecipientReply r;
        try
        {
            r = await recipients.ResolveAsync(address.ToString(), new ClientInfo { Service = "smtp", RemoteIp = conn.RemoteIp?.ToString() ?? "", SessionId = conn.SessionId });
        }
        catch (RpcException e)
        {
            Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            return await Reply($"451 4.3.0 <{address}>: Temporary lookup failure");
        }
        string? refusal = r.Status switch
        {
            RecipientStatus.Ok => null,
            RecipientStatus.NotOurDomain when Trusted => null,
            RecipientStatus.NotOurDomain => $"554 5.7.1 <{address}>: Relay access denied",
            RecipientStatus.Tempfail => $"451 4.3.0 <{address}>: Temporary lookup failure",
            _ => $"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table",
        };
        if (refusal != null)
        {
            Log.Info($"{conn.SessionId}: reject: RCPT from {conn.ClientDescription}: {refusal}; from=<{MailLog.Safe(_from)}> to=<{MailLog.Safe(address.ToString())}>");
            return await Reply(refusal);
        }
        // RFC 5321 2.4: the local part keeps its case on the way on (look-ups ignore it).
        var rcpt = path[..path.LastIndexOf('@')] + "@" + address.Domain;
        if (!_rcpts.Contains(rcpt, StringComparer.OrdinalIgnoreCase)) _rcpts.Add(rcpt); // a duplicate gets one copy, as Postfix's cleanup does
        if (notify != null) _dsn[Dsn.NotifyKey(rcpt)] = Dsn.FormatNotify(notify.Value);
        if (orcpt != null) _dsn[Dsn.OrcptKey(rcpt)] = orcpt;
        return await Reply("250 2.1.5 Ok");
    }

    /// <summary>A message being received: its queue file and the filters that feed it.</summary>
    private sealed class Incoming(QueueFileWriter file, string id, HeaderCleanup cleanup, DataWriter writer) : IDisposable
    {
        public QueueFileWriter File { get; } = file;
        public string Id { get; } = id;
        public HeaderCleanup Cleanup { get; } = cleanup;
        public DataWriter Writer { get; } = writer;
        public void Dispose() => File.Dispose();
    }

    private Incoming BeginMessage(bool dotStuffed)
    {
        var attributes = new Dictionary<string, string>(_dsn)
        {
            ["client"] = conn.ClientDescription, ["helo"] = _helo ?? "", ["sasl_username"] = _user ?? "",
            ["protocol"] = (conn.IsTls ? "ESMTPS" : "ESMTP") + (_user != null ? "A" : ""),
        };
        var envelope = new QueueEnvelope(DateTimeOffset.UtcNow, _from!, _rcpts.ToList(), attributes);
        var file = spool.Create(envelope, out var id);
        var received = $"Received: from {_helo} ({conn.ClientDescription})\n" +
                       (_user != null ? "\t(authenticated sender)\n" : "") +
                       $"\tby {options.Hostname} with {attributes["protocol"]}{(conn.IsTls ? $" ({conn.TlsProtocol})" : "")} id {id}\n" +
                       (_rcpts.Count == 1 ? $"\tfor <{_rcpts[0]}>" : "\t") +
                       $"; {DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture)}\n";
        file.WriteContent(Encoding.UTF8.GetBytes(received));
        var cleanup = new HeaderCleanup(file.ContentStream, options.Hostname, port != SmtpPort.Mx, id);
        return new Incoming(file, id, cleanup, new DataWriter(cleanup, options.MaxMessageSize, dotStuffed));
    }

    private async Task<bool> DataAsync(string arg)
    {
        if (_bdat != null) return await Reply("503 5.5.1 Error: BDAT transaction in progress");
        if (arg.Length > 0) return await Reply("501 5.5.4 Syntax: DATA");
        if (_from == null) return await Reply("503 5.5.1 Error: need MAIL command");
        if (_rcpts.Count == 0) return await Reply("554 5.5.1 Error: no valid recipients");
        Incoming begun;
        try { begun = BeginMessage(dotStuffed: true); }
        catch (Exception e) when (StorageError.Is(e)) { return await Reply(SpoolRefusal(e)); }
        using var message = begun;
        await conn.WriteLineAsync("354 End data with <CR><LF>.<CR><LF>");
        if (!await message.Writer.ReadDataAsync(conn)) throw new IOException("client went away during DATA");
        if (message.Writer.HasBareLf || message.Writer.HasBareCr)
        {
            var what = message.Writer.HasBareLf ? "LF" : "CR";
            Log.Warn($"{conn.SessionId}: reject: bare <{what}> in DATA from {conn.ClientDescription}");
            await conn.WriteLineAsync($"521 5.5.2 {options.Hostname} Error: bare <{what}> received");
            return false;
        }
        return await FinishMessageAsync(message);
    }

    /// <summary>
    /// BDAT (RFC 3030): the chunk is read whatever happens, so the session stays in
    /// step; a length that cannot be parsed ends the session, as nothing can follow.
    /// Chunks are length-framed, so a bare LF is only a line end; a bare CR is refused.
    /// </summary>
    private async Task<bool> BdatAsync(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || parts[0].Length > 18 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var size) ||
            (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
        {
            await conn.WriteLineAsync("501 5.5.4 Syntax: BDAT count [LAST]");
            return false;
        }
        bool last = parts.Length == 2;
        string? fail = _helo == null ? "503 5.5.1 Error: send HELO/EHLO first"
            : _from == null ? "503 5.5.1 Error: need MAIL command"
            : _rcpts.Count == 0 ? "554 5.5.1 Error: no valid recipients"
            : _bdatFailed ? "503 5.5.1 Error: earlier BDAT failed; send RSET"
            : null;
        if (fail == null && _bdat == null)
        {
            try { _bdat = BeginMessage(dotStuffed: false); }
            catch (Exception e) when (StorageError.Is(e)) { fail = SpoolRefusal(e); _bdatFailed = true; }
        }
        var writer = fail == null ? _bdat!.Writer : new DataWriter(Stream.Null, long.MaxValue, dotStuffed: false);
        if (!await writer.ReadChunkAsync(conn, size, last)) throw new IOException("client went away during BDAT");
        if (fail != null) return await Reply(fail);
        if (writer.HasBareCr)
        {
            Log.Warn($"{conn.SessionId}: reject: bare <CR> in BDAT from {conn.ClientDescription}");
            _bdatFailed = true;
            _bdat!.Dispose();
            _bdat = null;
            return await Reply("554 5.6.0 Error: bare <CR> received");
        }
        if (!last) return await Reply($"250 2.0.0 {size} octets received");
        using var message = _bdat!;
        _bdat = null;
        return await FinishMessageAsync(message);
    }

    private async Task<bool> FinishMessageAsync(Incoming message)
    {
        var (id, writer, cleanup, file) = (message.Id, message.Writer, message.Cleanup, message.File);
        cleanup.Complete();
        if (writer.TooBig) { Reset(); return await Reply("552 5.3.4 Error: message file too big"); }
        if (cleanup.HeaderTooBig) { Reset(); return await Reply("552 5.3.4 Error: message header size exceeds limit"); }
        if (cleanup.Received > HeaderCleanup.HopLimit)
        {
            Log.Warn($"{id}: reject: too many hops ({cleanup.Received} Received headers) from {conn.ClientDescription}");
            Reset();
            return await Reply("554 5.4.0 Error: too many hops");
        }
        if (writer.HasNul) { Reset(); return await Reply("554 5.6.0 Error: message contains NUL characters"); }
        try { await file.CommitAsync(); }
        catch (Exception e) when (StorageError.Is(e))
        {
            var refusal = SpoolRefusal(e);
            Reset();
            return await Reply(refusal);
        }
        Messages++;
        Log.Info($"{id}: client={conn.ClientDescription}{(_user != null ? ", sasl_username=" + MailLog.Safe(_user) : "")}");
        Log.Info($"{id}: from=<{MailLog.Safe(_from)}>, size={file.ContentLength}, nrcpt={_rcpts.Count} (queue active)");
        Reset();
        queue.Wake();
        return await Reply($"250 2.0.0 Ok: queued as {id}");
    }

    /// <summary>The queue could not take the message: logged as the error it is, answered with a temporary failure.</summary>
    private string SpoolRefusal(Exception e)
    {
        var reply = SmtpReply.SpoolFailure(StorageError.Classify(e));
        Log.Error($"{conn.SessionId}: queue file write failed ({StorageError.Classify(e)}): {MailLog.Safe(e.Message)}; from=<{MailLog.Safe(_from)}>, client={conn.ClientDescription}: {reply}");
        return reply.ToString();
    }

    private bool InMyNetworks(IPAddress? ip)
    {
        if (ip == null) return true; // Unix socket: a local process
        foreach (var (net, bits) in options.MyNetworks)
            if (net.AddressFamily == ip.AddressFamily && Matches(ip, net, bits)) return true;
        return false;
    }

    private static bool Matches(IPAddress ip, IPAddress net, int bits)
    {
        var a = ip.GetAddressBytes();
        var b = net.GetAddressBytes();
        for (int i = 0; i < a.Length && bits > 0; i++, bits -= 8)
        {
            int mask = bits >= 8 ? 0xFF : (0xFF << (8 - bits)) & 0xFF;
            if ((a[i] & mask) != (b[i] & mask)) return false;
        }
        return true;
    }
}

/// <summary>Reverse- and forward-path syntax (RFC 5321 4.1.2), strictly: a source route is dropped.</summary>
internal static class SmtpPath
{
    public static (string? Path, string Params) Parse(string text)
    {
        text = text.TrimStart();
        if (!text.StartsWith('<')) return (null, "");
        int end = text.IndexOf('>');
        if (end < 0) return (null, "");
        var path = text[1..end];
        if (path.StartsWith('@'))
        {
            int colon = path.IndexOf(':');
            if (colon < 0) return (null, "");
            path = path[(colon + 1)..];
        }
        foreach (var c in path) if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '\\') return (null, "");
        return (path, text[(end + 1)..].Trim());
    }
}
