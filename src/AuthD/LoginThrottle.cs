// Slows down password guessing: each failed login waits, and the wait doubles
// with every recent failure from the same client IP or for the same user name.
// The user name is counted whether or not it exists, so the delay says nothing
// about existence. Memory is bounded: at most Capacity keys are remembered.
namespace Mail.AuthD;

internal sealed class LoginThrottle(TimeSpan baseDelay, TimeSpan maxDelay, TimeSpan window, Func<DateTime>? clock = null)
{
    public const int Capacity = 100_000;
    private readonly Dictionary<string, (int Count, DateTime Last)> _failures = new(StringComparer.Ordinal);
    private readonly Func<DateTime> _clock = clock ?? (() => DateTime.UtcNow);

    /// <summary>Counts a failure and returns how long its answer must wait.</summary>
    public TimeSpan Failure(string? ip, string? user)
    {
        lock (_failures)
        {
            var now = _clock();
            if (_failures.Count >= Capacity) Prune(now);
            int n = 0;
            if (!string.IsNullOrEmpty(ip)) n = Math.Max(n, Bump("ip:" + ip, now));
            if (!string.IsNullOrEmpty(user)) n = Math.Max(n, Bump("user:" + user, now));
            if (n == 0) n = 1;
            var ticks = baseDelay.Ticks * (1L << Math.Min(n - 1, 20));
            return TimeSpan.FromTicks(Math.Min(ticks, maxDelay.Ticks));
        }
    }

    /// <summary>A successful login clears the user's count (the IP's decays by itself).</summary>
    public void Success(string? user)
    {
        if (string.IsNullOrEmpty(user)) return;
        lock (_failures) _failures.Remove("user:" + user);
    }

    public int Size { get { lock (_failures) return _failures.Count; } }

    public int Count(string key)
    {
        lock (_failures) return _failures.TryGetValue(key, out var v) && _clock() - v.Last < window ? v.Count : 0;
    }

    private int Bump(string key, DateTime now)
    {
        var count = _failures.TryGetValue(key, out var v) && now - v.Last < window ? v.Count + 1 : 1;
        _failures[key] = (count, now);
        return count;
    }

    private void Prune(DateTime now)
    {
        foreach (var key in _failures.Where(kv => now - kv.Value.Last >= window).Select(kv => kv.Key).ToList())
            _failures.Remove(key);
        if (_failures.Count >= Capacity)
            foreach (var key in _failures.OrderBy(kv => kv.Value.Last).Take(Capacity / 2).Select(kv => kv.Key).ToList())
                _failures.Remove(key);
    }
}
