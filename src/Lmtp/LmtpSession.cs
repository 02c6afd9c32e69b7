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
using Mail.Sieve;
using NLog;

namespace Mail.Lmtp;

internal sealed record LmtpOptions(string Hostname, long MaxMessageSize, int MaxRecipients, string Delimiter, bool QuotaTemporary, UserCache? Users = null);

internal sealed class LmtpSession(LineConnection conn, AuthClient auth, LmtpOptions options, SieveDelivery? sieve = null) : SmtpServerSession<LmtpSession>(conn)
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
        if (options.Users?.Get(path) is { } known) reply = known;
        else
        {
            try
            {
                reply = await auth.LookupUserAsync(new LookupUserRequest
                {
                    User = path,
                    Client = new ClientInfo { Service = "lmtp", RemoteIp = Conn.RemoteIp?.ToString() ?? "", SessionId = Conn.SessionId },
                });
                options.Users?.Put(path, reply);
            }
            catch (RpcException e)
            {
                Log.Error($"{Conn.SessionId}: to=<{MailLog.Safe(path)}>: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
                return SmtpReply.TemporaryLookupFailure.WithAddress(path);
            }
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
                    foreach (var r in _rcpts) replies.Add(await DeliverAsync(r, pending.TmpPath, size, vsize));
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

    /// <summary>RFC 5429: a Sieve reject refuses the message for that recipient, in the dialogue.</summary>
    private static SmtpReply Rejected(string reason)
    {
        var text = new string(reason.Select(ch => ch < ' ' || ch == 127 ? ' ' : ch).Take(200).ToArray()).Trim();
        return new SmtpReply(550, "5.7.1", text.Length > 0 ? text : "Rejected by the recipient's filter");
    }

    /// <summary>
    /// One recipient: the quota, then the recipient's Sieve scripts (none: the folder of the
    /// +detail, else INBOX), then each store fsynced before the reply; redirects and a vacation
    /// reply after, through mtad. A script fault, a missing folder or an unsendable redirect
    /// falls back to keeping the message in INBOX: a filter never loses mail.
    /// </summary>
    private async Task<SmtpReply> DeliverAsync(Recipient r, string tmpPath, long size, long vsize)
    {
        var started = Stopwatch.StartNew();
        var reply = await StoreAsync(r, tmpPath, size, vsize);
        LmtpMetrics.Delivered(reply, started.Elapsed);
        return reply;
    }

    private async Task<SmtpReply> StoreAsync(Recipient r, string tmpPath, long size, long vsize)
    {
        var u = r.User;
        var started = Stopwatch.StartNew();
        string? edited = null;
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
            var keepFolder = MaildirDelivery.FolderFor(u.Maildir, r.Detail);
            var stores = new List<(string Folder, IReadOnlyList<string> Flags)>();
            SieveResult? result = null;
            SieveMessage? message = null;
            var faults = new List<string>();
            var scripts = sieve?.Scripts(u, faults) ?? [];
            foreach (var fault in faults) Fault(r, "script not run: " + fault);
            if (scripts.Count > 0)
            {
                (result, message) = sieve!.Run(scripts, u, tmpPath, _from ?? "", r.Address, Conn.RemoteIp?.ToString());
                if (result.Error is { } error) Fault(r, $"{error}; the message is kept in INBOX");
                foreach (var warning in result.Warnings) Log.Info($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>: sieve: {MailLog.Safe(warning)}");
                if (result.Actions.OfType<RejectAction>().FirstOrDefault() is { } reject)
                {
                    var refused = Rejected(reject.Reason);
                    Log.Info($"{Conn.SessionId}: from=<{MailLog.Safe(_from)}>, to=<{MailLog.Safe(r.Address)}>, relay=local, dsn=5.7.1, status=bounced (rejected by sieve: {MailLog.Safe(refused.Text)})");
                    return refused.About(r.Address);
                }
                foreach (var a in result.Actions)
                {
                    if (a is KeepAction k) stores.Add((keepFolder, k.Flags));
                    else if (a is FileIntoAction f) stores.Add((FileIntoFolder(r, f) ?? keepFolder, f.Flags));
                }
                if (result.ImplicitKeep) stores.Add((keepFolder, result.ImplicitKeepFlags));
            }
            else stores.Add((keepFolder, []));
            stores = stores.DistinctBy(x => x.Folder).ToList();

            // A message whose header a script edited is stored (and sent) as edited: a copy of its own.
            var source = tmpPath;
            long storedSize = size, storedVsize = vsize;
            if (message is { HeadersChanged: true })
            {
                var (copy, fs) = MaildirDelivery.CreateTmp(u.Maildir, u.Uid, u.Gid);
                edited = copy;
                using (fs)
                {
                    message.Write(fs);
                    fs.Flush(flushToDisk: true);
                    storedSize = fs.Length;
                }
                storedVsize = storedSize + SieveDelivery.CountLines(copy);
                source = copy;
            }
            var placed = new List<string>();
            foreach (var (folder, flags) in stores)
            {
                var path = MaildirDelivery.Publish(source, folder, storedSize, storedVsize, link: true, u.Uid, u.Gid,
                    SieveDelivery.FlagLetters(flags, folder, u.Uid, u.Gid));
                MaildirQuota.Add(u.Maildir, storedSize, 1);
                placed.Add((folder == u.Maildir ? "" : Path.GetFileName(folder) + "/") + Path.GetFileName(path));
            }
            if (result != null) placed.AddRange(await SendOnAsync(r, result, source, placed.Count > 0, keepFolder, storedSize, storedVsize));
            if (result is { Error: null } && result.DuplicateMarks.Count > 0)
                SieveDelivery.Record(u, result.DuplicateMarks.Select(m => (m.Key, m.Period)));
            var outcome = placed.Count > 0 ? string.Join(", ", placed) : "discarded by sieve";
            Log.Info($"{Conn.SessionId}: from=<{MailLog.Safe(_from)}>, to=<{MailLog.Safe(r.Address)}>, relay=local, size={size}, delay={started.Elapsed.TotalSeconds:0.000}, dsn=2.0.0, status=sent ({outcome})");
            return Replies.Saved(r.Address);
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            var kind = StorageError.Classify(e);
            var reply = SmtpReply.MailboxFailure(kind, options.QuotaTemporary);
            Log.Error($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>, relay=local, dsn={reply.Status}, status=deferred ({kind}: {MailLog.Safe(e.Message)})");
            return reply.About(r.Address);
        }
        finally
        {
            if (edited != null) try { File.Delete(edited); } catch (IOException) { }
        }
    }

    private void Fault(Recipient r, string text)
    {
        Log.Warn($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>: sieve: {MailLog.Safe(text)}");
        SieveDelivery.UserLog(r.User, text);
    }

    /// <summary>The folder of a fileinto, created when :create asks; null (keep instead) when it is not there or not a valid name.</summary>
    private string? FileIntoFolder(Recipient r, FileIntoAction f)
    {
        var name = MailboxName.Normalize(f.Mailbox);
        if (name == "INBOX") return r.User.Maildir;
        if (MailboxName.Validate(name) is { } why) { Fault(r, $"fileinto \"{f.Mailbox}\": {why}; kept in INBOX"); return null; }
        var folder = new MaildirFolder(MailboxName.Directory(r.User.Maildir, name), r.User.Uid, r.User.Gid);
        if (folder.Exists) return folder.Path;
        if (!f.Create) { Fault(r, $"fileinto \"{f.Mailbox}\": no such folder; kept in INBOX"); return null; }
        folder.Create();
        Subscriptions.Update(r.User.Maildir, names => names.Add(name), r.User.Uid, r.User.Gid);
        return folder.Path;
    }

    /// <summary>
    /// Redirects and the vacation reply, through mtad's pickup socket. A redirect that cannot be
    /// handed over keeps the message in INBOX if nothing else stored it.
    /// </summary>
    private async Task<List<string>> SendOnAsync(Recipient r, SieveResult result, string source, bool stored, string keepFolder, long size, long vsize)
    {
        var done = new List<string>();
        var u = r.User;
        foreach (var redirect in result.Actions.OfType<RedirectAction>())
        {
            // With several recipients the stored copy has no Delivered-To: the redirected one names this recipient, for loop checks.
            var prefix = _rcpts.Count == 1 ? [] : Encoding.UTF8.GetBytes($"Delivered-To: {r.Address}\n");
            var failure = await sieve!.SendAsync(_from ?? "", redirect.Address, () => File.OpenRead(source), CancellationToken.None, prefix);
            if (failure == null) { done.Add($"redirected to <{redirect.Address}>"); continue; }
            Fault(r, $"redirect to <{redirect.Address}> failed: {failure}");
            if (!stored)
            {
                var path = MaildirDelivery.Publish(source, keepFolder, size, vsize, link: true, u.Uid, u.Gid);
                MaildirQuota.Add(u.Maildir, size, 1);
                done.Add(Path.GetFileName(path));
                stored = true;
            }
        }
        if (result.Actions.OfType<VacationAction>().FirstOrDefault() is { } v)
        {
            var key = "vacation\0" + v.Handle + "\0" + v.To.ToLowerInvariant();
            if (v.Suppressed != null) Log.Info($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>: sieve: no vacation reply to <{MailLog.Safe(v.To)}>: {v.Suppressed}");
            else if (SieveDelivery.Seen(SieveDelivery.Home(u), key)) Log.Info($"{Conn.SessionId}: to=<{MailLog.Safe(r.Address)}>: sieve: no vacation reply to <{MailLog.Safe(v.To)}>: already replied within {v.Period.TotalDays:0.##} days");
            else
            {
                var reply = sieve!.VacationReply(v, r.User.User);
                var failure = await sieve.SendAsync("", v.To, () => new MemoryStream(reply, writable: false), CancellationToken.None);
                if (failure != null) Fault(r, $"vacation reply to <{v.To}> failed: {failure}");
                else
                {
                    SieveDelivery.Record(u, [(key, v.Period)]);
                    done.Add($"vacation reply sent to <{v.To}>");
                }
            }
        }
        return done;
    }
}
