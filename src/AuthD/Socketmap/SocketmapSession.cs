// Postfix's socketmap protocol (socketmap_table(5)): a netstring request
// "<map> <key>", a netstring reply "OK <value>", "NOTFOUND ", "TEMP <why>" or
// "PERM <why>". Serves the maps Postfix needs to use AuthD's directory as
//   virtual_mailbox_domains = socketmap:unix:PATH:domains
//   virtual_mailbox_maps    = socketmap:unix:PATH:mailboxes
//   virtual_alias_maps      = socketmap:unix:PATH:aliases
// A directory fault is TEMP, so Postfix answers 4xx and the sender retries.
using Mail.Shared.Smtp;
using System.Buffers;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.UserDirectory;
using NLog;

namespace Mail.AuthD.Socketmap;

internal sealed class SocketmapSession(LineConnection conn, SocketmapMaps maps)
{
    private static readonly Logger Log = MailLog.For("socketmap");
    public const int MaxRequest = 10_000;

    public async Task RunAsync()
    {
        while (true)
        {
            var read = await conn.ReadRawAsync();
            if (read == null) return;
            var buffer = read.Value.Buffer;
            while (true)
            {
                var status = Netstring.TryRead(ref buffer, MaxRequest, out var request);
                if (status == NetstringResult.Error)
                {
                    Log.Warn($"{conn.SessionId}: socketmap: malformed netstring; disconnecting");
                    return;
                }
                if (status == NetstringResult.Incomplete) break;
                var reply = await maps.LookupAsync(request);
                conn.BufferBytes(Netstring.Encode(reply));
            }
            conn.Input.AdvanceTo(buffer.Start, read.Value.Buffer.End);
            await conn.FlushAsync();
            if (read.Value.IsCompleted) return;
        }
    }
}

internal sealed class SocketmapMaps(Accounts accounts)
{
    private static readonly Logger Log = MailLog.For("socketmap");

    public async Task<string> LookupAsync(string request)
    {
        int sp = request.IndexOf(' ');
        if (sp <= 0) return "PERM malformed request";
        var name = request[..sp];
        var key = request[(sp + 1)..].Trim();
        try
        {
            var value = name switch
            {
                "domains" => await DomainAsync(key),
                "mailboxes" => await MailboxAsync(key),
                "aliases" => await AliasAsync(key),
                _ => null,
            };
            if (name is not ("domains" or "mailboxes" or "aliases")) return "PERM unknown map " + MailLog.Safe(name, 40);
            if (Log.IsDebugEnabled) Log.Debug($"socketmap: {name} {MailLog.Safe(key)} -> {(value == null ? "NOTFOUND" : MailLog.Safe(value))}");
            return value == null ? "NOTFOUND " : "OK " + value;
        }
        catch (DirectoryUnavailableException e)
        {
            Log.Error($"socketmap: {MailLog.Safe(name, 20)} {MailLog.Safe(key)}: directory unavailable: {MailLog.Safe(e.Message)}");
            return "TEMP directory unavailable";
        }
    }

    /// <summary>The domain, if we receive mail for it (hosted or alias domain).</summary>
    private async Task<string?> DomainAsync(string key)
    {
        var name = key.ToLowerInvariant();
        if (!MailAddress.IsValidDomain(name)) return null;
        var d = await accounts.Directory.FindDomainAsync(name);
        return d is { Active: true } ? d.Name : null;
    }

    /// <summary>The Maildir of an active mailbox, as PostfixAdmin's maildir column gives it ("domain/local/").</summary>
    private async Task<string?> MailboxAsync(string key)
    {
        if (!MailAddress.TryParse(key, out var a)) return null;
        var u = await FindMailboxAsync(a);
        if (u is not { Active: true }) return null;
        return u.Maildir ?? $"{u.Address[(u.Address.IndexOf('@') + 1)..]}/{u.Address[..u.Address.IndexOf('@')]}/";
    }

    private async Task<DirectoryUser?> FindMailboxAsync(MailAddress a)
    {
        var u = await accounts.Directory.FindUserAsync(a.ToString());
        if (u != null) return u;
        var (bare, detail) = a.SplitDetail(accounts.Defaults.RecipientDelimiter);
        return detail == null ? null : await accounts.Directory.FindUserAsync(bare.ToString());
    }

    /// <summary>
    /// What Postfix's virtual_alias_maps should see. Postfix sends a socketmap
    /// only the whole address (it treats the table as a pattern table, never
    /// asking for "user@domain" without +detail or for "@domain"), so the
    /// server applies the same order as AuthD's resolver: an alias (exact, then
    /// without +detail); a mailbox maps to the address itself (so a catch-all
    /// never takes its mail, and +detail is kept); an alias domain maps to the
    /// same local part in its target domain; then the domain's catch-all.
    /// "@domain" asked explicitly gives the catch-all.
    /// </summary>
    private async Task<string?> AliasAsync(string key)
    {
        var dir = accounts.Directory;
        if (key.StartsWith('@'))
        {
            var domainKey = DirectoryFiles.NormalizeAliasKey(key);
            return domainKey == null ? null : await CatchAllAsync(domainKey[1..]);
        }
        if (!MailAddress.TryParse(key, out var a)) return null;
        var targets = await dir.FindAliasAsync(a.ToString());
        var (bare, detail) = a.SplitDetail(accounts.Defaults.RecipientDelimiter);
        if (targets == null && detail != null) targets = await dir.FindAliasAsync(bare.ToString());
        if (targets != null) return string.Join(",", targets);
        if (await FindMailboxAsync(a) is { Active: true }) return a.ToString();
        var domain = await dir.FindDomainAsync(a.Domain);
        if (domain is not { Active: true }) return null;
        if (domain.AliasFor != null && domain.AliasFor != a.Domain)
        {
            var target = new MailAddress(a.Local, domain.AliasFor);
            var targetAlias = await dir.FindAliasAsync(target.ToString());
            if (targetAlias != null || await FindMailboxAsync(target) is { Active: true }) return target.ToString();
        }
        return await CatchAllAsync(a.Domain);
    }

    private async Task<string?> CatchAllAsync(string domainName)
    {
        var dir = accounts.Directory;
        var catchAll = await dir.FindAliasAsync("@" + domainName);
        if (catchAll != null) return string.Join(",", catchAll);
        var d = await dir.FindDomainAsync(domainName);
        if (d?.AliasFor != null && d.AliasFor != domainName && await dir.FindAliasAsync("@" + d.AliasFor) is { } targetCatchAll)
            return string.Join(",", targetCatchAll);
        return null;
    }
}
