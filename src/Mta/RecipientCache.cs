// Recipient look-ups through AuthD, with the answers "deliver there" and "not
// our domain" kept for a few seconds (recipient_cache_ttl) as Postfix's
// processes keep their map look-ups: a burst of mail for one address asks
// AuthD once, not twice per message (smtpd's RCPT and the queue manager's
// delivery). "Unknown" is not kept, so a mailbox or alias added is seen at
// once; one removed, or a domain added, is seen within the TTL (LMTP refuses
// a removed mailbox meanwhile).
using System.Collections.Concurrent;
using Mail.Shared.Auth;

namespace Mail.Mta;

internal sealed class RecipientCache(AuthClient auth, TimeSpan ttl, string delimiter, int maxEntries = 10_000)
{
    private readonly ConcurrentDictionary<string, (ResolveRecipientReply Reply, long Expires)> _cache = new(StringComparer.OrdinalIgnoreCase);

    public async Task<ResolveRecipientReply> ResolveAsync(string address, ClientInfo? client, CancellationToken ct = default)
    {
        var now = Environment.TickCount64;
        if (ttl > TimeSpan.Zero && _cache.TryGetValue(address, out var hit) && hit.Expires > now) return hit.Reply;
        var request = new ResolveRecipientRequest { Address = address };
        if (client != null) request.Client = client;
        var reply = await auth.ResolveRecipientAsync(request, delimiter, ct);
        if (ttl > TimeSpan.Zero && reply.Status is RecipientStatus.Ok or RecipientStatus.NotOurDomain)
        {
            if (_cache.Count >= maxEntries) _cache.Clear(); // crude, bounded, and rare
            _cache[address] = (reply, now + (long)ttl.TotalMilliseconds);
        }
        return reply;
    }
}
