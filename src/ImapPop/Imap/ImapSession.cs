// One IMAP session (RFC 9051 and RFC 3501): read a whole command (the
// resumable CommandReader), look it up in the command table with its state
// and flags (ImapSession.Commands), run it (one file per command in
// Commands/), write its tagged response, log every NO and BAD. The states are
// not authenticated, authenticated, selected and logout; no plaintext login
// before TLS except from loopback (LOGINDISABLED).
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Mail.ImapPop;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;
using Mail.Shared.Net;
using NLog;

namespace Mail.ImapPop.Imap;

internal sealed record ImapOptions(string Hostname, long MaxMessageSize, MailboxHub Hub, UserSessions Sessions, TimeSpan LoginTimeout, bool TrustLoopback = true);

internal sealed partial class ImapSession(LineConnection conn, AuthClient auth, Func<X509Certificate2?> certificate, ImapOptions options, bool implicitTls)
{
    private static readonly Logger Log = MailLog.For("imap");
    public static readonly string[] SpecialUse = ["Drafts", "Sent", "Trash", "Junk", "Archive"];
    private MailUser? _user;
    private Selected? _selected;
    private CommandReader _reader = null!;
    private static readonly ReaderLimits PreLoginLimits = new()
    {
        MaxLine = 65536, MaxMemoryLiteral = 8192, MaxLiteral = 8192, MaxAppendLiteral = 8192, MaxLiterals = 4, MaxCommand = 65536,
    };

    /// <summary>Logged in: commands may be as large as the limits allow, APPEND literals spill to disk, no login deadline.</summary>
    private void LoggedIn()
    {
        _reader = new CommandReader(new ReaderLimits { MaxAppendLiteral = options.MaxMessageSize }, SpillLiteral);
        conn.SetSessionDeadline(null);
        conn.StressApplies = false;
    }
    private int _badCommands;
    private bool _utf8;
    private bool _condstore, _qresync;
    /// <summary>IMAP4rev2 enabled (RFC 9051): no \Recent, SEARCH answers with ESEARCH, UTF-8 names.</summary>
    private bool _rev2;

    /// <summary>Plaintext passwords may be sent: under TLS, or from loopback when trust_loopback allows it.</summary>
    private bool Secure => conn.IsTls || (options.TrustLoopback && conn.IsLocal);

    private string Capabilities()
    {
        var caps = new List<string> { "IMAP4rev1", "IMAP4rev2", "SASL-IR", "LITERAL+", "ENABLE", "ID", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
            "UNSELECT", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "CONDSTORE", "QRESYNC", "BINARY",
            "SORT", "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "ESORT", "SEARCHRES", "MULTIAPPEND", "CATENATE", "CONTEXT=SEARCH", "CONTEXT=SORT", "COMPRESS=DEFLATE", "METADATA", "NOTIFY" };
        if (_user == null)
        {
            if (!conn.IsTls && certificate() != null) caps.Add("STARTTLS");
            if (Secure) { caps.Add("AUTH=PLAIN"); caps.Add("AUTH=LOGIN"); }
            else caps.Add("LOGINDISABLED");
        }
        return string.Join(' ', caps);
    }

    public async Task RunAsync()
    {
        // Before login a command is small and held in memory (at most 64 KiB: an ID of 30
        // fields of 1,024 bytes, as Dovecot's login processes take): a stranger's connection
        // costs little, and all of them at most max_connections times this; the session must
        // log in within login_timeout.
        _reader = new CommandReader(PreLoginLimits);
        conn.SetSessionDeadline(options.LoginTimeout);
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}{(implicitTls ? " (TLS)" : "")}");
        await conn.WriteLineAsync($"* OK [CAPABILITY {Capabilities()}] {options.Hostname} IMAP ready.");
        try
        {
            while (true)
            {
                var (kind, parts, message, badTag) = await ReadCommandAsync();
                if (kind == ReadKind.NeedMore) // the connection ended
                {
                    if (conn.Stopping.IsCancellationRequested) await TryWrite("* BYE Server shutting down.");
                    else if (!conn.Stopping.IsCancellationRequested && parts == null && message == "timeout") await TryWrite("* BYE Disconnected for inactivity.");
                    return;
                }
                if (kind == ReadKind.Fatal) { await conn.WriteLineAsync("* BYE " + message); return; }
                if (kind == ReadKind.Bad)
                {
                    _command = "";
                    if (!await RespondAsync(badTag, ImapResponse.Bad(message!))) return;
                    continue;
                }
                try
                {
                    if (!await ExecuteAsync(parts!)) return;
                }
                finally
                {
                    foreach (var p in parts!) if (p is LiteralPart { Spilled: { } spilled }) await spilled.DisposeAsync();
                }
            }
        }
        finally
        {
            _reader.Reset();
            StopNotify();
            if (_selected != null) options.Hub.Leave(_selected.Folder.Path, this);
            if (_user != null) options.Sessions.Leave(_user.User);
            Log.Info($"{conn.SessionId}: disconnect from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}");
        }
    }

    private async Task TryWrite(string line)
    {
        try { await conn.WriteLineAsync(line); } catch (IOException) { }
    }

    /// <summary>An APPEND literal too big to keep in memory goes to a file in the user's Maildir tmp/.</summary>
    private Stream SpillLiteral(long length)
    {
        var dir = _user != null ? Path.Combine(_user.Maildir, "tmp") : Path.GetTempPath();
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, MaildirDelivery.UniqueName() + ".append");
        return new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 64 * 1024, FileOptions.DeleteOnClose);
    }

    /// <summary>Reads one whole command; NeedMore with Message "timeout"/"closed" when the connection ends.</summary>
    /// <remarks>
    /// Waiting for a command is idle time; once its first bytes are in, the command with its
    /// literals is one transfer with one deadline (a byte now and then does not keep it alive).
    /// </remarks>
    private async Task<ReadResult> ReadCommandAsync()
    {
        try
        {
            bool started = false; // bytes of a command are in: no notification until it is whole
            while (true)
            {
                var reading = conn.ReadRawAsync();
                System.IO.Pipelines.ReadResult? read;
                if (_notify != null && !started)
                {
                    // NOTIFY (RFC 5465): between commands, changes are told as they happen.
                    var pending = reading.AsTask();
                    while (_notify != null && await Task.WhenAny(pending, _notify.Wake.Task) != pending) await SendNotificationsAsync();
                    read = await pending;
                }
                else read = await reading;
                if (read == null) return new ReadResult(ReadKind.NeedMore, Message: conn.Stopping.IsCancellationRequested ? "stopping" : "timeout");
                var buffer = read.Value.Buffer;
                var result = _reader.Feed(buffer, out var consumed);
                var used = buffer.Slice(0, consumed).Length;
                conn.Input.AdvanceTo(consumed, result.Kind == ReadKind.NeedMore ? buffer.End : consumed);
                switch (result.Kind)
                {
                    case ReadKind.NeedMore:
                        if (read.Value.IsCompleted) return new ReadResult(ReadKind.NeedMore, Message: "closed");
                        if (!buffer.IsEmpty) { conn.BeginTransferOnce(); started = true; }
                        conn.Credit(used);
                        continue;
                    case ReadKind.Continue:
                        started = true;
                        conn.BeginTransferOnce();
                        conn.Credit(used);
                        await conn.WriteLineAsync("+ Ready for literal data");
                        continue;
                    default:
                        return result;
                }
            }
        }
        finally { conn.EndTransfer(); }
    }

    /// <summary>Runs one command and writes its tagged response; false when the session ends.</summary>
    private async Task<bool> ExecuteAsync(IReadOnlyList<CommandPart> parts)
    {
        var first = ((LinePart)parts[0]).Text;
        int sp = first.IndexOf(' ');
        var tag = sp < 0 ? first : first[..sp];
        if (tag.Length == 0 || tag.Length > 64 || tag.Any(c => c <= ' ' || c > '~' || c is '(' or ')' or '{' or '%' or '*' or '"' or '\\' or '+'))
        {
            _command = "";
            return await RespondAsync("*", ImapResponse.Bad("Invalid tag"));
        }
        if (sp < 0) return await RespondAsync(tag, ImapResponse.Bad("Missing command"));
        int sp2 = first.IndexOf(' ', sp + 1);
        var name = (sp2 < 0 ? first[(sp + 1)..] : first[(sp + 1)..sp2]).ToUpperInvariant();
        var args = new Args(parts, 0, sp2 < 0 ? first.Length : sp2); // handlers read their leading space
        _command = name;
        bool uid = false;
        if (name == "UID")
        {
            uid = true;
            try { args.Space(); name = args.Atom().ToUpperInvariant(); }
            catch (ImapSyntaxException) { return await RespondAsync(tag, ImapResponse.Bad("Missing UID command")); }
            _command = "UID " + name;
        }
        ImapResponse response;
        try
        {
            response = await DispatchAsync(tag, name, args, uid);
        }
        catch (ImapSyntaxException e)
        {
            response = ImapResponse.Bad($"Error in IMAP command {name}: {e.Message}");
        }
        catch (RpcException e)
        {
            Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            response = ImapResponse.No("[UNAVAILABLE] Temporary authentication failure");
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            if (e is IOException && conn.Stopping.IsCancellationRequested) throw;
            var kind = StorageError.Classify(e);
            var line = $"{conn.SessionId}: {name} failed for {MailLog.Safe(_user?.User ?? "-")} ({kind}): {MailLog.Safe(e.Message)}";
            if (StorageReply.IsFault(kind)) Log.Error(line); else Log.Info(line);
            response = StorageReply.Imap(kind);
        }
        catch (Exception e) when (e is not OperationCanceledException && !conn.Stopping.IsCancellationRequested)
        {
            // A bug must cost this command, not the session.
            Log.Error(e, $"{conn.SessionId}: {name} failed for {MailLog.Safe(_user?.User ?? "-")}");
            response = ImapResponse.No("[SERVERBUG] Internal error occurred. Refer to server log for more information.");
        }
        return await RespondAsync(tag, response);
    }

    /// <summary>The command being run, for the log of what was refused.</summary>
    private string _command = "";

    /// <summary>
    /// Writes the tagged response; a NO or BAD is logged, as Postfix logs each command it
    /// rejects, and too many BADs end the session. False when the session ends.
    /// </summary>
    private async Task<bool> RespondAsync(string tag, ImapResponse response)
    {
        if (response.IsNone) return !response.Closes;
        if (response.IsRefusal)
            Log.Info($"{conn.SessionId}: reject: {(_command.Length > 0 ? MailLog.Safe(_command, 40) : "command")} from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}: {MailLog.Safe(tag, 64)} {response}");
        conn.BufferLine($"{tag} {response}");
        if (response.Status == "BAD" && ++_badCommands > 20)
        {
            await conn.WriteLineAsync("* BYE Too many invalid commands.");
            return false;
        }
        await conn.FlushAsync();
        return !response.Closes;
    }

    private Task Untagged(string text)
    {
        conn.BufferLine("* " + text);
        return Task.CompletedTask;
    }

    private MaildirFolder FolderOf(string name) => new(MailboxName.Directory(_user!.Maildir, name), _user.Uid, _user.Gid);

    /// <summary>A mailbox argument: decoded from modified UTF-7 (or UTF-8 once enabled), normalised, and checked.</summary>
    /// <summary>A mailbox name as a command gave it, decoded (mUTF-7 unless UTF8=ACCEPT), and why it cannot be used, if it cannot.</summary>
    private readonly record struct MailboxArgument(string Name, string? Error);

    /// <summary>Commands whose only argument is a mailbox (CREATE, DELETE, SUBSCRIBE, GETQUOTAROOT).</summary>
    private MailboxArgument OnlyMailbox(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        return new(name, error);
    }

    private string MailboxArg(Args args, out string? error)
    {
        var raw = args.AString();
        var decoded = _utf8 ? raw : MailboxName.Decode(raw);
        if (decoded == null)
        {
            error = "Mailbox name is not valid mUTF-7";
            return raw;
        }
        var name = MailboxName.Normalize(decoded);
        error = name == "INBOX" ? null : MailboxName.Validate(name);
        return name;
    }

    private string Wire(string name) => MessageView.Quote(_utf8 ? name : MailboxName.Encode(name));

    private string FlagList(SelectedMessage m)
    {
        var flags = new List<string>();
        var f = m.File.Flags;
        if (f.Contains('S')) flags.Add("\\Seen");
        if (f.Contains('R')) flags.Add("\\Answered");
        if (f.Contains('F')) flags.Add("\\Flagged");
        if (f.Contains('T')) flags.Add("\\Deleted");
        if (f.Contains('D')) flags.Add("\\Draft");
        var keywords = _selected?.Keywords ?? [];
        foreach (var c in f)
            if (c is >= 'a' and <= 'z' && c - 'a' < keywords.Count && keywords[c - 'a'].Length > 0) flags.Add(keywords[c - 'a']);
        if (m.Recent && !_rev2) flags.Add("\\Recent");
        return string.Join(' ', flags);
    }

    private string PermanentKeywords() => string.Join("", (_selected?.Keywords ?? []).Where(k => k.Length > 0).Select(k => " " + k));

    /// <summary>
    /// A CONDSTORE-enabling command (RFC 7162 3.1): from now on flag changes carry MODSEQ, and
    /// the first one while a mailbox is selected tells that mailbox's HIGHESTMODSEQ.
    /// </summary>
    private void EnableCondStore()
    {
        if (_selected is { CondStore: false }) conn.BufferLine($"* OK [HIGHESTMODSEQ {_selected.ModSeqs.Highest}] Highest");
        _condstore = true;
        if (_selected != null) _selected.CondStore = true;
    }

    /// <summary>Untagged news of the selected mailbox (other sessions, deliveries).</summary>
    private async Task SendUpdatesAsync(bool allowExpunge)
    {
        if (_selected == null) return;
        foreach (var u in _selected.Refresh(allowExpunge, FlagList, SearchRemovals)) conn.BufferLine(u);
        SearchUpdates();
        await Task.CompletedTask;
    }
}
