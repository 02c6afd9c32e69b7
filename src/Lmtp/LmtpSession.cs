// One LMTP session (RFC 2033 over RFC 5321): LHLO, MAIL, RCPT, DATA, BDAT,
// RSET, NOOP, QUIT; VRFY is refused. Every recipient is asked of AuthD; after
// the message, one reply per accepted recipient. The message is streamed to
// disk once, into the first recipient's Maildir tmp/, and linked to the
// others; "250" for a recipient is said only after its file is in new/ and
// the directory fsynced. Input is untrusted: every line, the message size and
// the recipient count are bounded.
using System.Buffers;
using System.Collections.Frozen;
using System.Diagnostics;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;
using Mail.Shared.Net;
using Mail.Shared.Smtp;
using NLog;

namespace Mail.Lmtp;

internal sealed record LmtpOptions(string Hostname, long MaxMessageSize, int MaxRecipients, string Delimiter, bool QuotaTemporary);

internal sealed class LmtpSession(LineConnection conn, AuthClient auth, LmtpOptions options) : SmtpServerSession<LmtpSession>(conn)
{
    private static readonly Logger LmtpLog = MailLog.For("lmtp");
    protected override Logger Log => LmtpLog;
    protected override string Protocol => "LMTP";
    protected override string Greeting => $"220 {options.Hostname} LMTP ready";
    protected override bool Greeted => _lhlo != null;
    protected override string HeloFirst => "503 5.5.1 LHLO first";
    protected override string UnknownCommand => "500 5.5.2 Unknown command";
    protected override int ErrorLimit => 50;
    protected override FrozenDictionary<string, SmtpCommand<LmtpSession>> Commands => Table;
    protected override void Ended() => Reset();

    /// <summary>The commands (RFC 2033 4, RFC 3030).</summary>
    private static readonly FrozenDictionary<string, SmtpCommand<LmtpSession>> Table = new SmtpCommand<LmtpSession>[]
    {
        new("LHLO", SmtpCommandFlags.Junk, (s, a) => s.LhloAsync(a)),
        new("HELO", SmtpCommandFlags.Junk, (s, _) => s.Say("500 5.5.1 This is LMTP: use LHLO")),
        new("EHLO", SmtpCommandFlags.Junk, (s, _) => s.Say("500 5.5.1 This is LMTP: use LHLO")),
        new("MAIL", SmtpCommandFlags.NeedsHelo, async (s, a) => { await s.MailAsync(a); return true; }),
        new("RCPT", SmtpCommandFlags.None, async (s, a) => { await s.RcptAsync(a); return true; }),
        new("DATA", SmtpCommandFlags.None, (s, a) => s.DataAsync(a)),
        new("BDAT", SmtpCommandFlags.None, (s, a) => s.BdatAsync(a)),
        new("RSET", SmtpCommandFlags.Junk, (s, _) => { s.Reset(); return s.Say("250 2.0.0 OK"); }),
        new("NOOP", SmtpCommandFlags.Junk, (s, _) => s.Say("250 2.0.0 OK")),
        new("VRFY", SmtpCommandFlags.Junk, (s, _) => s.Say("502 5.5.1 VRFY is not offered")),
        new("QUIT", SmtpCommandFlags.None, (s, _) => s.QuitAsync()),
    }.ToFrozenDictionary(c => c.Verb, StringComparer.Ordinal);
    private sealed record Recipient(string Address, MailUser User, string? Detail);

    private string? _lhlo;
    private string? _from;
    private readonly List<Recipient> _rcpts = [];

    /// <summary>A reply from a handler: after too many errors the session ends (the core closes it).</summary>
    private new async Task Reply(string line)
    {
        if (!await base.Reply(line)) throw new IOException("too many errors");
    }

    /// <summary>A one-line answer from the table.</summary>
    private async Task<bool> Say(string line)
    {
        await Reply(line);
        return true;
    }

    private async Task<bool> LhloAsync(string arg)
    {
        if (arg.Length == 0) { await Reply("501 5.5.4 LHLO needs a host name"); return true; }
        _lhlo = arg;
        Reset();
        conn.BufferLine($"250-{options.Hostname}");
        conn.BufferLine("250-PIPELINING");
        conn.BufferLine("250-ENHANCEDSTATUSCODES");
        conn.BufferLine("250-8BITMIME");
        conn.BufferLine("250-SMTPUTF8");
        conn.BufferLine($"250-SIZE {options.MaxMessageSize}");
        conn.BufferLine("250 CHUNKING");
        await conn.FlushAsync();
        return true;
    }

    private async Task<bool> QuitAsync()
    {
        await conn.WriteLineAsync("221 2.0.0 Bye");
        return false;
    }

    private void Reset()
    {
        _from = null;
        _rcpts.Clear();
        _bdat?.Dispose();
        _bdat = null;
    }

    private async Task MailAsync(string arg)
    {
        if (_from != null) { await Reply("503 5.5.1 MAIL already given"); return; }
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) { await Reply("501 5.5.4 Syntax: MAIL FROM:<address>"); return; }
        var (path, rest) = ParsePath(arg[5..]);
        if (path == null) { await Reply("501 5.1.7 Bad sender address syntax"); return; }
        foreach (var p in rest.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var (k, v) = p.IndexOf('=') is var eq and > 0 ? (p[..eq].ToUpperInvariant(), p[(eq + 1)..]) : (p.ToUpperInvariant(), "");
            if (k == "SIZE")
            {
                if (!long.TryParse(v, out var size) || size < 0) { await Reply("501 5.5.4 Bad SIZE"); return; }
                if (size > options.MaxMessageSize) { await Reply("552 5.3.4 Message too big"); return; }
            }
            else if (k == "BODY") { if (v.ToUpperInvariant() is not ("7BIT" or "8BITMIME" or "BINARYMIME")) { await Reply("501 5.5.4 Bad BODY"); return; } }
            else if (k is not ("SMTPUTF8" or "RET" or "ENVID" or "AUTH")) { await Reply("555 5.5.4 Unsupported parameter"); return; }
        }
        _from = path;
        await Reply("250 2.1.0 OK");
    }

    private async Task RcptAsync(string arg)
    {
        if (_from == null) { await Reply("503 5.5.1 MAIL first"); return; }
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) { await Reply("501 5.5.4 Syntax: RCPT TO:<address>"); return; }
        var (path, _) = ParsePath(arg[3..]);
        if (string.IsNullOrEmpty(path) || path.Length > 320) { await Reply("501 5.1.3 Bad recipient address syntax"); return; }
        if (_rcpts.Count >= options.MaxRecipients) { await Reply("452 4.5.3 Too many recipients"); return; }
        LookupUserReply reply;
        try
        {
            reply = await auth.Api.LookupUserAsync(new LookupUserRequest
            {
                User = path,
                Client = new ClientInfo { Service = "lmtp", RemoteIp = conn.RemoteIp?.ToString() ?? "", SessionId = conn.SessionId },
            }, deadline: DateTime.UtcNow.AddSeconds(30));
        }
        catch (RpcException e)
        {
            Log.Error($"{conn.SessionId}: to=<{MailLog.Safe(path)}>: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            await Reply("451 4.3.0 Temporary lookup failure");
            return;
        }
        switch (reply.Status)
        {
            case LookupStatus.Ok when reply.User.Active:
                int at = path.LastIndexOf('@');
                var local = at > 0 ? path[..at] : path;
                int d = options.Delimiter.Length == 0 ? -1 : local.IndexOfAny(options.Delimiter.ToCharArray());
                _rcpts.Add(new Recipient(path, reply.User, d > 0 ? local[(d + 1)..] : null));
                await Reply("250 2.1.5 OK");
                return;
            case LookupStatus.Ok:
                await Reply("550 5.2.1 Mailbox disabled");
                return;
            case LookupStatus.NotFound:
                Log.Info($"{conn.SessionId}: reject RCPT to=<{MailLog.Safe(path)}>: user unknown");
                await Reply("550 5.1.1 User unknown");
                return;
            default:
                Log.Error($"{conn.SessionId}: to=<{MailLog.Safe(path)}>: lookup failed: {MailLog.Safe(reply.Reason)}");
                await Reply("451 4.3.0 Temporary lookup failure");
                return;
        }
    }

    /// <summary>"&lt;addr&gt; params" → (addr, params); null addr when malformed. "&lt;&gt;" is the null sender.</summary>
    private static (string? Path, string Params) ParsePath(string text)
    {
        text = text.TrimStart();
        if (!text.StartsWith('<')) return (null, "");
        int end = text.IndexOf('>');
        if (end < 0) return (null, "");
        var path = text[1..end];
        if (path.Contains(':') && path.StartsWith('@')) path = path[(path.IndexOf(':') + 1)..]; // source route
        foreach (var c in path) if (c <= ' ' || c == 0x7f || c == '<' || c == '>') return (null, "");
        return (path, text[(end + 1)..].Trim());
    }

    // ---- message content ----

    private sealed class Pending : IDisposable
    {
        public required string TmpPath;
        public required FileStream File;
        /// <summary>What the writer writes to: a full disk is held until the message has been read.</summary>
        public required HeldFailureStream Sink;
        public required DataWriter Writer;
        public required long HeaderLines;
        public void Dispose()
        {
            try { File.Dispose(); } catch (IOException) { } // what it still buffers cannot reach a full disk: the file goes anyway
            try { System.IO.File.Delete(TmpPath); } catch (IOException) { }
        }
    }

    private Pending? _bdat;

    /// <summary>The first recipient's tmp/ file, with our headers written; or why it cannot be had.</summary>
    private async Task<(Pending? Pending, SmtpReply Failure)> BeginMessageAsync(bool dotStuffed)
    {
        var first = _rcpts[0].User;
        string tmp;
        FileStream fs;
        try
        {
            MaildirDelivery.Ensure(first.Maildir, first.Uid, first.Gid);
            MaildirDelivery.CleanTmp(first.Maildir);
            (tmp, fs) = MaildirDelivery.CreateTmp(first.Maildir, first.Uid, first.Gid);
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            var kind = StorageError.Classify(e);
            Log.Error($"{conn.SessionId}: cannot open a message in {first.Maildir} ({kind}): {MailLog.Safe(e.Message)}");
            return (null, SmtpReply.MailboxFailure(kind, options.QuotaTemporary));
        }
        var headers = new StringBuilder();
        headers.Append("Return-Path: <").Append(_from).Append(">\n");
        if (_rcpts.Count == 1) headers.Append("Delivered-To: ").Append(_rcpts[0].Address).Append('\n');
        headers.Append("Received: from ").Append(_lhlo).Append(" (").Append(conn.ClientDescription).Append(")\n\tby ")
            .Append(options.Hostname).Append(" with LMTP id ").Append(conn.SessionId)
            .Append(_rcpts.Count == 1 ? $"\n\tfor <{_rcpts[0].Address}>" : "").Append("; ")
            .Append(DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        var headerBytes = Encoding.UTF8.GetBytes(headers.ToString());
        var sink = new HeldFailureStream(fs);
        var pending = new Pending
        {
            TmpPath = tmp, File = fs, Sink = sink, Writer = new DataWriter(sink, options.MaxMessageSize, dotStuffed),
            HeaderLines = headerBytes.AsSpan().Count((byte)'\n'),
        };
        try { await fs.WriteAsync(headerBytes); }
        catch (Exception e) when (StorageError.Is(e))
        {
            pending.Dispose();
            Log.Error($"{conn.SessionId}: cannot write a message in {first.Maildir} ({StorageError.Classify(e)}): {MailLog.Safe(e.Message)}");
            return (null, SmtpReply.MailboxFailure(StorageError.Classify(e), options.QuotaTemporary));
        }
        return (pending, default);
    }

    private async Task<bool> DataAsync(string arg)
    {
        if (arg.Length > 0) { await Reply("501 5.5.4 DATA takes no argument"); return true; }
        if (_from == null) { await Reply("503 5.5.1 MAIL first"); return true; }
        if (_rcpts.Count == 0) { await Reply("503 5.5.1 No valid recipients"); return true; }
        var (pending, failure) = await BeginMessageAsync(dotStuffed: true);
        await conn.WriteLineAsync("354 Start mail input; end with <CRLF>.<CRLF>");
        var writer = pending?.Writer ?? new DataWriter(Stream.Null, options.MaxMessageSize, dotStuffed: true);
        if (!await writer.ReadDataAsync(conn)) { pending?.Dispose(); throw new IOException("client went away during DATA"); }
        await FinishMessageAsync(pending, failure, writer);
        return true;
    }

    private async Task<bool> BdatAsync(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || !long.TryParse(parts[0], out var size) || size < 0 ||
            (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
        {
            // The chunk's length is unknown: the session cannot go on in step.
            await conn.WriteLineAsync("501 5.5.4 Syntax: BDAT size [LAST]");
            return false;
        }
        bool last = parts.Length == 2;
        var fail = _from == null ? "503 5.5.1 MAIL first" : _rcpts.Count == 0 ? "503 5.5.1 No valid recipients" : null;
        if (fail == null && _bdat == null)
        {
            (_bdat, var failure) = await BeginMessageAsync(dotStuffed: false);
            if (_bdat == null) fail = failure.ToString();
        }
        // Read the chunk whatever happens, so the session stays in step.
        var writer = fail == null ? _bdat!.Writer : new DataWriter(Stream.Null, long.MaxValue, dotStuffed: false);
        if (!await writer.ReadChunkAsync(conn, size, last)) { Reset(); throw new IOException("client went away during BDAT"); }
        if (fail != null) { await Reply(fail); return true; }
        if (!last) { await Reply($"250 2.0.0 {size} octets received"); return true; }
        var pending = _bdat!;
        _bdat = null;
        await FinishMessageAsync(pending, default, writer);
        return true;
    }

    private async Task FinishMessageAsync(Pending? pending, SmtpReply failure, DataWriter writer)
    {
        var replies = new List<string>();
        if (pending == null) replies.AddRange(_rcpts.Select(r => failure.About(r.Address).ToString()));
        else if (writer.TooBig) replies.AddRange(_rcpts.Select(_ => "552 5.3.4 Message too big"));
        else if (writer.HasNul) replies.AddRange(_rcpts.Select(_ => "554 5.6.0 Message contains NUL characters"));
        else
        {
            try
            {
                if (pending.Sink.Failure is { } held) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(held);
                await pending.File.FlushAsync();
                pending.File.Flush(flushToDisk: true);
                var size = pending.File.Length;
                // Every stored line gains a CR in the virtual (RFC 822) size.
                var vsize = size + pending.HeaderLines + writer.Lines;
                pending.File.Dispose();
                foreach (var r in _rcpts) replies.Add(Deliver(r, pending.TmpPath, size, vsize));
            }
            catch (Exception e) when (StorageError.Is(e))
            {
                var kind = StorageError.Classify(e);
                Log.Error($"{conn.SessionId}: cannot write the message ({kind}): {MailLog.Safe(e.Message)}");
                while (replies.Count < _rcpts.Count) replies.Add(SmtpReply.MailboxFailure(kind, options.QuotaTemporary).About(_rcpts[replies.Count].Address).ToString());
            }
        }
        pending?.Dispose();
        Messages++;
        foreach (var r in replies)
        {
            if (r[0] is '4' or '5') CountError();
            conn.BufferLine(r);
        }
        await conn.FlushAsync();
        Reset();
    }

    private string Deliver(Recipient r, string tmpPath, long size, long vsize)
    {
        var u = r.User;
        var started = Stopwatch.StartNew();
        try
        {
            MaildirDelivery.Ensure(u.Maildir, u.Uid, u.Gid);
            if (u.QuotaBytes > 0 || u.QuotaMessages > 0)
            {
                var usage = MaildirQuota.Read(u.Maildir, (long)u.QuotaBytes, (long)u.QuotaMessages);
                if ((u.QuotaBytes > 0 && usage.Bytes + size > (long)u.QuotaBytes) ||
                    (u.QuotaMessages > 0 && usage.Messages + 1 > (long)u.QuotaMessages))
                {
                    var full = SmtpReply.MailboxFull(options.QuotaTemporary);
                    Log.Info($"{conn.SessionId}: to=<{MailLog.Safe(r.Address)}>, relay=local, dsn={full.Status}, status={(full.Code >= 500 ? "bounced" : "deferred")} (over quota)");
                    return full.About(r.Address).ToString();
                }
            }
            var folder = MaildirDelivery.FolderFor(u.Maildir, r.Detail);
            // Every recipient gets a hard link to the one written file (a copy
            // across file systems); the tmp/ name goes when all are done.
            var path = MaildirDelivery.Publish(tmpPath, folder, size, vsize, link: true, u.Uid, u.Gid);
            MaildirQuota.Add(u.Maildir, size, 1);
            Log.Info($"{conn.SessionId}: from=<{MailLog.Safe(_from)}>, to=<{MailLog.Safe(r.Address)}>, relay=local, size={size}, delay={started.Elapsed.TotalSeconds:0.000}, dsn=2.0.0, status=sent ({Path.GetFileName(path)})");
            return $"250 2.0.0 <{r.Address}> Saved";
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            var kind = StorageError.Classify(e);
            var reply = SmtpReply.MailboxFailure(kind, options.QuotaTemporary);
            Log.Error($"{conn.SessionId}: to=<{MailLog.Safe(r.Address)}>, relay=local, dsn={reply.Status}, status=deferred ({kind}: {MailLog.Safe(e.Message)})");
            return reply.About(r.Address).ToString();
        }
    }
}
