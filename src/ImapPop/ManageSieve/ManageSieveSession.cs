// One ManageSieve session (RFC 5804): a user's Sieve scripts, stored as
// Pigeonhole stores them (SieveStorage), checked by the same compiler lmtpd
// runs them with before anything is stored. Logins through AuthD, with
// plaintext mechanisms only under TLS or from trusted loopback; STARTTLS
// re-issues the capabilities. Input is bounded as IMAP's is: lines, strings,
// literals (small before login), errors, and the time to log in.
using System.Buffers;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Sieve;
using NLog;

namespace Mail.ImapPop.ManageSieve;

internal sealed record ManageSieveOptions(string Hostname, UserSessions Sessions, TimeSpan LoginTimeout, bool TrustLoopback,
    int MaxScripts, long MaxStorage, long MaxScriptSize, int MaxRedirects);

internal sealed class ManageSieveSession(LineConnection conn, AuthClient auth, Func<X509Certificate2?> certificate, ManageSieveOptions options)
{
    private static readonly Logger Log = MailLog.For("managesieve");
    private const int MaxQuoted = 1024;
    private const int MaxLiteralBeforeLogin = 8 * 1024;
    private const int MaxErrors = 20;

    private MailUser? _user;
    private SieveStorage? _storage;
    private int _errors;
    private string _command = "";

    private bool Secure => conn.IsTls || (options.TrustLoopback && conn.IsLocal);

    /// <summary>An argument: an atom (the command, ACTIVE), a string (quoted or literal), or a number.</summary>
    private readonly record struct Arg(char Kind, string Text);

    public async Task RunAsync()
    {
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}");
        conn.SetSessionDeadline(options.LoginTimeout); // cleared at login
        await CapabilitiesAsync("ready");
        try
        {
            while (true)
            {
                var (args, fault) = await ReadCommandAsync();
                if (args == null && fault == null) return;
                if (fault != null)
                {
                    _command = "";
                    if (!await NoAsync(null, fault)) return;
                    continue;
                }
                bool go;
                try { go = await CommandAsync(args!); }
                catch (Exception e) when (StorageError.Is(e) && !conn.Stopping.IsCancellationRequested)
                {
                    var kind = StorageError.Classify(e);
                    Log.Error($"{conn.SessionId}: {MailLog.Safe(_command, 20)} failed for {MailLog.Safe(_user?.User ?? "-")} ({kind}): {MailLog.Safe(e.Message)}");
                    go = await NoAsync("TRYLATER", "The script store is not available now");
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

    // ---- reading ----

    /// <summary>One command's arguments; (null, null) when the client is gone; a fault to answer NO to.</summary>
    private async Task<(List<Arg>? Args, string? Fault)> ReadCommandAsync()
    {
        var args = new List<Arg>();
        long total = 0;
        string? fault = null;
        while (true)
        {
            var read = await conn.ReadLineAsync();
            if (read.Status == LineStatus.TooLong) return (null, "Line too long");
            if (!read.IsLine) return (null, null);
            var line = read.Text;
            int at = 0;
            int? literal = null;
            while (at < line.Length)
            {
                char c = line[at];
                if (c is ' ' or '\t') { at++; continue; }
                if (c == '"')
                {
                    var sb = new StringBuilder();
                    at++;
                    while (at < line.Length && line[at] != '"')
                    {
                        if (line[at] == '\\' && at + 1 < line.Length) at++;
                        sb.Append(line[at++]);
                    }
                    if (at >= line.Length) { fault ??= "Unterminated quoted string"; break; }
                    at++;
                    if (sb.Length > MaxQuoted) fault ??= "Quoted string too long";
                    args.Add(new Arg('s', sb.ToString()));
                    continue;
                }
                if (c == '{')
                {
                    int close = line.IndexOf('}', at);
                    var inner = close < 0 ? "" : line[(at + 1)..close].TrimEnd('+');
                    if (close != line.Length - 1 || !int.TryParse(inner, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                    {
                        fault ??= "Malformed literal";
                        break;
                    }
                    literal = n;
                    break;
                }
                int start = at;
                while (at < line.Length && line[at] is not (' ' or '\t' or '"' or '{')) at++;
                var word = line[start..at];
                args.Add(new Arg(word.All(char.IsAsciiDigit) ? 'n' : 'a', word));
            }
            if (literal is not { } length) return fault != null ? (args, fault) : (args, null);
            long max = _user == null ? MaxLiteralBeforeLogin : options.MaxScriptSize + 1024;
            total += length;
            if (length > max || total > max * 2)
            {
                // Too big to hold: read it through (within the data-rate deadline) when that is bounded, else end the session.
                if (length > max * 4) { await conn.WriteLineAsync("BYE (QUOTA/MAXSIZE) \"Literal too big\""); return (null, null); }
                if (await ReadBytesAsync(length, keep: false) == null) return (null, null);
                fault ??= _user == null ? "Literal too big before login" : "(QUOTA/MAXSIZE) Script too big";
                continue;
            }
            var bytes = await ReadBytesAsync(length);
            if (bytes == null) return (null, null);
            args.Add(new Arg('s', Encoding.UTF8.GetString(bytes)));
        }
    }

    /// <summary>The next <paramref name="length"/> bytes of a literal, or null when the client is gone; with <paramref name="keep"/> false they are read and dropped.</summary>
    private async Task<byte[]?> ReadBytesAsync(long length, bool keep = true)
    {
        var buffer = keep ? new byte[length] : [];
        long got = 0;
        conn.BeginTransfer();
        try
        {
            while (got < length)
            {
                var read = await conn.ReadRawAsync();
                if (read == null) return null;
                var b = read.Value.Buffer;
                long take = Math.Min(b.Length, length - got);
                if (keep) b.Slice(0, take).CopyTo(buffer.AsSpan((int)got));
                got += take;
                conn.Input.AdvanceTo(b.GetPosition(take));
                conn.Credit(take);
                if (take == 0 && read.Value.IsCompleted) return null;
            }
            return buffer;
        }
        finally { conn.EndTransfer(); }
    }

    // ---- replies ----

    /// <summary>A string as RFC 5804 4 writes it: quoted when it can be, else a literal.</summary>
    private static string Str(string s) =>
        s.Length <= MaxQuoted && !s.Any(c => c is '\r' or '\n' or '\0') ? "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\""
            : "{" + Encoding.UTF8.GetByteCount(s) + "}\r\n" + s;

    private async Task<bool> OkAsync(string text, string? code = null)
    {
        await conn.WriteLineAsync("OK" + (code != null ? $" ({code})" : "") + " " + Str(text));
        return true;
    }

    /// <summary>NO with its response code; counted, and the session ends after too many.</summary>
    private async Task<bool> NoAsync(string? code, string text)
    {
        if (code == null && text.StartsWith('(') && text.IndexOf(')') is var close and > 0) { code = text[1..close]; text = text[(close + 2)..]; }
        Log.Info($"{conn.SessionId}: reject: {MailLog.Safe(_command, 20)} from {conn.ClientDescription}{(_user != null ? " user=<" + MailLog.Safe(_user.User) + ">" : "")}: NO {(code != null ? "(" + code + ") " : "")}{MailLog.Safe(text, 200)}");
        await conn.WriteLineAsync("NO" + (code != null ? $" ({code})" : "") + " " + Str(text));
        if (++_errors > MaxErrors)
        {
            await conn.WriteLineAsync("BYE \"Too many errors\"");
            return false;
        }
        return true;
    }

    private async Task CapabilitiesAsync(string ok)
    {
        conn.BufferLine("\"IMPLEMENTATION\" \"Mail Suite ManageSieve\"");
        conn.BufferLine("\"SASL\" \"" + (Secure && _user == null ? "PLAIN LOGIN" : "") + "\"");
        conn.BufferLine("\"SIEVE\" \"" + string.Join(' ', SieveValidator.Extensions) + "\"");
        if (!conn.IsTls && certificate() != null && _user == null) conn.BufferLine("\"STARTTLS\"");
        conn.BufferLine($"\"MAXREDIRECTS\" \"{options.MaxRedirects}\"");
        if (_user != null) conn.BufferLine("\"OWNER\" " + Str(_user.User));
        conn.BufferLine("\"UNAUTHENTICATE\"");
        conn.BufferLine("\"VERSION\" \"1.0\"");
        conn.BufferLine("OK " + Str(ok));
        await conn.FlushAsync();
    }

    // ---- commands ----

    private async Task<bool> CommandAsync(List<Arg> args)
    {
        if (args.Count == 0 || args[0].Kind != 'a') { _command = ""; return await NoAsync(null, "Expected a command"); }
        var cmd = args[0].Text.ToUpperInvariant();
        _command = cmd;
        var rest = args.Skip(1).ToList();
        bool Shape(params char[] kinds) => rest.Count == kinds.Length && rest.Select(a => a.Kind).SequenceEqual(kinds);
        switch (cmd)
        {
            case "LOGOUT":
                await OkAsync("Logout completed.");
                return false;
            case "CAPABILITY":
                if (rest.Count > 0) return await NoAsync(null, "CAPABILITY takes no arguments");
                await CapabilitiesAsync("Capability completed.");
                return true;
            case "NOOP":
                if (rest.Count > 1 || (rest.Count == 1 && rest[0].Kind != 's')) return await NoAsync(null, "Syntax: NOOP [string]");
                return rest.Count == 1 ? await OkAsync("Done", "TAG " + Str(rest[0].Text)) : await OkAsync("Done");
            case "STARTTLS":
            {
                var cert = certificate();
                if (rest.Count > 0) return await NoAsync(null, "STARTTLS takes no arguments");
                if (conn.IsTls || cert == null || _user != null) return await NoAsync(null, "TLS is not available");
                if (!await conn.StartTlsAsync(cert, "OK \"Begin TLS negotiation now.\"")) return false;
                await CapabilitiesAsync("TLS negotiation successful.");
                return true;
            }
        }
        if (_user == null)
        {
            if (cmd != "AUTHENTICATE") return await NoAsync(null, "Authenticate first");
            if (!(Shape('s') || Shape('s', 's'))) return await NoAsync(null, "Syntax: AUTHENTICATE mechanism [initial-response]");
            return await AuthenticateAsync(rest[0].Text.ToUpperInvariant(), rest.Count == 2 ? rest[1].Text : null);
        }
        var storage = _storage!;
        switch (cmd)
        {
            case "AUTHENTICATE":
                return await NoAsync(null, "Already authenticated");
            case "UNAUTHENTICATE":
                if (rest.Count > 0) return await NoAsync(null, "UNAUTHENTICATE takes no arguments");
                Log.Info($"{conn.SessionId}: logout: user=<{MailLog.Safe(_user.User)}> (unauthenticate)");
                options.Sessions.Leave(_user.User);
                _user = null;
                _storage = null;
                return await OkAsync("Unauthenticate completed.");
            case "LISTSCRIPTS":
            {
                if (rest.Count > 0) return await NoAsync(null, "LISTSCRIPTS takes no arguments");
                var active = storage.Active();
                foreach (var name in storage.List()) conn.BufferLine(Str(name) + (name == active ? " ACTIVE" : ""));
                await OkAsync("Listscripts completed.");
                return true;
            }
            case "HAVESPACE":
            {
                if (!Shape('s', 'n') || !long.TryParse(rest[1].Text, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
                    return await NoAsync(null, "Syntax: HAVESPACE name size");
                if (SieveStorage.CheckName(rest[0].Text) is { } bad) return await NoAsync(null, bad);
                return Quota(storage, rest[0].Text, size) is { } over ? await NoAsync(over.Code, over.Text) : await OkAsync("Putscript would succeed.");
            }
            case "PUTSCRIPT":
            {
                if (!Shape('s', 's')) return await NoAsync(null, "Syntax: PUTSCRIPT name script");
                var (name, text) = (rest[0].Text, rest[1].Text);
                if (SieveStorage.CheckName(name) is { } bad) return await NoAsync(null, bad);
                if (Quota(storage, name, Encoding.UTF8.GetByteCount(text)) is { } over) return await NoAsync(over.Code, over.Text);
                if (Check(text, name) is { } error) return await NoAsync(null, error);
                storage.Write(name, text);
                Log.Info($"{conn.SessionId}: user=<{MailLog.Safe(_user.User)}> putscript {MailLog.Safe(name, 100)}");
                return await OkWithFaultsAsync("Putscript completed.", name == storage.Active());
            }
            case "CHECKSCRIPT":
            {
                if (!Shape('s')) return await NoAsync(null, "Syntax: CHECKSCRIPT script");
                return Check(rest[0].Text, "script") is { } error ? await NoAsync(null, error) : await OkAsync("Script is valid.");
            }
            case "GETSCRIPT":
            {
                if (!Shape('s')) return await NoAsync(null, "Syntax: GETSCRIPT name");
                if (storage.Read(rest[0].Text) is not { } text || SieveStorage.CheckName(rest[0].Text) != null) return await NoAsync("NONEXISTENT", "Script does not exist.");
                conn.BufferLine("{" + Encoding.UTF8.GetByteCount(text) + "}");
                conn.BufferText(text);
                conn.BufferLine("");
                return await OkWithFaultsAsync("Getscript completed.", rest[0].Text == storage.Active());
            }
            case "SETACTIVE":
            {
                if (!Shape('s')) return await NoAsync(null, "Syntax: SETACTIVE name");
                var name = rest[0].Text;
                if (name.Length == 0) { storage.Activate(null); return await OkAsync("No script is active now."); }
                if (SieveStorage.CheckName(name) != null || !storage.Exists(name)) return await NoAsync("NONEXISTENT", "Script does not exist.");
                if (Check(storage.Read(name)!, name) is { } error) return await NoAsync(null, error);
                storage.Activate(name);
                Log.Info($"{conn.SessionId}: user=<{MailLog.Safe(_user.User)}> setactive {MailLog.Safe(name, 100)}");
                return await OkWithFaultsAsync("Setactive completed.", true);
            }
            case "DELETESCRIPT":
            {
                if (!Shape('s')) return await NoAsync(null, "Syntax: DELETESCRIPT name");
                var name = rest[0].Text;
                if (SieveStorage.CheckName(name) != null || !storage.Exists(name)) return await NoAsync("NONEXISTENT", "Script does not exist.");
                if (storage.Active() == name) return await NoAsync("ACTIVE", "You may not delete an active script.");
                storage.Delete(name);
                return await OkAsync("Deletescript completed.");
            }
            case "RENAMESCRIPT":
            {
                if (!Shape('s', 's')) return await NoAsync(null, "Syntax: RENAMESCRIPT old new");
                var (from, to) = (rest[0].Text, rest[1].Text);
                if (SieveStorage.CheckName(from) != null || !storage.Exists(from)) return await NoAsync("NONEXISTENT", "Script does not exist.");
                if (SieveStorage.CheckName(to) is { } bad) return await NoAsync(null, bad);
                if (storage.Exists(to)) return await NoAsync("ALREADYEXISTS", "A script with that name already exists.");
                storage.Rename(from, to);
                return await OkAsync("Renamescript completed.");
            }
            default:
                return await NoAsync(null, "Unknown command");
        }
    }

    /// <summary>The first fault of a script as RFC 5804 2.6 reports it (with its line), or null.</summary>
    private static string? Check(string text, string name)
    {
        SieveCompiler.Compile(text, name, out var error);
        return error == null ? null : $"line {error.Line}: error: {error.Message}";
    }

    /// <summary>Why storing <paramref name="size"/> bytes under <paramref name="name"/> would go over the user's limits (RFC 5804 1.3 QUOTA codes).</summary>
    private (string Code, string Text)? Quota(SieveStorage storage, string name, long size)
    {
        if (size > options.MaxScriptSize) return ("QUOTA/MAXSIZE", $"Script is larger than {options.MaxScriptSize} bytes.");
        bool exists = storage.Exists(name);
        if (!exists && storage.List().Count >= options.MaxScripts) return ("QUOTA/MAXSCRIPTS", $"No more than {options.MaxScripts} scripts.");
        if (storage.TotalSize() - storage.Size(name) + size > options.MaxStorage) return ("QUOTA/MAXSIZE", $"All scripts together may not exceed {options.MaxStorage} bytes.");
        return null;
    }

    /// <summary>
    /// OK, with WARNINGS telling the faults delivery met in the active script since it was last
    /// written (from ~/.dovecot.sieve.log, where lmtpd records them).
    /// </summary>
    private async Task<bool> OkWithFaultsAsync(string text, bool active)
    {
        if (active && _user != null)
        {
            var home = _user.Home.Length > 0 ? _user.Home : _user.Maildir;
            var log = Path.Combine(home, ".dovecot.sieve.log");
            var script = Path.Combine(home, ".dovecot.sieve");
            try
            {
                if (File.Exists(log) && File.Exists(script) && File.GetLastWriteTimeUtc(log) > new FileInfo(script).ResolveLinkTarget(true)!.LastWriteTimeUtc)
                {
                    var last = File.ReadLines(log).LastOrDefault(l => l.Length > 0);
                    if (last != null) return await OkAsync("At delivery: " + last, "WARNINGS");
                }
            }
            catch (IOException) { }
        }
        return await OkAsync(text);
    }

    private ClientInfo Client() => new()
    {
        Service = "sieve", RemoteIp = conn.RemoteIp?.ToString() ?? "", LocalIp = conn.LocalIp?.ToString() ?? "", Secured = Secure, SessionId = conn.SessionId,
    };

    private async Task<bool> AuthenticateAsync(string mech, string? initial)
    {
        if (!Secure) return await NoAsync("ENCRYPT-NEEDED", "Plaintext authentication disallowed on non-secure connections.");
        var result = await SaslExchange.RunAsync(auth, mech, initial == null ? null : initial.Length == 0 ? "=" : initial, Client(), async challenge =>
        {
            await conn.WriteLineAsync(Str(challenge));
            var (args, fault) = await ReadCommandAsync();
            return fault == null && args is [{ Kind: 's' } answer] ? answer.Text : args == null ? null : "\0malformed";
        });
        if (result.Unreachable != null) Log.Error($"{conn.SessionId}: authd unreachable: {MailLog.Safe(result.Unreachable)}");
        switch (result.Status)
        {
            case SaslStatus.Success:
                var lookup = await auth.LookupUserAsync(new LookupUserRequest { User = result.User, Client = Client() });
                if (lookup.Status != LookupStatus.Ok) return await NoAsync("TRYLATER", "Temporary user lookup failure.");
                if (!options.Sessions.TryEnter(lookup.User.User)) return await NoAsync("TRYLATER", "Too many simultaneous connections for this user.");
                _user = lookup.User;
                _storage = new SieveStorage(_user.Home.Length > 0 ? _user.Home : _user.Maildir, _user.Uid, _user.Gid);
                conn.SetSessionDeadline(null);
                Log.Info($"{conn.SessionId}: login: user=<{MailLog.Safe(_user.User)}>, method={mech}, rip={conn.RemoteIp}{(conn.IsTls ? ", TLS" : "")}");
                return await OkAsync("Logged in.");
            case SaslStatus.Tempfail: return await NoAsync("TRYLATER", "Temporary authentication failure.");
            case SaslStatus.BadMechanism: return await NoAsync(null, "Unsupported authentication mechanism.");
            case SaslStatus.Malformed: return await NoAsync(null, "Invalid base64 data.");
            case SaslStatus.Aborted: return await NoAsync(null, "Authentication aborted by client.");
            default: return await NoAsync(null, "Authentication failed.");
        }
    }
}
