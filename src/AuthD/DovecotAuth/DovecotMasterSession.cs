// The master/userdb side of Dovecot's auth protocol, so that Dovecot's mail
// processes (lmtp, imap, pop3, doveadm) take their users from AuthD: what
// Dovecot's auth service answers on its auth-userdb socket. Dovecot's
// auth_socket_path points here.
//   S: VERSION 1 2 / SPID pid
//   C: VERSION 1 x [/ CPID pid]
//   C: USER id user [params]   S: USER id user home= uid= gid= mail= [quota_rule=] | NOTFOUND id | FAIL id reason=
//   C: PASS id user [params]   S: PASS id user=user | NOTFOUND id | FAIL id
//   C: LIST id [params]        S: LIST id user (one per user) / DONE id [fail]
//   C: CACHE-FLUSH id [users]  S: OK id 0 (AuthD keeps no passdb cache to flush)
//   C: REQUEST id client-pid client-id cookie   S: USER id user ... | FAIL id
//      (after a login process's AUTH on the client socket: LoginRequests)
// Parameters use Dovecot's tab-escaping (\001 then 0, 1, t, r or n). A
// disabled mailbox is not found, as Dovecot's SQL userdb with active = '1'.
// A directory fault answers FAIL, which Dovecot turns into a temporary error.
// The socket gives every user's record: its mode (socket_mode) keeps it to the
// mail programs' group.
using System.Text;
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.UserDirectory;
using NLog;

namespace Mail.AuthD.DovecotAuth;

internal sealed class DovecotMasterSession(LineConnection conn, Accounts accounts)
{
    private static readonly Logger Log = MailLog.For("auth");
    public const int MaxUserLength = 320;

    public async Task RunAsync()
    {
        await SendAsync($"VERSION\t1\t2\nSPID\t{Environment.ProcessId}");
        var version = await conn.ReadLineAsync();
        if (!version.IsLine || !version.Text.StartsWith("VERSION\t1\t", StringComparison.Ordinal))
        {
            Log.Warn($"{conn.SessionId}: dovecot-userdb: client sent no VERSION 1 handshake; disconnecting");
            return;
        }
        while (true)
        {
            var line = await conn.ReadLineAsync();
            if (line.Status == LineStatus.TooLong)
            {
                Log.Warn($"{conn.SessionId}: dovecot-userdb: line too long; disconnecting");
                return;
            }
            if (!line.IsLine) return;
            var args = line.Text.Split('\t').Select(DovecotEscaping.Unescape).ToArray();
            bool keep = args[0] switch
            {
                "CPID" => true,
                "USER" when args.Length >= 3 && uint.TryParse(args[1], out var id) => await UserAsync(id, args[2], Params(args, 3)),
                "PASS" when args.Length >= 3 && uint.TryParse(args[1], out var id) => await PassAsync(id, args[2], Params(args, 3)),
                "LIST" when args.Length >= 2 && uint.TryParse(args[1], out var id) => await ListAsync(id, Params(args, 2)),
                "CACHE-FLUSH" when args.Length >= 2 && uint.TryParse(args[1], out var id) => await SendAsync($"OK\t{id}\t0"),
                "REQUEST" when args.Length >= 5 && uint.TryParse(args[1], out var id) => await RequestAsync(id, args),
                _ => false,
            };
            if (!keep)
            {
                Log.Warn($"{conn.SessionId}: dovecot-userdb: unexpected command '{MailLog.Safe(args[0], 20)}'; disconnecting");
                return;
            }
        }
    }

    /// <summary>A userdb look-up: the user's home, uid, gid, Maildir and quota.</summary>
    private async Task<bool> UserAsync(uint id, string name, Dictionary<string, string> p)
    {
        var (user, failed) = await FindAsync(name, p);
        if (failed) return await SendAsync($"FAIL\t{id}\treason=directory unavailable");
        var mail = user == null ? null : accounts.ToMailUser(user);
        if (user != null && mail == null)
        {
            Log.Error($"dovecot-userdb: user=<{MailLog.Safe(user.Address)}>: no safe Maildir path can be made for this user");
            return await SendAsync($"FAIL\t{id}\treason=bad mailbox path");
        }
        if (mail == null) return await SendAsync($"NOTFOUND\t{id}");
        var reply = new StringBuilder($"USER\t{id}\t{DovecotEscaping.Escape(mail.User)}\thome={DovecotEscaping.Escape(mail.Home)}\tuid={mail.Uid}\tgid={mail.Gid}\tmail=maildir:{DovecotEscaping.Escape(mail.Maildir)}");
        if (mail.QuotaBytes > 0) reply.Append($"\tquota_rule=*:bytes={mail.QuotaBytes}");
        if (mail.QuotaMessages > 0) reply.Append($"\tquota_rule2=*:messages={mail.QuotaMessages}");
        return await SendAsync(reply.ToString());
    }

    /// <summary>A passdb look-up without a password (doveadm auth lookup): whether the user exists, and its canonical name.</summary>
    private async Task<bool> PassAsync(uint id, string name, Dictionary<string, string> p)
    {
        var (user, failed) = await FindAsync(name, p);
        if (failed) return await SendAsync($"FAIL\t{id}");
        return await SendAsync(user == null ? $"NOTFOUND\t{id}" : $"PASS\t{id}\tuser={DovecotEscaping.Escape(user.Address)}");
    }

    /// <summary>Every active user (doveadm's -A), or those of user=MASK (with * and ?) or of domain=.</summary>
    private async Task<bool> ListAsync(uint id, Dictionary<string, string> p)
    {
        if (accounts.Directory is not IDirectoryAdmin admin) return await SendAsync($"DONE\t{id}\tfail");
        IReadOnlyList<DirectoryUser> users;
        try { users = await admin.ListUsersAsync(p.GetValueOrDefault("domain")); }
        catch (DirectoryUnavailableException e)
        {
            Log.Error($"dovecot-userdb: list: directory unavailable: {MailLog.Safe(e.Message)}");
            return await SendAsync($"DONE\t{id}\tfail");
        }
        var mask = p.TryGetValue("user", out var m) ? Glob(m) : null;
        int n = 0;
        foreach (var u in users.Where(u => u.Active && (mask == null || mask.IsMatch(u.Address))))
        {
            conn.BufferText($"LIST\t{id}\t{DovecotEscaping.Escape(u.Address)}\n");
            if (++n % 500 == 0) await conn.FlushAsync();
        }
        return await SendAsync($"DONE\t{id}");
    }

    /// <summary>
    /// REQUEST id client-pid client-id cookie: the mail process asks for the user a login process
    /// authenticated (LoginRequests); the answer is that user's userdb record, as for USER.
    /// </summary>
    private async Task<bool> RequestAsync(uint id, string[] args)
    {
        if (!uint.TryParse(args[2], out var pid) || !uint.TryParse(args[3], out var clientId)) return false;
        var name = LoginRequests.Take(pid, clientId, args[4]);
        if (name == null)
        {
            Log.Warn($"{conn.SessionId}: dovecot-userdb: REQUEST for client {pid} request {clientId}: no such login, or a wrong cookie; refused");
            return await SendAsync($"FAIL\t{id}");
        }
        return await UserAsync(id, name, Params(args, 5));
    }

    private async Task<(DirectoryUser? User, bool Failed)> FindAsync(string name, Dictionary<string, string> p)
    {
        if (name.Length == 0 || name.Length > MaxUserLength) return (null, false);
        try
        {
            var user = await accounts.FindUserAsync(name, CancellationToken.None);
            return (user is { Active: true } ? user : null, false);
        }
        catch (DirectoryUnavailableException e)
        {
            Log.Error($"dovecot-userdb: user=<{MailLog.Safe(name)}> service={MailLog.Safe(p.GetValueOrDefault("service"), 20)}: directory unavailable: {MailLog.Safe(e.Message)}");
            return (null, true);
        }
    }

    /// <summary>Lines end in LF alone, as Dovecot writes them.</summary>
    private async Task<bool> SendAsync(string line)
    {
        conn.BufferText(line + "\n");
        await conn.FlushAsync();
        return true;
    }

    private static Dictionary<string, string> Params(string[] args, int from)
    {
        var p = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var a in args.Skip(from))
        {
            int eq = a.IndexOf('=');
            p[eq < 0 ? a : a[..eq]] = eq < 0 ? "" : a[(eq + 1)..];
        }
        return p;
    }

    private static System.Text.RegularExpressions.Regex Glob(string mask) =>
        new("^" + System.Text.RegularExpressions.Regex.Escape(mask).Replace("\\*", ".*").Replace("\\?", ".") + "$",
            System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant,
            TimeSpan.FromSeconds(1));


}
