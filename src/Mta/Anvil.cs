// Rates per client address and per logged-in user, as Postfix's anvil(8):
// connections, messages (counted at MAIL) and recipients (at RCPT) within one
// time unit (anvil_rate_time_unit); a client or user over a limit is refused
// with a temporary error until its unit is over. Counts live in memory only
// (a restart forgets them, and no event costs a disk write); the table is
// bounded: past MaxKeys, counters whose unit is over are dropped, and should
// every counter still be live (a flood of addresses), new keys go uncounted
// rather than grow it.
using System.Collections.Concurrent;

namespace Mail.Mta;

internal enum RateKind { Connection, Message, Recipient }

/// <param name="ClientConnections">Connections per unit from one address; 0 for no limit (and the same for the others).</param>
internal sealed record RateLimits(TimeSpan Unit, int ClientConnections, int ClientMessages, int ClientRecipients, int UserMessages, int UserRecipients)
{
    public static readonly RateLimits None = new(TimeSpan.FromMinutes(1), 0, 0, 0, 0, 0);
}

internal sealed class Anvil(RateLimits limits, int maxKeys = Anvil.MaxKeys)
{
    public const int MaxKeys = 100_000;
    public RateLimits Limits => limits;

    private sealed class Counter
    {
        public long Start;
        public int Count;
    }

    private readonly ConcurrentDictionary<(RateKind, bool User, string Key), Counter> _counters = new();
    private long _lastPrune;

    /// <summary>
    /// Counts one event of <paramref name="kind"/> for a client address (or a user, <paramref name="user"/>):
    /// null when it is within the limit, else the count it reached in this unit.
    /// </summary>
    public int? Count(RateKind kind, bool user, string key)
    {
        int limit = (kind, user) switch
        {
            (RateKind.Connection, false) => limits.ClientConnections,
            (RateKind.Message, false) => limits.ClientMessages,
            (RateKind.Recipient, false) => limits.ClientRecipients,
            (RateKind.Message, true) => limits.UserMessages,
            (RateKind.Recipient, true) => limits.UserRecipients,
            _ => 0,
        };
        if (limit <= 0) return null;
        long now = Environment.TickCount64, unit = (long)limits.Unit.TotalMilliseconds;
        if (!_counters.TryGetValue((kind, user, key), out var counter))
        {
            if (_counters.Count >= maxKeys && !Prune(now, unit)) return null;
            counter = _counters.GetOrAdd((kind, user, key), _ => new Counter { Start = now });
        }
        lock (counter)
        {
            if (now - counter.Start >= unit) (counter.Start, counter.Count) = (now, 0);
            counter.Count++; // refused attempts count too, as anvil's
            return counter.Count > limit ? counter.Count : null;
        }
    }

    /// <summary>Drops the counters whose unit is over, at most once a second; true when there is room again.</summary>
    private bool Prune(long now, long unit)
    {
        var last = Interlocked.Read(ref _lastPrune);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastPrune, now, last) == last)
            foreach (var (key, counter) in _counters)
                if (now - Volatile.Read(ref counter.Start) >= unit) _counters.TryRemove(key, out _);
        return _counters.Count < maxKeys;
    }
}
