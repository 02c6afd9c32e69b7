// The not-authenticated state (RFC 9051 6.2): STARTTLS, LOGIN, AUTHENTICATE
// (through AuthD's SASL), and what a login prepares.
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> StartTlsAsync(string tag, Args args)
    {
        args.End();
        var cert = certificate();
        if (conn.IsTls || cert == null) return ImapResponse.Bad("TLS not available.");
        if (!await conn.StartTlsAsync(cert, $"{tag} OK Begin TLS negotiation now.")) return ImapResponse.None.AndClose();
        _reader.Reset();
        return ImapResponse.None;
    }

    /// <summary>COMPRESS DEFLATE (RFC 4978): after the OK, both directions are raw deflate.</summary>
    private async Task<ImapResponse> CompressAsync(string tag, Args args)
    {
        args.Space();
        var mechanism = args.Atom().ToUpperInvariant();
        args.End();
        if (mechanism != "DEFLATE") return ImapResponse.Bad("Unknown compression mechanism.");
        if (conn.IsCompressed) return ImapResponse.No("[COMPRESSIONACTIVE] Compression is already on.");
        await conn.FlushAsync();
        await conn.StartCompressionAsync($"{tag} OK DEFLATE active");
        _reader.Reset();
        return ImapResponse.None;
    }

    private ClientInfo Client() => new()
    {
        Service = "imap",
        RemoteIp = conn.RemoteIp?.ToString() ?? "",
        LocalIp = conn.LocalIp?.ToString() ?? "",
        Secured = Secure,
        SessionId = conn.SessionId,
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
                var lookup = await auth.LookupUserAsync(new LookupUserRequest { User = result.User, Client = Client() });
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
                LoggedIn();
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
}
