// What FETCH needs of a message without reading it again: ENVELOPE,
// BODYSTRUCTURE, BODY, RFC822.SIZE and INTERNALDATE, kept per folder in
// "imappop.index" and shared by every session of the process. A Maildir
// message's content never changes under its base name (the name before
// ":2,"; a rename changes only the flags), so an entry is right for as long
// as that base name exists: files added behind the index's back are parsed
// when first asked for, files removed are dropped when it is next saved.
// The file is versioned and checked; a bad one is rebuilt, never trusted.
using System.Collections.Concurrent;
using System.Text;

namespace Mail.ImapPop.Imap;

/// <summary>TextFilter: null when not made yet, empty when the message's raw bytes cannot be filtered.</summary>
internal sealed record IndexEntry(string Envelope, string BodyStructure, string Body, long VirtualSize, long InternalDate, byte[]? TextFilter, string? References)
{
    /// <summary>SORT and THREAD keys, made from the entry when first asked for and kept in memory only.</summary>
    public SortKeys? Keys { get; set; }
}

internal sealed class FolderIndex
{
    private const string FileName = "imappop.index";
    private const int Version = 4; // 3: ENVELOPE strings raw, as the header has them; 4: References
    private const int MaxEntries = 2_000_000;
    private readonly string _path;
    private readonly uint _uid, _gid;
    private readonly Dictionary<string, IndexEntry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private int _added;

    private FolderIndex(string folder, uint uid, uint gid)
    {
        _path = Path.Combine(folder, FileName);
        _uid = uid;
        _gid = gid;
        Load();
    }

    private static readonly ConcurrentDictionary<string, FolderIndex> Open = new(StringComparer.Ordinal);

    /// <summary>The index of a folder, loaded once per process.</summary>
    public static FolderIndex For(string folder, uint uid, uint gid) => Open.GetOrAdd(folder, f => new FolderIndex(f, uid, gid));

    /// <summary>Forgets a folder's index (the folder was deleted or renamed).</summary>
    public static void Forget(string folder) => Open.TryRemove(folder, out _);

    private void Load()
    {
        try
        {
            using var fs = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024);
            using var r = new BinaryReader(fs, Encoding.UTF8);
            if (r.ReadInt32() != Version) return;
            var count = r.ReadInt32();
            if (count < 0 || count > MaxEntries) return;
            for (int i = 0; i < count; i++)
            {
                var name = r.ReadString();
                var entry = new IndexEntry(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt64(), null, r.ReadBoolean() ? r.ReadString() : null);
                var filterLength = r.ReadInt32(); // -1: not made yet
                if (filterLength is not (-1 or 0 or Imap.TextFilter.Bytes)) throw new FormatException("bad filter");
                _entries[name] = filterLength == -1 ? entry : entry with { TextFilter = r.ReadBytes(filterLength) };
            }
            if (r.ReadInt32() != count) _entries.Clear(); // no end mark: cut short
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or FormatException or UnauthorizedAccessException)
        {
            _entries.Clear();
        }
    }

    /// <summary>The entry of <paramref name="baseName"/>, parsing <paramref name="path"/> when it is new.</summary>
    public IndexEntry Get(string baseName, string path, long virtualSize)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(baseName, out var hit)) return hit;
        }
        var summary = MessageView.Structure(path);
        var entry = new IndexEntry(summary.Envelope, summary.BodyStructure, summary.Body, virtualSize, summary.InternalDate, null, summary.References);
        lock (_lock)
        {
            _entries[baseName] = entry;
            _added++;
        }
        return entry;
    }

    private readonly (object? Snapshot, string Spec, int[] Order)[] _sorts = new (object?, string, int[])[2];
    private int _nextSort;

    /// <summary>
    /// A SORT of a whole mailbox made before on the same state of the folder (the same shared
    /// list of messages, which any change replaces): clients repeat the sort of their list view.
    /// </summary>
    public int[]? Sorted(object snapshot, string spec)
    {
        lock (_lock)
        {
            foreach (var (s, k, order) in _sorts)
                if (ReferenceEquals(s, snapshot) && k == spec) return order;
        }
        return null;
    }

    public void KeepSorted(object snapshot, string spec, int[] order)
    {
        lock (_lock)
        {
            _sorts[_nextSort] = (snapshot, spec, order);
            _nextSort = (_nextSort + 1) % _sorts.Length;
        }
    }

    /// <summary>
    /// The entries of many messages at once (SORT, THREAD, a listing): those the index has under
    /// one lock, the others parsed in parallel on every core (a cold folder of 10,000 messages is
    /// parsed once, as fast as the disk and the cores allow), with their sort keys when asked.
    /// Null for a message gone meanwhile.
    /// </summary>
    public IndexEntry?[] GetAll(IReadOnlyList<Mail.Shared.Maildir.FolderMessage> messages, bool sortKeys = false)
    {
        var result = new IndexEntry?[messages.Count];
        var missing = new List<int>();
        lock (_lock)
        {
            for (int i = 0; i < messages.Count; i++)
                if (_entries.TryGetValue(messages[i].BaseName, out var e)) result[i] = e;
                else missing.Add(i);
        }
        if (missing.Count == 0) return result;
        Parallel.ForEach(missing, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var m = messages[i];
            try
            {
                var entry = Get(m.BaseName, m.Path, Mail.Shared.Maildir.MaildirReader.VirtualSize(m));
                if (sortKeys) SortKeys.Of(entry); // made while the entry is at hand, on the same core
                result[i] = entry;
            }
            catch (FileNotFoundException) { }
            catch (DirectoryNotFoundException) { }
        });
        return result;
    }

    /// <summary>Keeps the text filter a SEARCH made while reading a message (empty: cannot be filtered).</summary>
    public void SetFilter(string baseName, byte[] filter)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(baseName, out var e) || e.TextFilter != null) return;
            _entries[baseName] = e with { TextFilter = filter };
            _added++;
        }
    }

    /// <summary>The entry, if the index already has it (no parse).</summary>
    public IndexEntry? TryGet(string baseName)
    {
        lock (_lock) return _entries.GetValueOrDefault(baseName);
    }

    public bool Has(string baseName)
    {
        lock (_lock) return _entries.ContainsKey(baseName);
    }

    /// <summary>
    /// Writes the index in the background if it learned something: the command's answer does not
    /// wait for it (a cache: were the process to end first, the next session parses again).
    /// </summary>
    public void SaveLater(IEnumerable<string> present)
    {
        lock (_lock) { if (_added == 0) return; }
        var names = present.ToList();
        _ = Task.Run(() => Save(names));
    }

    /// <summary>Serialises the writes of this index; readers never wait for one.</summary>
    private readonly object _saving = new();

    /// <summary>
    /// Writes the index if it learned something, keeping only <paramref name="present"/> base
    /// names. The entries are taken under the lock and written outside it, so that a FETCH or
    /// SORT of the same folder does not wait for the file.
    /// </summary>
    public void Save(IEnumerable<string> present)
    {
        lock (_saving)
        {
            KeyValuePair<string, IndexEntry>[] entries;
            int added;
            lock (_lock)
            {
                if (_added == 0) return;
                var keep = present.ToHashSet(StringComparer.Ordinal);
                foreach (var gone in _entries.Keys.Where(k => !keep.Contains(k)).ToList()) _entries.Remove(gone);
                entries = [.. _entries];
                added = _added;
            }
            try
            {
                // A cache of what the messages say: rebuilt if lost, so not fsynced.
                Mail.Shared.IO.AtomicFile.Write(_path, fs =>
                {
                    using var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true);
                    w.Write(Version);
                    w.Write(entries.Length);
                    foreach (var (name, e) in entries)
                    {
                        w.Write(name);
                        w.Write(e.Envelope);
                        w.Write(e.BodyStructure);
                        w.Write(e.Body);
                        w.Write(e.VirtualSize);
                        w.Write(e.InternalDate);
                        w.Write(e.References != null);
                        if (e.References != null) w.Write(e.References);
                        w.Write(e.TextFilter?.Length ?? -1);
                        if (e.TextFilter != null) w.Write(e.TextFilter);
                    }
                    w.Write(entries.Length);
                }, Mail.Shared.IO.AtomicFile.Private, (_uid, _gid), durable: false);
                lock (_lock) _added -= added; // what came meanwhile is written next time
            }
            catch (IOException) { } // the next save tries again
        }
    }
}
