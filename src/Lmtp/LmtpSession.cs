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
    protected override SmtpReply Greeting => new(220, "", $"{options.Hostname} LMTP ready");
    protected override bool InTransaction => _from != null;
    protected override bool Greeted => _lhlo != null;
    protected override SmtpReply HeloFirst => Replies.LhloFirst;
    protected override SmtpReply UnknownCommand => Replies.Unrecognized;
    protected override int ErrorLimit => 50;
    protected override FrozenDictionary<string, SmtpCommand<LmtpSession>> Commands => Table;
    protected override void Ended() => Reset();

    /// <summary>The commands (RFC 2033 4, RFC 3030).</summary>
    private static readonly FrozenDictionary<string, SmtpCommand<LmtpSession>> Table = new SmtpCommand<LmtpSession>[]
    {
        new("LHLO", SmtpCommandFlags.Junk, (s, a) => Task.FromResult(s.Lhlo(a))),
        new("HELO", SmtpCommandFlags.Junk, (_, _) => Task.FromResult(Replies.UseLhlo)),
        new("EHLO", SmtpCommandFlags.Junk, (_, _) => Task.FromResult(Replies.UseLhlo)),
        new("MAIL", SmtpCommandFlags.NeedsHelo, (s, a) => Task.FromResult(s.Mail(a))),
        new("RCPT", SmtpCommandFlags.NeedsMail, (s, a) => s.RcptAsync(a)),
        new("DATA", SmtpCommandFlags.NeedsMail, (s, a) => s.DataAsync(a)),
        new("BDAT", SmtpCommandFlags.None, (s, a) => s.BdatAsync(a)),
    }.Concat(CommonCommands).ToFrozenDictionary(c => c.Verb, StringComparer.Ordinal);

    /// <summary>lmtpd's own replies (the rest are Shared/Smtp/SmtpReply's).</summary>
    private static class Replies
    {
        // RFC 2033 4.1: LHLO, not HELO or EHLO.
        public static readonly SmtpReply LhloFirst = new(503, "5.5.1", "Error: send LHLO first");
        /// <summary>RFC 5321 4.2.4 500, as Dovecot's LMTP answers (Postfix's smtpd says 502).</summary>
        public static readonly SmtpReply Unrecognized = new(500, "5.5.2", "Error: command not recognized");
        public static readonly SmtpReply UseLhlo = new(500, "5.5.1", "Error: this is LMTP, use LHLO");
        public static readonly SmtpReply NeedHostName = new(501, "5.5.4", "Syntax: LHLO hostname");
        public static readonly SmtpReply StartData = new(354, "", "Start mail input; end with <CRLF>.<CRLF>");
        /// <summary>RFC 3463 X.2.1: the account exists but takes no mail.</summary>
        public static readonly SmtpReply MailboxDisabled = new(550, "5.2.1", "Mailbox disabled");
        /// <summary>RFC 2033 4.2: one reply per recipient after the data.</summary>
        public static SmtpReply Saved(string address) => new SmtpReply(250, "2.0.0", "Saved").About(address);
    }

    private sealed record Recipient(string Address, MailUser User, string? Detail);

    private string? _lhlo;
    private string? _from;
    private readonly List<Recipient> _rcpts = [];

    /// <summary>RFC 2033 4.1: LHLO and the extensions offered.</summary>
    private SmtpReply Lhlo(string arg)
    {
        if (arg.Length == 0) return Replies.NeedHostName;
        _lhlo = arg;
        Reset();
        return new(250, "", string.Join('\n', options.Hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", $"SIZE {options.MaxMessageSize}", "CHUNKING"));
    }

    protected override void Reset()
    {
        _from = null;
        _rcpts.Clear();
        _bdat?.Dispose();
        _bdat = null;
    }

    private SmtpReply Mail(string arg)
    {
        if (_from != null) return SmtpReply.NestedMail;
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) return SmtpReply.Syntax("MAIL FROM:<address>");
        var (path, rest) = SmtpPath.Parse(arg[5..]);
        if (path == null) return SmtpReply.BadSenderSyntax;
        foreach (var (k, v) in SmtpPath.Parameters(rest))
        {
            if (k == "SIZE")
            {
                if (!long.TryParse(v, out var size) || size < 0) return SmtpReply.BadParameter("SIZE");
                if (size > options.MaxMessageSize) return SmtpReply.MessageTooBig;
            }
            else if (k == "BODY") { if (v.ToUpperInvariant() is not ("7BIT" or "8BITMIME" or "BINARYMIME")) return SmtpReply.BadParameter("BODY"); }
            else if (k is not ("SMTPUTF8" or "RET" or "ENVID" or "AUTH")) return SmtpReply.UnsupportedParameter(MailLog.Safe(k, 20));
        }
        _from = path;
        return SmtpReply.SenderOk;
    }

    private async Task<SmtpReply> RcptAsync(string arg)
    {
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) return SmtpReply.Syntax("RCPT TO:<address>");
        var (path, _) = SmtpPath.Parse(arg[3..]);
        if (string.IsNullOrEmpty(path) || path.Length > 320) return SmtpReply.BadRecipientSyntax;
        if (_rcpts.Count >= options.MaxRecipients) return SmtpReply.TooManyRecipients;
        LookupUserReply reply;
        try
        {
            reply = await auth.Api.LookupUserAsync(new LookupUserRequest
            {
                User = path,
                Client = new ClientInfo { Service = "lmtp", RemoteIp = Conn.RemoteIp?.ToString() ?? "", SessionId = Conn.SessionId },
            }, deadline: DateTime.UtcNow.AddSeconds(30));
        }
        catch (RpcException e)
        {
            Log.Error($"{Conn.SessionId}: to=<{MailLog.Safe(path)}>: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            return SmtpReply.TemporaryLookupFailure.WithAddress(path);
        }
        switch (reply.Status)
        {
            case LookupStatus.Ok when reply.User.Active:
                int at = path.LastIndexOf('@');
                var local = at > 0 ? path[..at] : path;
                int d = options.Delimiter.Length == 0 ? -1 : local.IndexOfAny(options.Delimiter.ToCharArray());
                _rcpts.Add(new Recipient(path, reply.User, d > 0 ? local[(d + 1)..] : null));
                return SmtpReply.RecipientOk;
            case LookupStatus.Ok:
                return Replies.MailboxDisabled.WithAddress(path);
            case LookupStatus.NotFound:
                Log.Info($"{Conn.SessionId}: reject RCPT to=<{MailLog.Safe(path)}>: user unknown");
                return SmtpReply.UserUnknown.WithAddress(path);
            default:
                Log.Error($"{Conn.SessionId}: to=<{MailLog.Safe(path)}>: lookup failed: {MailLog.Safe(reply.Reason)}");
                return SmtpReply.TemporaryLookupFailure.WithAddress(path);
        }
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
            Log.Error($"{Conn.SessionId}: cannot open a message in {first.Maildir} ({kind}): {MailLog.Safe(e.Message)}");
            return (null, SmtpReply.MailboxFailure(kind, options.QuotaTemporary));
        }
        var headers = new StringBuilder();
        headers.Append("Return-Path: <").Append(_from).Append(">\n");
        if (_rcpts.Count == 1) headers.Append("Delivered-To: ").Append(_rcpts[0].Address).Append('\n');
        headers.Append("Received: from ").Append(_lhlo).Append(" (").Append(Conn.ClientDescription).Append(")\n\tby ")
            .Append(options.Hostname).Append(" with LMTP id ").Append(Conn.SessionId)
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
            Log.Error($"{Conn.SessionId}: cannot write a message in {first.Maildir} ({StorageError.Classify(e)}): {MailLog.Safe(e.Message)}");
            return (null, SmtpReply.MailboxFailure(StorageError.Classify(e), options.QuotaTemporary));
        }
        return (pending, default);
    }

    private async Task<SmtpReply> DataAsync(string arg)
    {
        if (arg.Length > 0) return SmtpReply.Syntax("DATA");
        if (_rcpts.Count == 0) return SmtpReply.NoValidRecipients;
        var (pending, failure) = await BeginMessageAsync(dotStuffed: true);
        await SendAsync(Replies.StartData);
        var writer = pending?.Writer ?? new DataWriter(Stream.Null, options.MaxMessageSize, dotStuffed: true);
        if (!await writer.ReadDataAsync(Conn)) { pending?.Dispose(); throw new IOException("client went away during DATA"); }
        return await FinishMessageAsync(pending, failure, writer);
    }

    private async Task<SmtpReply> BdatAsync(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || !long.TryParse(parts[0], out var size) || size < 0 ||
            (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
            return SmtpReply.Syntax("BDAT count [LAST]").AndClose(); // the chunk's length is unknown: the session cannot go on in step
        bool last = parts.Length == 2;
        SmtpReply? fail = _from == null ? SmtpReply.NeedMail : _rcpts.Count == 0 ? SmtpReply.NoValidRecipients : null;
        if (fail == null && _bdat == null)
        {
            (_bdat, var failure) = await BeginMessageAsync(dotStuffed: false);
            if (_bdat == null) fail = failure;
        }
        // Read the chunk whatever happens, so the session stays in step.
        var writer = fail == null ? _bdat!.Writer : new DataWriter(Stream.Null, long.MaxValue, dotStuffed: false);
        if (!await writer.ReadChunkAsync(Conn, size, last)) { Reset(); throw new IOException("client went away during BDAT"); }
        if (fail is { } failed) return failed;
        if (!last) return SmtpReply.ChunkReceived(size);
        var pending = _bdat!;
        _bdat = null;
        return await FinishMessageAsync(pending, default, writer);
    }

    /// <summary>RFC 2033 4.2: one reply per recipient, in the order of the RCPTs.</summary>
    private async Task<SmtpReply> FinishMessageAsync(Pending? pending, SmtpReply failure, DataWriter writer)
    {
        var replies = new List<SmtpReply>();
        if (pending == null) replies.AddRange(_rcpts.Select(r => failure.About(r.Address)));
        else if (writer.TooBig) replies.AddRange(_rcpts.Select(r => SmtpReply.MessageTooBig.About(r.Address)));
        else if (writer.HasNul) replies.AddRange(_rcpts.Select(r => SmtpReply.ContainsNul.About(r.Address)));
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
                if (Conn.ClientClosed())
                {
                    // The client (mtad killed, say) is gone and can never see a 250, so it will send
                    // the message again: storing it now would only make a second copy.
                    Log.Warn($"{Conn.SessionId}: client closed the connection before the message was stored; not delivered");
                    replies.AddRange(_rcpts.Select(r => ClientGone.About(r.Address)));
                }
                else
                {
                    bool spam = MaildirDelivery.MarkedAsSpam(pending.TmpPath);
                    foreach (var r in _rcpts) replies.Add(Deliver(r, pending.TmpPath, size, vsize, spam));
                }
            }
            catch (Exception e) when (StorageError.Is(e))
            {
                var kind = StorageError.Classify(e);
                Log.Error($"{Conn.SessionId}: cannot write the message ({kind}): {MailLog.Safe(e.Message)}");
                while (replies.Count < _rcpts.Count) replies.Add(SmtpReply.MailboxFailure(kind, options.QuotaTemporary).About(_rcpts[replies.Count].Address));
            }
        }
        pending?.Dispose();
        Messages++;
        Reset();
        // A recipient's failure is the mailbox's, not the client's: none counts toward the error limit.
        foreach (var r in replies) await SendAsync(r);
        return SmtpReply.None;
    }

    private static readonly SmtpReply ClientGone = new(451, "4.4.2", "Connection closed before the message was stored");

    private SmtpReply Deliver(Recipient r, string tmpPath, long size, long vsize, bool spam)
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
                    Log.Info($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>, relay=local, dsn={full.Status}, status={(full.Code >= 500 ? "bounced" : "deferred")} (over quota)");
                    return full.About(r.Address);
                }
            }
            var folder = MaildirDelivery.FolderFor(u.Maildir, r.Detail);
            // Marked as spam by the MX's checks: the Junk folder, unless a +detail chose another.
            if (spam && folder == u.Maildir) folder = MaildirDelivery.JunkFolder(u.Maildir, u.Uid, u.Gid);
            // Every recipient gets a hard link to the one written file (a copy
            // across file systems); the tmp/ name goes when all are done.
            var path = MaildirDelivery.Publish(tmpPath, folder, size, vsize, link: true, u.Uid, u.Gid);
            MaildirQuota.Add(u.Maildir, size, 1);
            Log.Info($"{Conn.SessionId}: from=<{MailLog.Safe(_from)}>, to=<{MailLog.Safe(r.Address)}>, relay=local, size={size}, delay={started.Elapsed.TotalSeconds:0.000}, dsn=2.0.0, status=sent ({(folder == u.Maildir ? "" : Path.GetFileName(folder) + "/")}{Path.GetFileName(path)})");
            return Replies.Saved(r.Address);
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            var kind = StorageError.Classify(e);
            var reply = SmtpReply.MailboxFailure(kind, options.QuotaTemporary);
            Log.Error($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>, relay=local, dsn={reply.Status}, status=deferred ({kind}: {MailLog.Safe(e.Message)})");
            return reply.About(r.Address);
        }
    }
}
