// Who has which folder selected, and one inotify watch (FileSystemWatcher)
// per folder while at least one session IDLEs on it: a delivery by lmtpd or
// a change by another session or another server wakes those sessions, which
// tell their clients at once. Nothing polls; sessions that are not idling
// look at the folder at their next command, so they need no watch (and a
// STORE on 10,000 messages wakes nobody needlessly).
using System.Collections.Concurrent;

namespace Mail.ImapPop.Imap;

internal sealed class MailboxHub : IDisposable
{
    private sealed class Watch : IDisposable
    {
        public readonly HashSet<object> Sessions = [];
        public readonly List<FileSystemWatcher> Watchers = [];
        public int Subscribers;
        public event Action? Changed;
        public void Fire() => Changed?.Invoke();
        public void Dispose() { foreach (var w in Watchers) w.Dispose(); }
    }

    private readonly ConcurrentDictionary<string, Watch> _watches = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public void Join(string folder, object session)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(folder, out var w)) _watches[folder] = w = new Watch();
            w.Sessions.Add(session);
        }
    }

    public void Leave(string folder, object session)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(folder, out var w)) return;
            w.Sessions.Remove(session);
            if (w.Sessions.Count > 0) return;
            _watches.TryRemove(folder, out _);
            w.Dispose();
        }
    }

    /// <summary>Calls <paramref name="changed"/> on every change of <paramref name="folder"/> until the result is disposed.</summary>
    public IDisposable Subscribe(string folder, Action changed)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(folder, out var w)) return new Unsubscriber(null);
            if (w.Subscribers++ == 0)
                foreach (var sub in new[] { "new", "cur" })
                {
                    var dir = Path.Combine(folder, sub);
                    if (!Directory.Exists(dir)) continue;
                    var fsw = new FileSystemWatcher(dir) { NotifyFilter = NotifyFilters.FileName, IncludeSubdirectories = false };
                    fsw.Created += (_, _) => w.Fire();
                    fsw.Deleted += (_, _) => w.Fire();
                    fsw.Renamed += (_, _) => w.Fire();
                    fsw.EnableRaisingEvents = true;
                    w.Watchers.Add(fsw);
                }
            w.Changed += changed;
            return new Unsubscriber(() =>
            {
                lock (_lock)
                {
                    w.Changed -= changed;
                    if (--w.Subscribers > 0) return;
                    foreach (var fsw in w.Watchers) fsw.Dispose();
                    w.Watchers.Clear();
                }
            });
        }
    }

    private sealed class Unsubscriber(Action? undo) : IDisposable
    {
        public void Dispose() => undo?.Invoke();
    }

    public void Dispose()
    {
        foreach (var w in _watches.Values) w.Dispose();
        _watches.Clear();
    }
}
