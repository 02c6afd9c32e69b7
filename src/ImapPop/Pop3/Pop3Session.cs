// One POP3 session (RFC 1939, CAPA and UIDL from RFC 2449, STLS from RFC
// 2595, AUTH from RFC 5034) over the INBOX of the same Maildir: USER/PASS and
// AUTH PLAIN/LOGIN through AuthD, only under TLS or from trusted loopback;
// UIDs as Dovecot's default pop3_uidl_format (%08Xu%08Xv, which it writes in
// lower-case hex), so a client that
// moves between Dovecot and us downloads nothing twice. DELE takes effect at
// QUIT only, as the RFC says.
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;
using Mail.Shared.Net;
using NLog;

namespace Mail.ImapPop.Pop3;

internal sealed record Pop3Options(UserSessions Sessions, TimeSpan LoginTimeout, bool TrustLoopback = true);

internal sealed class Pop3Session(LineConnection conn, AuthClient auth, Func<X509Certificate2?> certificate, Pop3Options options)
{
    private static readonly Logger Log = MailLog.For("pop3");
    private MailUser? _user;
    private string? _pendingUser;
    private List<FolderMessage> _messages = [];
    private uint _uidValidity;
    private readonly HashSet<int> _deleted = [];
    private int _errors;

    private bool Secure => conn.IsTls || (options.TrustLoopback && conn.IsLocal);

    public async Task RunAsync()
    {
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}");
        conn.SetSessionDeadline(options.LoginTimeout); // cleared at login
        await conn.WriteLineAsync("+OK POP3 ready.");
        try
        {
            while (true)
            {
                var read = await conn.ReadLineAsync();
                if (read.Status == LineStatus.TooLong) { if (!await Err("Line too long")) return; continue; }
                if (!read.IsLine) return;
                bool go;
                try { go = await CommandAsync(read.Text); }
                catch (Exception e) when (StorageError.Is(e) && !conn.Stopping.IsCancellationRequested)
                {
                    // The mail store failed this command; the session goes on.
                    var kind = StorageError.Classify(e);
                    Log.Error($"{conn.SessionId}: {MailLog.Safe(_command, 20)} failed for {MailLog.Safe(_user?.User ?? "-")} ({kind}): {MailLog.Safe(e.Message)}");
                    go = await Err(StorageReply.Pop3(kind));
                }
                if (!go) return;
            }
        }
        finally
        {
            if (_user != null) options.Sessions.Leave(_user.User);
            Log.Info($"{conn.SessionId}: disconnect from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}");
        }
    }

    private async Task<bool> Ok(string text)
    {
        await conn.WriteLineAsync("+OK " + text);
        return true;
    }

    /// <summary>The command being run, for the log of what was refused.</summary>
    private string _command = "";

    private async Task<bool> Err(string text)
    {
        Log.Info($"{conn.SessionId}: reject: {MailLog.Safe(_command, 20)} from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}: -ERR {text}");
        await conn.WriteLineAsync("-ERR " + text);
        if (++_errors > 20) { await conn.WriteLineAsync("-ERR Too many errors, bye."); return false; }
        return true;
    }

    private async Task<bool> CommandAsync(string line)
    {
        var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        var cmd = parts.Length > 0 ? parts[0].ToUpperInvariant() : "";
        _command = cmd;
        string Arg(int i) => parts.Length > i ? parts[i] : "";
        switch (cmd)
        {
            case "CAPA":
                conn.BufferLine("+OK Capability list follows");
                conn.BufferLine("TOP");
                conn.BufferLine("UIDL");
                conn.BufferLine("RESP-CODES");
                conn.BufferLine("PIPELINING");
                conn.BufferLine("AUTH-RESP-CODE");
                if (_user == null && !conn.IsTls && certificate() != null) conn.BufferLine("STLS");
                if (_user == null && Secure) { conn.BufferLine("USER"); conn.BufferLine("SASL PLAIN LOGIN"); }
                conn.BufferLine(".");
                await conn.FlushAsync();
                return true;
            case "QUIT": return await QuitAsync();
            case "NOOP" when _user != null: return await Ok("");
        }
        if (_user == null)
        {
            switch (cmd)
            {
                case "STLS":
                    var cert = certificate();
                    if (conn.IsTls || cert == null) return await Err("TLS not available");
                    return await conn.StartTlsAsync(cert, "+OK Begin TLS negotiation now.");
                case "USER":
                    if (!Secure) return await Err("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
                    if (Arg(1).Length == 0) return await Err("USER needs a name");
                    _pendingUser = line[5..].Trim();
                    return await Ok("Send PASS");
                case "PASS":
                    if (_pendingUser == null) return await Err("USER first");
                    var user = _pendingUser;
                    _pendingUser = null;
                    return await FinishAuthAsync(await SaslExchange.PlainAsync(auth, user, line.Length > 5 ? line[5..] : "", Client()), "USER");
                case "AUTH":
                    return await AuthAsync(Arg(1).ToUpperInvariant(), Arg(2));
                default:
                    return await Err("Unknown command or not authenticated");
            }
        }
        switch (cmd)
        {
            case "STAT":
                var live = Live().ToList();
                return await Ok($"{live.Count} {live.Sum(i => Size(_messages[i]))}");
            case "LIST" or "UIDL":
                if (Arg(1).Length > 0)
                {
                    if (!TryMessage(Arg(1), out var n)) return await Err("[SYS/PERM] No such message");
                    return await Ok($"{n + 1} {(cmd == "LIST" ? Size(_messages[n]).ToString(CultureInfo.InvariantCulture) : Uidl(_messages[n]))}");
                }
                conn.BufferLine(cmd == "LIST" ? $"+OK {Live().Count()} messages" : "+OK");
                foreach (var i in Live()) conn.BufferLine($"{i + 1} {(cmd == "LIST" ? Size(_messages[i]).ToString(CultureInfo.InvariantCulture) : Uidl(_messages[i]))}");
                conn.BufferLine(".");
                await conn.FlushAsync();
                return true;
            case "RETR" or "TOP":
            {
                if (!TryMessage(Arg(1), out var n)) return await Err("[SYS/PERM] No such message");
                int? lines = null;
                if (cmd == "TOP")
                {
                    if (!int.TryParse(Arg(2), NumberStyles.None, CultureInfo.InvariantCulture, out var l)) return await Err("TOP needs a line count");
                    lines = l;
                }
                byte[] data;
                try { data = File.ReadAllBytes(_messages[n].Path); }
                catch (FileNotFoundException) { return await Err("[SYS/TEMP] The message is gone"); }
                conn.BufferLine("+OK");
                WriteDotStuffed(data, lines);
                conn.BufferLine(".");
                await conn.FlushAsync();
                return true;
            }
            case "DELE":
            {
                if (!TryMessage(Arg(1), out var n)) return await Err("[SYS/PERM] No such message");
                _deleted.Add(n);
                return await Ok("Marked to be deleted.");
            }
            case "RSET":
                _deleted.Clear();
                return await Ok("");
            default:
                return await Err("Unknown command");
        }
    }

    private IEnumerable<int> Live() => Enumerable.Range(0, _messages.Count).Where(i => !_deleted.Contains(i));

    private bool TryMessage(string arg, out int index)
    {
        index = -1;
        if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > _messages.Count || _deleted.Contains(n - 1)) return false;
        index = n - 1;
        return true;
    }

    private static long Size(FolderMessage m) => MaildirReader.VirtualSize(m);

    private string Uidl(FolderMessage m) => $"{m.Uid:x8}{_uidValidity:x8}"; // as Dovecot expands %08Xu%08Xv: lower-case hex

    /// <summary>The message as CRLF lines with leading dots doubled; with <paramref name="bodyLines"/>, the header and that many body lines.</summary>
    private void WriteDotStuffed(byte[] data, int? bodyLines)
    {
        var sb = new MemoryStream(data.Length + data.Length / 20 + 16);
        bool inBody = false;
        int bodyCount = 0;
        int start = 0;
        while (start < data.Length)
        {
            int lf = Array.IndexOf(data, (byte)'\n', start);
            int end = lf < 0 ? data.Length : lf;
            int contentEnd = end > start && data[end - 1] == '\r' ? end - 1 : end;
            if (inBody && bodyLines != null && bodyCount++ >= bodyLines) break;
            if (contentEnd > start && data[start] == '.') sb.WriteByte((byte)'.');
            sb.Write(data, start, contentEnd - start);
            sb.Write("\r\n"u8);
            if (!inBody && contentEnd == start) inBody = true;
            start = end + 1;
        }
        conn.BufferBytes(sb.GetBuffer().AsSpan(0, (int)sb.Length));
    }

    private ClientInfo Client() => new()
    {
        Service = "pop3", RemoteIp = conn.RemoteIp?.ToString() ?? "", LocalIp = conn.LocalIp?.ToString() ?? "", Secured = Secure, SessionId = conn.SessionId,
    };

    private async Task<bool> AuthAsync(string mech, string initial)
    {
        if (!Secure) return await Err("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
        var result = await SaslExchange.RunAsync(auth, conn, "+ ", mech, initial.Length > 0 ? initial : null, Client());
        if (result.Unreachable != null) Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(result.Unreachable)}");
        if (result.Status == SaslStatus.Aborted) return await Err("Authentication aborted.");
        if (result.Status == SaslStatus.Malformed) return await Err("Invalid base64 data");
        if (result.Status == SaslStatus.BadMechanism) return await Err("Unsupported authentication mechanism.");
        return await FinishAuthAsync(result, mech);
    }

    private async Task<bool> FinishAuthAsync(SaslOutcome result, string method)
    {
        if (result.Status == SaslStatus.Tempfail) return await Err("[SYS/TEMP] Temporary authentication failure.");
        if (result.Status != SaslStatus.Success) return await Err("[AUTH] Authentication failed.");
        var lookup = await auth.LookupUserAsync(new LookupUserRequest { User = result.User, Client = Client() });
        if (lookup.Status != LookupStatus.Ok) return await Err("[SYS/TEMP] Temporary user lookup failure.");
        if (!options.Sessions.TryEnter(lookup.User.User)) return await Err("[IN-USE] Too many simultaneous connections for this user.");
        _user = lookup.User;
        MaildirDelivery.Ensure(_user.Maildir, _user.Uid, _user.Gid);
        var state = new MaildirFolder(_user.Maildir, _user.Uid, _user.Gid).Sync(takeNew: true);
        _messages = state.Messages.ToList();
        _uidValidity = state.UidValidity;
        conn.SetSessionDeadline(null);
        Log.Info($"{conn.SessionId}: login: user=<{MailLog.Safe(_user.User)}>, method={method}, rip={conn.RemoteIp}{(conn.IsTls ? ", TLS" : "")}, messages={_messages.Count}");
        return await Ok("Logged in.");
    }

    private async Task<bool> QuitAsync()
    {
        if (_user != null && _deleted.Count > 0)
        {
            long bytes = 0;
            int removed = 0;
            var folder = new MaildirFolder(_user.Maildir, _user.Uid, _user.Gid);
            foreach (var i in _deleted)
            {
                try
                {
                    // Wherever a flag change by an IMAP session has renamed it; one already gone is not counted.
                    if (folder.Delete(_messages[i]) is not { } path) continue;
                    bytes += MaildirQuota.SizeFromName(path) ?? 0;
                    removed++;
                }
                catch (IOException e) { Log.Error($"{conn.SessionId}: user=<{MailLog.Safe(_user.User)}> cannot delete {_messages[i].FileName}: {MailLog.Safe(e.Message)}"); }
            }
            MaildirQuota.Add(_user.Maildir, -bytes, -removed);
            folder.Sync(takeNew: false);
            Log.Info($"{conn.SessionId}: user=<{MailLog.Safe(_user.User)}> deleted {removed} messages");
        }
        await conn.WriteLineAsync("+OK Logging out.");
        return false;
    }
}
