// Mod-sequences for CONDSTORE and QRESYNC (RFC 7162). A Maildir records no
// history, so each folder keeps "imappop.modseq": the highest mod-sequence,
// each message's flags with the mod-sequence of their last change, and the
// UIDs expunged with theirs (and the mod-sequence each message first appeared
// at, so that VANISHED (EARLIER) leaves out what a client cannot have known). Every sync compares what it finds with what was
// recorded: a new message or changed flags (by us, by Dovecot, by anyone)
// gets the next mod-sequence, a vanished UID is recorded as expunged. One
// instance per folder is shared by all sessions of the process.
using System.Collections.Concurrent;
using Mail.Shared.Maildir;

using Mail.Shared.IO;

namespace Mail.ImapPop.Imap;

internal sealed class ModSeqStore
{
    private const string FileName = "imappop.modseq";
    private const int Version = 2; // 2: the mod-sequence each message appeared at
    private const int MaxExpunged = 100_000;
    private readonly string _path;
    private readonly uint _owner, _group;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, (string Flags, ulong ModSeq, ulong Born)> _messages = [];
    private readonly List<(uint Uid, ulong ModSeq, ulong Born)> _expunged = [];
    private object? _lastObserved;
    private uint _uidValidity;

    public ulong Highest { get; private set; } = 1;

    private static readonly ConcurrentDictionary<string, ModSeqStore> Open = new(StringComparer.Ordinal);

    public static ModSeqStore For(string folder, uint uid, uint gid) => Open.GetOrAdd(folder, f => new ModSeqStore(f, uid, gid));
    public static void Forget(string folder) => Open.TryRemove(folder, out _);

    private ModSeqStore(string folder, uint uid, uint gid)
    {
        _path = Path.Combine(folder, FileName);
        (_owner, _group) = (uid, gid);
        try
        {
            using var r = new BinaryReader(File.OpenRead(_path));
            var version = r.ReadInt32();
            if (version is not (1 or Version)) throw new FormatException("unknown version");
            _uidValidity = r.ReadUInt32();
            Highest = r.ReadUInt64();
            int n = r.ReadInt32();
            if (n < 0 || n > 10_000_000) throw new FormatException();
            // Version 1 kept no birth: such messages count as known to every client (born at 0).
            for (int i = 0; i < n; i++) _messages[r.ReadUInt32()] = (r.ReadString(), r.ReadUInt64(), version == 1 ? 0 : r.ReadUInt64());
            int e = r.ReadInt32();
            if (e < 0 || e > MaxExpunged) throw new FormatException();
            for (int i = 0; i < e; i++) _expunged.Add((r.ReadUInt32(), r.ReadUInt64(), version == 1 ? 0 : r.ReadUInt64()));
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or FormatException or UnauthorizedAccessException)
        {
            _messages.Clear();
            _expunged.Clear();
            Highest = Math.Max(Highest, (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds()); // never go back
        }
    }

    /// <summary>Records what a sync found; returns the mod-sequence of every message.</summary>
    public void Observe(FolderState state)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_lastObserved, state.Messages)) return;
            bool changed = false;
            if (_uidValidity != state.UidValidity)
            {
                // A new UIDVALIDITY starts a new history.
                _messages.Clear();
                _expunged.Clear();
                _uidValidity = state.UidValidity;
                changed = true;
            }
            var present = new HashSet<uint>();
            foreach (var m in state.Messages)
            {
                present.Add(m.Uid);
                bool had = _messages.TryGetValue(m.Uid, out var known);
                if (had && known.Flags == m.Flags) continue;
                ++Highest;
                _messages[m.Uid] = (m.Flags, Highest, had ? known.Born : Highest);
                changed = true;
            }
            foreach (var uid in _messages.Keys.Where(u => !present.Contains(u)).ToList())
            {
                var born = _messages[uid].Born;
                _messages.Remove(uid);
                _expunged.Add((uid, ++Highest, born));
                changed = true;
            }
            if (_expunged.Count > MaxExpunged) _expunged.RemoveRange(0, _expunged.Count - MaxExpunged);
            _lastObserved = state.Messages;
            if (changed) Save();
        }
    }

    /// <summary>Records flag changes this process made itself, without waiting for a rescan to find them.</summary>
    public void Record(IReadOnlyList<(uint Uid, string Flags)> changes)
    {
        if (changes.Count == 0) return;
        lock (_lock)
        {
            foreach (var (uid, flags) in changes)
            {
                bool had = _messages.TryGetValue(uid, out var known);
                if (had && known.Flags == flags) continue;
                ++Highest;
                _messages[uid] = (flags, Highest, had ? known.Born : Highest);
            }
            Save();
        }
    }

    public ulong Of(uint uid)
    {
        lock (_lock) return _messages.TryGetValue(uid, out var m) ? m.ModSeq : Highest;
    }

    /// <summary>
    /// UIDs expunged after <paramref name="since"/>, leaving out messages that appeared after it
    /// too: a client synced at <paramref name="since"/> never knew them (RFC 7162 3.2.5.1).
    /// </summary>
    public List<uint> ExpungedSince(ulong since, Func<uint, bool> wanted)
    {
        lock (_lock)
        {
            return _expunged.Where(e => e.ModSeq > since && e.Born <= since && wanted(e.Uid)).Select(e => e.Uid).Distinct().Order().ToList();
        }
    }

    private void Save()
    {
        try
        {
            // Not fsynced, as Dovecot's index files: a crash of the process loses nothing (the page cache
            // survives it); after a power failure an unreadable file starts again from the clock.
            AtomicFile.Write(_path, fs =>
            {
                using var w = new BinaryWriter(fs, System.Text.Encoding.UTF8, leaveOpen: true);
                w.Write(Version);
                w.Write(_uidValidity);
                w.Write(Highest);
                w.Write(_messages.Count);
                foreach (var (uid, (flags, seq, born)) in _messages) { w.Write(uid); w.Write(flags); w.Write(seq); w.Write(born); }
                w.Write(_expunged.Count);
                foreach (var (uid, seq, born) in _expunged) { w.Write(uid); w.Write(seq); w.Write(born); }
            }, AtomicFile.Private, (_owner, _group), durable: false);
        }
        catch (IOException) { } // the next save tries again
    }
}
