// Where mail for an address goes, as Postfix's virtual_alias_maps and
// virtual_mailbox_maps decide it: an exact alias (with or without +detail),
// then a mailbox, then the domain's catch-all. Aliases expand recursively,
// bounded in depth and count; an alias loop is cut and logged. A target that
// is the alias itself (a@d -> a@d, b@d) delivers to a@d's mailbox.
using Mail.Shared.Smtp;
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.UserDirectory;
using NLog;

namespace Mail.AuthD;

internal sealed class RecipientResolver(Accounts accounts, int recursionLimit, int expansionLimit)
{
    private static readonly Logger Log = MailLog.For("resolve");

    public async Task<ResolveRecipientReply> ResolveAsync(string text, CancellationToken ct)
    {
        var reply = new ResolveRecipientReply();
        if (!MailAddress.TryParse(text, out var address))
        {
            reply.Status = RecipientStatus.UnknownUser;
            reply.Reason = "malformed address";
            return reply;
        }
        if (await accounts.Directory.FindDomainAsync(address.Domain, ct).ConfigureAwait(false) is not { } domain || !domain.Active)
        {
            reply.Status = RecipientStatus.NotOurDomain;
            return reply;
        }
        var state = new State(reply);
        await ExpandAsync(address, null, 0, [], state, top: true, ct, domain).ConfigureAwait(false);
        if (reply.Targets.Count > 0) reply.Status = RecipientStatus.Ok;
        else if (state.Looped) { reply.Status = RecipientStatus.Loop; reply.Reason = "alias loop or expansion too deep"; }
        else if (state.Inactive) { reply.Status = RecipientStatus.Inactive; reply.Reason = "mailbox disabled"; }
        else { reply.Status = RecipientStatus.UnknownUser; reply.Reason = "no such user"; }
        return reply;
    }

    private sealed class State(ResolveRecipientReply reply)
    {
        public readonly ResolveRecipientReply Reply = reply;
        public readonly HashSet<string> Seen = new(StringComparer.Ordinal);
        public bool Looped;
        public bool Inactive;
    }

    private async Task ExpandAsync(MailAddress address, string? inheritedDetail, int depth, HashSet<string> chain,
        State state, bool top, CancellationToken ct, DirectoryDomain? knownDomain = null)
    {
        if (depth > recursionLimit)
        {
            state.Looped = true;
            Log.Warn($"alias expansion of {address} exceeds alias_recursion_limit={recursionLimit}");
            return;
        }
        if (state.Reply.Targets.Count >= expansionLimit)
        {
            Log.Warn($"alias expansion reached alias_expansion_limit={expansionLimit} at {address}");
            return;
        }
        var dir = accounts.Directory;
        var domain = knownDomain ?? await dir.FindDomainAsync(address.Domain, ct).ConfigureAwait(false);
        if (domain == null || !domain.Active)
        {
            Add(state, new RecipientTarget { Address = address.ToString(), Local = false });
            return;
        }
        var (bare, ownDetail) = address.SplitDetail(accounts.Defaults.RecipientDelimiter);
        var detail = ownDetail ?? inheritedDetail;
        var key = address.ToString();
        var targets = await dir.FindAliasAsync(key, ct).ConfigureAwait(false);
        if (targets == null && ownDetail != null)
        {
            key = bare.ToString();
            targets = await dir.FindAliasAsync(key, ct).ConfigureAwait(false);
        }
        if (targets != null)
        {
            // An alias that matched with its +detail consumes it; one that matched
            // without passes the detail on to its targets (Postfix's
            // propagate_unmatched_extensions).
            if (ownDetail != null && key == address.ToString()) detail = inheritedDetail;
            var next = new HashSet<string>(chain, StringComparer.Ordinal) { key };
            foreach (var t in targets)
            {
                if (!MailAddress.TryParse(t, out var ta)) continue;
                if (ta.ToString() == key || ta.ToString() == bare.ToString())
                {
                    await DeliverToMailboxAsync(bare, detail, state, top, ct).ConfigureAwait(false);
                    continue;
                }
                if (next.Contains(ta.ToString()))
                {
                    state.Looped = true;
                    Log.Warn($"alias loop cut: {key} -> {ta}");
                    continue;
                }
                await ExpandAsync(ta, detail, depth + 1, next, state, top: false, ct).ConfigureAwait(false);
            }
            return;
        }
        if (domain.AliasFor != null && domain.AliasFor != address.Domain)
        {
            // An alias domain (PostfixAdmin's alias_domain): x@alias is x@target,
            // unless an alias of its own matched above.
            var target = new MailAddress(address.Local, domain.AliasFor);
            if (chain.Contains(target.ToString())) { state.Looped = true; return; }
            var next = new HashSet<string>(chain, StringComparer.Ordinal) { address.ToString() };
            await ExpandAsync(target, inheritedDetail, depth + 1, next, state, top, ct).ConfigureAwait(false);
            return;
        }
        if (await DeliverToMailboxAsync(bare, detail, state, top, ct).ConfigureAwait(false)) return;
        var catchAll = await dir.FindAliasAsync("@" + address.Domain, ct).ConfigureAwait(false);
        if (catchAll != null)
        {
            var next = new HashSet<string>(chain, StringComparer.Ordinal) { "@" + address.Domain };
            foreach (var t in catchAll)
            {
                if (!MailAddress.TryParse(t, out var ta)) continue;
                if (next.Contains(ta.ToString())) { state.Looped = true; continue; }
                await ExpandAsync(ta, null, depth + 1, next, state, top: false, ct).ConfigureAwait(false);
            }
            return;
        }
        if (!top) Log.Warn($"alias target {address} has no mailbox; dropped");
    }

    /// <summary>Adds the mailbox of <paramref name="bare"/> if it exists and is active.</summary>
    private async Task<bool> DeliverToMailboxAsync(MailAddress bare, string? detail, State state, bool top, CancellationToken ct)
    {
        var user = await accounts.Directory.FindUserAsync(bare.ToString(), ct).ConfigureAwait(false);
        if (user == null) return false;
        if (!user.Active)
        {
            if (top) state.Inactive = true;
            return true;
        }
        Add(state, new RecipientTarget
        {
            Address = detail == null ? user.Address : $"{bare.Local}{accounts.Defaults.RecipientDelimiter[0]}{detail}@{bare.Domain}",
            Local = true,
            Mailbox = user.Address,
            Detail = detail ?? "",
        });
        return true;
    }

    private void Add(State state, RecipientTarget target)
    {
        var key = target.Local ? target.Mailbox + "\0" + target.Detail : target.Address;
        if (state.Reply.Targets.Count < expansionLimit && state.Seen.Add(key)) state.Reply.Targets.Add(target);
    }
}
