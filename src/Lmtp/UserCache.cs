// AuthD's answers about deliverable users, kept for a few seconds as mtad keeps
// its recipients (recipient_cache_ttl): a busy mailbox costs one look-up per
// period instead of one per message. Only a deliverable, active user is kept,
// so a new user is never refused from memory and a removed or disabled one is
// noticed within the period. Bounded: cleared when full.
using System.Collections.Concurrent;
using Mail.Shared.Auth;

namespace Mail.Lmtp;

internal sealed class UserCache(TimeSpan ttl, int maxEntries = 10_000)
{
    private readonly ConcurrentDictionary<string, (LookupUserReply Reply, long Expires)> _cache = new(StringComparer.OrdinalIgnoreCase);

    public LookupUserReply? Get(string address) =>
        ttl > TimeSpan.Zero && _cache.TryGetValue(address, out var hit) && hit.Expires > Environment.TickCount64 ? hit.Reply : null;

    public void Put(string address, LookupUserReply reply)
    {
        if (ttl <= TimeSpan.Zero || reply.Status != LookupStatus.Ok || !reply.User.Active) return;
        if (_cache.Count >= maxEntries) _cache.Clear(); // crude, bounded, and rare
        _cache[address] = (reply, Environment.TickCount64 + (long)ttl.TotalMilliseconds);
    }
}
