// The last good directory entry of each user who logged in, kept so that
// logins go on while the directory is unreachable (at most auth_cache_ttl
// old). It is consulted only when the directory fails: while the directory
// answers, its answer alone counts, so a changed password takes effect at the
// very next login.
using System.Collections.Concurrent;
using Mail.Shared.UserDirectory;

namespace Mail.AuthD.Sasl;

internal sealed class LoginCache(TimeSpan ttl, Func<DateTime>? clock = null)
{
    public const int Capacity = 100_000;
    private readonly ConcurrentDictionary<string, (DirectoryUser User, DateTime At)> _entries = new(StringComparer.Ordinal);
    private readonly Func<DateTime> _clock = clock ?? (() => DateTime.UtcNow);

    public bool Enabled => ttl > TimeSpan.Zero;

    public void Remember(string key, DirectoryUser? user)
    {
        if (!Enabled) return;
        if (user == null) { _entries.TryRemove(key, out _); return; }
        if (_entries.Count >= Capacity) _entries.Clear();
        _entries[key] = (user, _clock());
    }

    public DirectoryUser? Recall(string key) =>
        Enabled && _entries.TryGetValue(key, out var e) && _clock() - e.At < ttl ? e.User : null;
}
