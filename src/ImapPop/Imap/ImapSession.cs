// One IMAP session (RFC 9051 and RFC 3501): the states not authenticated,
// authenticated, selected and logout; LOGIN and AUTHENTICATE through AuthD
// (no plaintext before TLS except from loopback: LOGINDISABLED); the
// mailbox commands over the user's Maildir++ tree; FETCH, STORE, SEARCH,
// COPY, MOVE, EXPUNGE and their UID forms on the selected mailbox; IDLE.
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

internal sealed record ImapOptions(string Hostname, long MaxMessageSize, MailboxHub Hub, UserSessions Sessions, bool TrustLoopback = true);

internal sealed partial class ImapSession(LineConnection conn, AuthClient auth, Func<X509Certificate2?> certificate, ImapOptions options, bool implicitTls)
{
    private static readonly Logger Log = MailLog.For("imap");
    public static readonly string[] SpecialUse = ["Drafts", "Sent", "Trash", "Junk", "Archive"];
    private MailUser? _user;
    private Selected? _selected;
    private CommandReader _reader = null!;
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
            "UNSELECT", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "CONDSTORE", "QRESYNC", "BINARY" };
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
        _reader = new CommandReader(new ReaderLimits { MaxAppendLiteral = options.MaxMessageSize }, SpillLiteral);
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}{(implicitTls ? " (TLS)" : "")}");
        await conn.WriteLineAsync($"* OK [CAPABILITY {Capabilities()}] {options.Hostname} IMAP ready.");
        try
        {
            while (true)
            {
                var (kind, parts, message) = await ReadCommandAsync();
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
                    if (!await RespondAsync("*", ImapResponse.Bad(message!))) return;
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
    private async Task<ReadResult> ReadCommandAsync()
    {
        while (true)
        {
            var read = await conn.ReadRawAsync();
            if (read == null) return new ReadResult(ReadKind.NeedMore, Message: conn.Stopping.IsCancellationRequested ? "stopping" : "timeout");
            var buffer = read.Value.Buffer;
            var result = _reader.Feed(buffer, out var consumed);
            conn.Input.AdvanceTo(consumed, result.Kind == ReadKind.NeedMore ? buffer.End : consumed);
            switch (result.Kind)
            {
                case ReadKind.NeedMore:
                    if (read.Value.IsCompleted) return new ReadResult(ReadKind.NeedMore, Message: "closed");
                    continue;
                case ReadKind.Continue:
                    await conn.WriteLineAsync("+ Ready for literal data");
                    continue;
                default:
                    return result;
            }
        }
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
            Log.Info($"{conn.SessionId}: reject: {MailLog.Safe(_command, 40)} from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}: {MailLog.Safe(tag, 64)} {response}");
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

    private async Task<ImapResponse> IdAsync(Args args)
    {
        // ID ( "name" "value" ... ) or NIL: logged, answered with our name.
        args.Space();
        if (args.TryChar('('))
        {
            var pairs = new List<string>();
            while (!args.TryChar(')'))
            {
                if (pairs.Count > 60) throw new ImapSyntaxException("Too many ID fields");
                if (pairs.Count > 0) args.Space();
                pairs.Add(args.String());
                args.Space();
                pairs.Add(args.NString() ?? "NIL");
            }
            Log.Info($"{conn.SessionId}: ID {MailLog.Safe(string.Join(' ', pairs), 300)}");
        }
        else if (!args.Atom().Equals("NIL", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected a list or NIL");
        args.End();
        await Untagged("ID (\"name\" \"Mail suite\")");
        return ImapResponse.Ok("ID completed.");
    }

    private async Task<ImapResponse> EnableAsync(Args args)
    {
        var enabled = new List<string>();
        while (!args.AtEnd)
        {
            args.Space();
            var cap = args.Atom().ToUpperInvariant();
            if (enabled.Contains(cap)) continue;
            if (cap is "UTF8=ACCEPT" or "IMAP4REV2") { enabled.Add(cap); _utf8 = true; _rev2 |= cap == "IMAP4REV2"; }
            else if (cap == "CONDSTORE") { enabled.Add(cap); _condstore = true; }
            else if (cap == "QRESYNC") { enabled.Add(cap); _condstore = _qresync = true; }
            if (_selected != null) { _selected.CondStore = _condstore; _selected.Vanished = _qresync; _selected.Rev2 = _rev2; }
        }
        await Untagged("ENABLED" + string.Concat(enabled.Select(e => " " + e)));
        return ImapResponse.Ok("Enabled.");
    }

    private async Task<ImapResponse> StartTlsAsync(string tag, Args args)
    {
        args.End();
        var cert = certificate();
        if (conn.IsTls || cert == null) return ImapResponse.Bad("TLS not available.");
        if (!await conn.StartTlsAsync(cert, $"{tag} OK Begin TLS negotiation now.")) return ImapResponse.None.AndClose();
        _reader.Reset();
        return ImapResponse.None;
    }

    private ClientInfo Client() => new()
    {
        Service = "imap", RemoteIp = conn.RemoteIp?.ToString() ?? "", LocalIp = conn.LocalIp?.ToString() ?? "", Secured = Secure, SessionId = conn.SessionId,
    };

    private async Task<ImapResponse> LoginAsync(Args args)
    {
        args.Space();
        var user = args.AString();
        args.Space();
        var password = args.AString();
        args.End();
        if (!Secure) return ImapResponse.No("[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
        var result = await SaslExchange.PlainAsync(auth, user, password, Client());
        if (result.Unreachable != null) Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(result.Unreachable)}");
        return await FinishAuthAsync(result, "LOGIN");
    }

    private async Task<ImapResponse> AuthenticateAsync(Args args)
    {
        args.Space();
        var mech = args.Atom().ToUpperInvariant();
        string? initial = null;
        if (!args.AtEnd)
        {
            args.Space();
            initial = args.Atom("=");
        }
        args.End();
        if (!Secure) return ImapResponse.No("[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
        var result = await SaslExchange.RunAsync(auth, conn, "+ ", mech, initial, Client());
        if (result.Unreachable != null) Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(result.Unreachable)}");
        return await FinishAuthAsync(result, mech);
    }

    private async Task<ImapResponse> FinishAuthAsync(SaslOutcome result, string mech)
    {
        switch (result.Status)
        {
            case SaslStatus.Success:
                var lookup = await auth.Api.LookupUserAsync(new LookupUserRequest { User = result.User, Client = Client() });
                if (lookup.Status != LookupStatus.Ok) return ImapResponse.No("[UNAVAILABLE] Temporary user lookup failure.");
                if (!options.Sessions.TryEnter(lookup.User.User))
                {
                    Log.Warn($"{conn.SessionId}: login refused: user=<{MailLog.Safe(lookup.User.User)}> has too many sessions, rip={conn.RemoteIp}");
                    return ImapResponse.No("[LIMIT] Too many simultaneous connections for this user.");
                }
                _user = lookup.User;
                try { PrepareMaildir(); }
                catch
                {
                    options.Sessions.Leave(_user.User);
                    _user = null; // not logged in after all
                    throw;
                }
                Log.Info($"{conn.SessionId}: login: user=<{MailLog.Safe(_user.User)}>, method={mech}, rip={conn.RemoteIp}{(conn.IsTls ? ", TLS" : "")}");
                return ImapResponse.Ok($"[CAPABILITY {Capabilities()}] Logged in");
            case SaslStatus.Tempfail: return ImapResponse.No("[UNAVAILABLE] Temporary authentication failure.");
            case SaslStatus.BadMechanism: return ImapResponse.No("Unsupported authentication mechanism.");
            case SaslStatus.Malformed: return ImapResponse.Bad("Invalid base64 data.");
            case SaslStatus.Aborted: return ImapResponse.Bad("Authentication aborted by client.");
            default: return ImapResponse.No("[AUTHENTICATIONFAILED] Authentication failed.");
        }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Prepared = new(StringComparer.Ordinal);

    /// <summary>First login (once per process and Maildir): the Maildir and the special-use folders exist, subscribed.</summary>
    private void PrepareMaildir()
    {
        var u = _user!;
        if (Prepared.ContainsKey(u.Maildir) && Directory.Exists(Path.Combine(u.Maildir, "cur"))) return;
        MaildirDelivery.Ensure(u.Maildir, u.Uid, u.Gid);
        var created = new List<string>();
        foreach (var special in SpecialUse)
        {
            var folder = new MaildirFolder(MailboxName.Directory(u.Maildir, special), u.Uid, u.Gid);
            if (folder.Exists) continue;
            folder.Create();
            created.Add(special);
        }
        if (created.Count > 0) Subscriptions.Update(u.Maildir, subs => created.Count(subs.Add) > 0, u.Uid, u.Gid);
        Prepared[u.Maildir] = true;
    }

    private MaildirFolder FolderOf(string name) => new(MailboxName.Directory(_user!.Maildir, name), _user.Uid, _user.Gid);

    /// <summary>A mailbox argument: decoded from modified UTF-7 (or UTF-8 once enabled), normalised, and checked.</summary>
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

    private void Unselect()
    {
        if (_selected != null) options.Hub.Leave(_selected.Folder.Path, this);
        _selected = null;
    }

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

    private async Task<ImapResponse> SelectAsync(Args args, bool readOnly)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        // SELECT mailbox (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids]))
        (uint Validity, ulong ModSeq, SequenceSet? Known)? qresync = null;
        if (args.TryChar(' '))
        {
            args.Expect('(');
            while (!args.TryChar(')'))
            {
                var p = args.Atom().ToUpperInvariant();
                if (p == "CONDSTORE") _condstore = true;
                else if (p == "QRESYNC")
                {
                    if (!_qresync) throw new ImapSyntaxException("QRESYNC not enabled");
                    args.Space();
                    args.Expect('(');
                    var validity = args.NzNumber();
                    args.Space();
                    var modseq = args.Number64();
                    SequenceSet? known = null;
                    if (args.TryChar(' ') && args.Peek() != '(') known = args.SequenceSet();
                    if (args.TryChar(' ') || args.Peek() == '(')
                    {
                        args.Expect('('); // seq-match-data: not needed, the known UIDs suffice
                        while (!args.TryChar(')')) if (!args.TryChar(' ')) args.Atom("*");
                    }
                    args.Expect(')');
                    qresync = (validity, modseq, known);
                }
                else throw new ImapSyntaxException("Unknown SELECT parameter " + p);
                if (args.Peek() != ')') args.Space();
            }
        }
        args.End();
        // RFC 9051 and 7162: a mailbox left by a new SELECT is announced CLOSED.
        if (_selected != null) conn.BufferLine("* OK [CLOSED] Previous mailbox closed.");
        Unselect();
        if (error != null) return ImapResponse.No(error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        var state = folder.Sync(takeNew: !readOnly);
        var modSeqs = ModSeqStore.For(folder.Path, _user!.Uid, _user.Gid);
        modSeqs.Observe(state);
        _selected = new Selected(name, folder, readOnly, state, folder.Keywords(), modSeqs) { CondStore = _condstore, Vanished = _qresync, Rev2 = _rev2 };
        options.Hub.Join(folder.Path, this);
        var s = _selected;
        await Untagged($"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()})");
        await Untagged($"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{PermanentKeywords()} \\*)] Flags permitted.");
        await Untagged($"{s.Count} EXISTS");
        if (!_rev2) await Untagged($"{s.Messages.Count(m => m.Recent)} RECENT");
        var firstUnseen = s.Messages.FindIndex(m => !m.File.Flags.Contains('S'));
        if (firstUnseen >= 0) await Untagged($"OK [UNSEEN {firstUnseen + 1}] First unseen.");
        await Untagged($"OK [UIDVALIDITY {s.UidValidity}] UIDs valid");
        await Untagged($"OK [UIDNEXT {s.UidNext}] Predicted next UID");
        await Untagged($"OK [HIGHESTMODSEQ {modSeqs.Highest}] Highest");
        if (qresync is { } q && q.Validity == s.UidValidity)
        {
            // RFC 7162 3.2.5.1: what vanished and what changed since the client's mod-sequence.
            var max = s.Max(uid: true);
            var gone = modSeqs.ExpungedSince(q.ModSeq, u => q.Known == null || q.Known.Contains(u, Math.Max(max, u)));
            if (gone.Count > 0) await Untagged("VANISHED (EARLIER) " + SequenceSet.Compact(gone));
            for (int i = 0; i < s.Count; i++)
            {
                var m = s.Messages[i];
                var seq = modSeqs.Of(m.Uid);
                if (seq > q.ModSeq) await Untagged($"{i + 1} FETCH (UID {m.Uid} FLAGS ({FlagList(m)}) MODSEQ ({seq}))");
            }
        }
        Log.Info($"{conn.SessionId}: {(readOnly ? "examine" : "select")} user=<{MailLog.Safe(_user!.User)}> mailbox=\"{MailLog.Safe(name)}\" messages={s.Count}");
        return ImapResponse.Ok(readOnly ? "[READ-ONLY] Examine completed." : "[READ-WRITE] Select completed.");
    }

    /// <summary>Untagged news of the selected mailbox (other sessions, deliveries).</summary>
    private async Task SendUpdatesAsync(bool allowExpunge)
    {
        if (_selected == null) return;
        foreach (var u in _selected.Refresh(allowExpunge, FlagList)) conn.BufferLine(u);
        await Task.CompletedTask;
    }

    private async Task<ImapResponse> CreateAsync(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        if (name == "INBOX") return ImapResponse.No("[ALREADYEXISTS] Mailbox already exists");
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (folder.Exists) return ImapResponse.No("[ALREADYEXISTS] Mailbox already exists");
        // RFC 9051 6.3.4: superior hierarchical names are created too.
        for (int i = name.IndexOf(MailboxName.Separator); i > 0; i = name.IndexOf(MailboxName.Separator, i + 1))
        {
            var parent = FolderOf(name[..i]);
            if (!parent.Exists) parent.Create();
        }
        folder.Create();
        Log.Info($"{conn.SessionId}: create user=<{MailLog.Safe(_user!.User)}> mailbox=\"{MailLog.Safe(name)}\"");
        return ImapResponse.Ok("Create completed.");
    }

    private async Task<ImapResponse> DeleteAsync(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        if (name == "INBOX") return ImapResponse.No("[CANNOT] INBOX can't be deleted.");
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        if (_selected?.Name == name) Unselect();
        // As Dovecot: the folder's directory goes (renamed aside first, so no reader sees it half-deleted).
        var trash = Path.Combine(_user!.Maildir, "tmp", ".deleted." + Guid.NewGuid().ToString("N"));
        Directory.Move(folder.Path, trash);
        FolderIndex.Forget(folder.Path);
        ModSeqStore.Forget(folder.Path);
        Directory.Delete(trash, recursive: true);
        Log.Info($"{conn.SessionId}: delete user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(name)}\"");
        return ImapResponse.Ok("Delete completed.");
    }

    private async Task<ImapResponse> RenameAsync(Args args)
    {
        args.Space();
        var from = MailboxArg(args, out var e1);
        args.Space();
        var to = MailboxArg(args, out var e2);
        args.End();
        if (e1 != null || e2 != null) return ImapResponse.No("[CANNOT] " + (e1 ?? e2));
        if (to == "INBOX") return ImapResponse.No("[ALREADYEXISTS] Target mailbox already exists");
        var source = FolderOf(from);
        var target = FolderOf(to);
        if (!source.Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + from);
        if (target.Exists) return ImapResponse.No("[ALREADYEXISTS] Target mailbox already exists");
        if (from == "INBOX")
        {
            // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX stays, empty.
            target.Create();
            source.MoveAllTo(target);
        }
        else
        {
            if (_selected?.Name == from) Unselect();
            // Children move with their parent.
            var prefix = Path.GetFileName(source.Path) + ".";
            var children = Directory.EnumerateDirectories(_user!.Maildir, prefix + "*")
                .Where(c => Path.GetFileName(c).Length > prefix.Length && Path.GetFileName(c).StartsWith(prefix, StringComparison.Ordinal)).ToList();
            Directory.Move(source.Path, target.Path);
            FolderIndex.Forget(source.Path);
            ModSeqStore.Forget(source.Path);
            var targetPrefix = Path.GetFileName(target.Path) + ".";
            foreach (var child in children)
            {
                Directory.Move(child, Path.Combine(_user.Maildir, targetPrefix + Path.GetFileName(child)[prefix.Length..]));
                FolderIndex.Forget(child);
                ModSeqStore.Forget(child);
            }
        }
        return ImapResponse.Ok("Rename completed.");
    }

    private async Task<ImapResponse> SubscribeAsync(Args args, bool subscribe)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        Subscriptions.Update(_user!.Maildir, subs => subscribe ? subs.Add(name) : subs.Remove(name), _user.Uid, _user.Gid);
        return ImapResponse.Ok(subscribe ? "Subscribe completed." : "Unsubscribe completed.");
    }

    /// <summary>Every folder of the user, INBOX first.</summary>
    private List<string> AllFolders()
    {
        var list = new List<string> { "INBOX" };
        foreach (var dir in Directory.EnumerateDirectories(_user!.Maildir, ".*"))
        {
            var name = MailboxName.FromDirectory(Path.GetFileName(dir));
            if (name != null && Directory.Exists(Path.Combine(dir, "cur"))) list.Add(name);
        }
        list.Sort((a, b) => a == "INBOX" ? -1 : b == "INBOX" ? 1 : string.CompareOrdinal(a, b));
        return list;
    }

    /// <summary>IMAP's list wildcards: "*" matches anything, "%" anything but the separator.</summary>
    private static bool Matches(string name, string pattern)
    {
        var rx = "^" + string.Concat(pattern.Select(c => c switch
        {
            '*' => ".*", '%' => "[^/]*", _ => System.Text.RegularExpressions.Regex.Escape(c.ToString()),
        })) + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(name, rx, System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1));
    }

    private async Task<ImapResponse> ListAsync(Args args, bool lsub)
    {
        args.Space();
        var selectOpts = new List<string>();
        if (!lsub && args.TryChar('('))
        {
            while (!args.TryChar(')')) { if (selectOpts.Count > 0) args.Space(); selectOpts.Add(args.Atom().ToUpperInvariant()); }
            args.Space();
        }
        var reference = args.AString();
        args.Space();
        var patterns = new List<string>();
        if (!lsub && args.TryChar('('))
        {
            while (!args.TryChar(')')) { if (patterns.Count > 0) args.Space(); patterns.Add(args.ListMailbox()); }
        }
        else patterns.Add(args.ListMailbox());
        var returnOpts = new List<string>();
        string[] statusItems = [];
        if (!lsub && !args.AtEnd)
        {
            args.Space();
            if (!args.Atom().Equals("RETURN", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected RETURN");
            args.Space();
            args.Expect('(');
            while (!args.TryChar(')'))
            {
                if (returnOpts.Count > 0) args.Space();
                var opt = args.Atom().ToUpperInvariant();
                returnOpts.Add(opt);
                if (opt == "STATUS")
                {
                    args.Space();
                    args.Expect('(');
                    var items = new List<string>();
                    while (!args.TryChar(')')) { if (items.Count > 0) args.Space(); items.Add(args.Atom().ToUpperInvariant()); }
                    statusItems = [.. items];
                }
            }
        }
        args.End();
        if (patterns.Count == 1 && patterns[0].Length == 0 && !lsub)
        {
            await Untagged("LIST (\\Noselect) \"/\" \"\"");
            return ImapResponse.Ok("List completed.");
        }
        var folders = AllFolders();
        var subs = Subscriptions.Read(_user!.Maildir);
        bool subscribedOnly = lsub || selectOpts.Contains("SUBSCRIBED");
        bool specialOnly = selectOpts.Contains("SPECIAL-USE");
        foreach (var name in folders)
        {
            var decodedRef = _utf8 ? reference : MailboxName.Decode(reference) ?? reference;
            if (!patterns.Any(p => Matches(name, decodedRef + (_utf8 ? p : MailboxName.Decode(p) ?? p)) ||
                                   (name == "INBOX" && Matches("INBOX", (decodedRef + p).ToUpperInvariant())))) continue;
            if (subscribedOnly && !subs.Contains(name)) continue;
            var attrs = new List<string>();
            bool hasChildren = folders.Any(f => f.StartsWith(name + "/", StringComparison.Ordinal));
            attrs.Add(hasChildren ? "\\HasChildren" : "\\HasNoChildren");
            var special = SpecialUse.FirstOrDefault(s => s == name);
            if (special != null) attrs.Add("\\" + special);
            if (specialOnly && special == null) continue;
            if ((selectOpts.Contains("SUBSCRIBED") || returnOpts.Contains("SUBSCRIBED")) && subs.Contains(name)) attrs.Add("\\Subscribed");
            if (lsub) attrs.RemoveAll(a => a is "\\HasChildren" or "\\HasNoChildren");
            await Untagged($"{(lsub ? "LSUB" : "LIST")} ({string.Join(' ', attrs)}) \"/\" {Wire(name)}");
            if (statusItems.Length > 0) await Untagged(StatusLine(name, statusItems));
        }
        return ImapResponse.Ok(lsub ? "Lsub completed." : "List completed.");
    }

    private string StatusLine(string name, string[] items)
    {
        var folder = FolderOf(name);
        var state = _selected?.Name == name ? null : folder.Sync(takeNew: false);
        var messages = state?.Messages ?? _selected!.Messages.Select(m => m.File).ToList();
        var parts = new List<string>();
        foreach (var item in items)
        {
            parts.Add(item switch
            {
                "MESSAGES" => $"MESSAGES {messages.Count}",
                "RECENT" => $"RECENT {messages.Count(m => m.Recent)}",
                "UIDNEXT" => $"UIDNEXT {state?.NextUid ?? _selected!.UidNext}",
                "UIDVALIDITY" => $"UIDVALIDITY {state?.UidValidity ?? _selected!.UidValidity}",
                "UNSEEN" => $"UNSEEN {messages.Count(m => !m.Flags.Contains('S'))}",
                "DELETED" => $"DELETED {messages.Count(m => m.Flags.Contains('T'))}",
                "SIZE" => $"SIZE {messages.Sum(m => MaildirQuota.SizeFromName(m.Path) ?? 0)}",
                "HIGHESTMODSEQ" => $"HIGHESTMODSEQ {HighestModSeq(name, folder, state)}",
                _ => throw new ImapSyntaxException("Unknown STATUS item " + item),
            });
        }
        return $"STATUS {Wire(name)} ({string.Join(' ', parts)})";
    }

    private ulong HighestModSeq(string name, MaildirFolder folder, FolderState? state)
    {
        if (_selected?.Name == name) return _selected.ModSeqs.Highest;
        var store = ModSeqStore.For(folder.Path, _user!.Uid, _user.Gid);
        store.Observe(state ?? folder.Sync(takeNew: false));
        return store.Highest;
    }

    private async Task<ImapResponse> StatusAsync(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.Space();
        args.Expect('(');
        var items = new List<string>();
        while (!args.TryChar(')')) { if (items.Count > 0) args.Space(); items.Add(args.Atom().ToUpperInvariant()); }
        args.End();
        if (error != null) return ImapResponse.No(error);
        if (!FolderOf(name).Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        await Untagged(StatusLine(name, [.. items]));
        return ImapResponse.Ok("Status completed.");
    }

    // ---- QUOTA (RFC 9208): one root, "", for the whole Maildir, from the directory's limits ----

    private string? QuotaLine()
    {
        var u = _user!;
        if (u.QuotaBytes == 0 && u.QuotaMessages == 0) return null;
        var usage = MaildirQuota.Read(u.Maildir, (long)u.QuotaBytes, (long)u.QuotaMessages);
        var parts = new List<string>();
        if (u.QuotaBytes > 0) parts.Add($"STORAGE {(usage.Bytes + 1023) / 1024} {u.QuotaBytes / 1024}");
        if (u.QuotaMessages > 0) parts.Add($"MESSAGE {usage.Messages} {u.QuotaMessages}");
        return $"QUOTA \"\" ({string.Join(' ', parts)})";
    }

    private async Task<ImapResponse> GetQuotaRootAsync(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        if (error != null) return ImapResponse.No(error);
        if (!FolderOf(name).Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        var quota = QuotaLine();
        await Untagged($"QUOTAROOT {Wire(name)}{(quota != null ? " \"\"" : "")}");
        if (quota != null) await Untagged(quota);
        return ImapResponse.Ok("Getquotaroot completed.");
    }

    private async Task<ImapResponse> GetQuotaAsync(Args args)
    {
        args.Space();
        var root = args.AString();
        args.End();
        var quota = QuotaLine();
        if (root.Length != 0 || quota == null) return ImapResponse.No("[NONEXISTENT] No such quota root");
        await Untagged(quota);
        return ImapResponse.Ok("Getquota completed.");
    }

    /// <summary>True when adding <paramref name="bytes"/> in <paramref name="messages"/> messages stays within the user's quota.</summary>
    private bool WithinQuota(long bytes, long messages)
    {
        var u = _user!;
        if (u.QuotaBytes == 0 && u.QuotaMessages == 0) return true;
        var usage = MaildirQuota.Read(u.Maildir, (long)u.QuotaBytes, (long)u.QuotaMessages);
        return (u.QuotaBytes == 0 || usage.Bytes + bytes <= (long)u.QuotaBytes) && (u.QuotaMessages == 0 || usage.Messages + messages <= (long)u.QuotaMessages);
    }
}
