// One Maildir++ folder as IMAP sees it, kept compatible with Dovecot:
// UIDVALIDITY and the UID of every message in dovecot-uidlist (format 3:
// "3 V<uidvalidity> N<next uid> G<guid>", then "<uid> :<base name>"),
// changed only under dovecot-uidlist.lock (created exclusively, written and
// renamed over the list, as Dovecot's dotlock does); flags in the file name
// after ":2," (D F R S T, then keywords a-z indexed by dovecot-keywords).
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

using Mail.Shared.IO;

namespace Mail.Shared.Maildir;

public sealed record FolderMessage(uint Uid, string BaseName, string Path, string Flags, bool Recent)
{
    public string FileName => System.IO.Path.GetFileName(Path);
}

public sealed record FolderState(uint UidValidity, uint NextUid, IReadOnlyList<FolderMessage> Messages);

public sealed class MaildirFolder(string path, uint ownerUid, uint ownerGid)
{
    public string Path { get; } = path;
    private string UidListPath => System.IO.Path.Combine(Path, "dovecot-uidlist");
    private string LockPath => System.IO.Path.Combine(Path, "dovecot-uidlist.lock");
    public static readonly TimeSpan StaleLock = TimeSpan.FromMinutes(2);

    public bool Exists => Directory.Exists(System.IO.Path.Combine(Path, "cur"));

    /// <summary>
    /// Creates the folder. A Maildir++ subfolder is made whole beside it and renamed into place,
    /// so that no reader (a watcher of the Maildir's root, another server) ever sees it without
    /// its cur/, new/ and tmp/.
    /// </summary>
    public void Create()
    {
        var parent = System.IO.Path.GetDirectoryName(Path);
        if (!Directory.Exists(Path) && System.IO.Path.GetFileName(Path).StartsWith('.') && parent != null && Directory.Exists(System.IO.Path.Combine(parent, "tmp")))
        {
            var staging = System.IO.Path.Combine(parent, "tmp", ".create." + Guid.NewGuid().ToString("N"));
            new MaildirFolder(staging, ownerUid, ownerGid).CreateHere(marker: true);
            try { Directory.Move(staging, Path); }
            catch (IOException) when (Directory.Exists(Path)) { Directory.Delete(staging, recursive: true); } // made meanwhile by another
        }
        CreateHere(marker: System.IO.Path.GetFileName(Path).StartsWith('.'));
    }

    private void CreateHere(bool marker)
    {
        foreach (var sub in new[] { "", "cur", "new", "tmp" })
        {
            var dir = System.IO.Path.Combine(Path, sub);
            if (Directory.Exists(dir)) continue;
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            MaildirDelivery.Chown(dir, ownerUid, ownerGid);
        }
        // Dovecot marks a Maildir++ subfolder with an empty maildirfolder file.
        if (marker)
        {
            var file = System.IO.Path.Combine(Path, "maildirfolder");
            if (!File.Exists(file)) { File.WriteAllBytes(file, []); MaildirDelivery.Chown(file, ownerUid, ownerGid); }
        }
    }

    /// <summary>
    /// dovecot-uidlist (version 3): the header's V, N and G, and a UID per file. Fields we do not
    /// use (Dovecot's W and S sizes per message, other header fields) are kept as they were read
    /// and written back unchanged.
    /// </summary>
    private sealed record UidList(uint UidValidity, uint NextUid, string Guid, Dictionary<string, uint> Uids)
    {
        public string HeaderExtra { get; init; } = "";
        public Dictionary<string, string> Extra { get; init; } = new(StringComparer.Ordinal);
    }

    private UidList? ReadUidList()
    {
        string[] lines;
        try { lines = File.ReadAllLines(UidListPath); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        if (lines.Length == 0) return null;
        var head = lines[0].Split(' ');
        if (head[0] != "3") return null; // another version: rebuilt (UIDVALIDITY changes, as Dovecot does)
        uint validity = 0, next = 1;
        string guid = "";
        var headerExtra = new List<string>();
        foreach (var f in head.Skip(1))
        {
            if (f.Length < 2) continue;
            if (f[0] == 'V') uint.TryParse(f.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out validity);
            else if (f[0] == 'N') uint.TryParse(f.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out next);
            else if (f[0] == 'G') guid = f[1..];
            else headerExtra.Add(f);
        }
        if (validity == 0) return null;
        var uids = new Dictionary<string, uint>(StringComparer.Ordinal);
        var extra = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(1))
        {
            // "UID[ FIELD...] :NAME"
            int sp = line.IndexOf(' ');
            int colon = line.IndexOf(" :", StringComparison.Ordinal);
            if (sp <= 0 || colon < 0) continue;
            if (!uint.TryParse(line.AsSpan(0, sp), NumberStyles.None, CultureInfo.InvariantCulture, out var uid) || uid == 0) continue;
            var name = line[(colon + 2)..];
            uids[name] = uid;
            if (colon > sp) extra[name] = line[(sp + 1)..colon];
            if (uid >= next) next = uid + 1;
        }
        return new UidList(validity, next, guid, uids) { HeaderExtra = string.Join(' ', headerExtra), Extra = extra };
    }

    /// <summary>Runs <paramref name="change"/> holding dovecot-uidlist.lock (InUse when another holds it for over 10 seconds).</summary>
    private T Locked<T>(Func<T> change)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                using (new FileStream(LockPath, FileMode.CreateNew, FileAccess.Write)) { }
                break;
            }
            catch (IOException e) when (StorageError.Classify(e) == StorageErrorKind.Exists)
            {
                // Held by another session or process (or released just now: then try again at once).
                // Anything else (a full disk, the folder gone, no permission) is no lock and is thrown.
                if (DateTime.UtcNow > deadline) throw new StorageException(StorageErrorKind.InUse, $"{LockPath} held by another for over 10 seconds", e);
                if (!File.Exists(LockPath)) continue;
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(LockPath) > StaleLock) { try { File.Delete(LockPath); } catch (IOException) { } continue; }
                Thread.Sleep(20);
            }
        }
        try { return change(); }
        finally { try { File.Delete(LockPath); } catch (IOException) { } }
    }

    private void WriteUidList(UidList list)
    {
        var sb = new StringBuilder();
        sb.Append("3 V").Append(list.UidValidity).Append(" N").Append(list.NextUid).Append(" G").Append(list.Guid);
        if (list.HeaderExtra.Length > 0) sb.Append(' ').Append(list.HeaderExtra);
        sb.Append('\n');
        foreach (var (name, uid) in list.Uids.OrderBy(kv => kv.Value))
        {
            sb.Append(uid);
            if (list.Extra.TryGetValue(name, out var fields)) sb.Append(' ').Append(fields);
            sb.Append(" :").Append(name).Append('\n');
        }
        // UIDs handed out must survive a crash: were the list lost, a message could get another's UID.
        AtomicFile.WriteText(UidListPath, sb.ToString(), AtomicFile.Private, (ownerUid, ownerGid));
    }

    /// <summary>
    /// Brings dovecot-uidlist up to date with the folder's files: new files get the next UIDs
    /// (in delivery order: file time, then name), vanished ones are dropped. With
    /// <paramref name="takeNew"/> the messages in new/ move to cur/ and are reported Recent.
    /// </summary>
    public FolderState Sync(bool takeNew)
    {
        // Nothing changed since the last full sync (same directory and list times, and those
        // times at least a second older than that sync, so no change can hide in one clock
        // tick): the shared state stands, without reading 10,000 directory entries again.
        var stamp = Stamp();
        if (States.TryGetValue(Path, out var cached) && cached.Stamp == stamp && cached.Trusted && !(takeNew && cached.HasNew))
            return cached.State;
        var state = FullSync(takeNew);
        var after = Stamp();
        var trusted = DateTime.UtcNow.Ticks - Math.Max(after.New, Math.Max(after.Cur, after.List)) > TimeSpan.TicksPerSecond;
        // The shared copy shows nothing as Recent: that belongs to the session that moved it.
        var shared = state.Messages.Any(m => m.Recent)
            ? state with { Messages = state.Messages.Select(m => m.Recent ? m with { Recent = false } : m).ToList() }
            : state;
        States[Path] = new CachedState(after, trusted, shared.Messages.Any(m => m.Path.Contains("/new/", StringComparison.Ordinal)), shared);
        return state;
    }

    private readonly record struct DirStamp(long New, long Cur, long List);
    private sealed record CachedState(DirStamp Stamp, bool Trusted, bool HasNew, FolderState State);
    private static readonly ConcurrentDictionary<string, CachedState> States = new(StringComparer.Ordinal);

    private DirStamp Stamp()
    {
        static long T(string p) { try { return File.GetLastWriteTimeUtc(p).Ticks; } catch (IOException) { return 0; } }
        return new DirStamp(T(System.IO.Path.Combine(Path, "new")), T(System.IO.Path.Combine(Path, "cur")), T(UidListPath));
    }

    /// <summary>
    /// Per folder, the lowest UID no session has yet seen as \Recent (RFC 3501 2.3.2): as Dovecot's
    /// first_recent_uid, a message is Recent to the one session that first syncs it, however it
    /// came (delivered into new/, appended, copied or moved in by another session or server).
    /// Kept by the process: what arrived before it started and is no longer in new/ is not Recent.
    /// </summary>
    private static readonly ConcurrentDictionary<string, (uint Validity, uint First)> RecentMarks = new(StringComparer.Ordinal);

    /// <summary>The lowest UID not yet Recent to any session (messages from it on count as Recent in STATUS).</summary>
    public uint RecentFrom => RecentMarks.TryGetValue(Path, out var mark) ? mark.First : uint.MaxValue;

    /// <summary>Claims the messages up to <paramref name="lastUid"/> not yet Recent to any session; returns the first UID claimed (above <paramref name="lastUid"/> when none).</summary>
    public uint ClaimRecent(uint lastUid)
    {
        while (true)
        {
            if (!RecentMarks.TryGetValue(Path, out var mark)) return uint.MaxValue;
            if (lastUid < mark.First) return mark.First;
            if (RecentMarks.TryUpdate(Path, mark with { First = lastUid + 1 }, mark)) return mark.First;
        }
    }

    /// <summary>Starts the Recent mark of a folder first seen by this process, or seen again under a new UIDVALIDITY (deleted and created).</summary>
    private void MarkRecent(uint validity, uint first) =>
        RecentMarks.AddOrUpdate(Path, (validity, first), (_, old) => old.Validity == validity ? old : (validity, 1));

    private static uint _lastValidity;

    /// <summary>
    /// A new UIDVALIDITY: the time in seconds, as Dovecot, but never one this process gave before,
    /// so that a mailbox deleted and created again within a second cannot keep its old value
    /// (a client would take the new messages for the old ones of the same UIDs).
    /// </summary>
    private static uint NewUidValidity()
    {
        while (true)
        {
            var last = Volatile.Read(ref _lastValidity);
            var now = (uint)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastValidity, next, last) == last) return next;
        }
    }

    private FolderState FullSync(bool takeNew)
    {
        var files = Scan();
        var list = ReadUidList();
        if (list != null) MarkRecent(list.UidValidity, list.NextUid);
        if (list == null || files.Keys.Any(k => !list.Uids.ContainsKey(k)) || list.Uids.Keys.Any(k => !files.ContainsKey(k)))
        {
            list = Locked(() =>
            {
                var current = ReadUidList() ?? new UidList(NewUidValidity(), 1, Guid.NewGuid().ToString("N"), new(StringComparer.Ordinal));
                MarkRecent(current.UidValidity, current.NextUid);
                files = Confirm(Scan(), files, current.Uids.Keys); // again, under the lock
                var next = current.NextUid;
                var uids = new Dictionary<string, uint>(StringComparer.Ordinal);
                foreach (var (name, uid) in current.Uids) if (files.ContainsKey(name)) uids[name] = uid;
                // New messages in delivery order: by the file's time, then its name.
                foreach (var name in files.Keys.Where(k => !current.Uids.ContainsKey(k))
                             .OrderBy(k => File.GetLastWriteTimeUtc(files[k].Path)).ThenBy(k => k, StringComparer.Ordinal))
                    uids[name] = next++;
                var updated = current with { NextUid = next, Uids = uids };
                WriteUidList(updated);
                return updated;
            });
        }
        var messages = new List<FolderMessage>(files.Count);
        var shared = Shared.GetOrAdd(Path, _ => new ConcurrentDictionary<string, FolderMessage>(StringComparer.Ordinal));
        foreach (var (name, (filePath, flags, inNew)) in files)
        {
            if (!list.Uids.TryGetValue(name, out var uid)) continue;
            var p = filePath;
            if (inNew && takeNew)
            {
                var target = System.IO.Path.Combine(Path, "cur", name + ":2," + flags);
                try { File.Move(filePath, target, overwrite: true); p = target; } // rename(2): the base name is unique
                catch (FileNotFoundException) { continue; } // taken by another reader: seen at the next sync
                messages.Add(new FolderMessage(uid, name, p, flags, Recent: true));
                continue;
            }
            // Every session of the process shares one record per unchanged file.
            if (!shared.TryGetValue(p, out var m) || m.Uid != uid || m.Recent != inNew)
                shared[p] = m = new FolderMessage(uid, name, p, flags, inNew);
            messages.Add(m);
        }
        if (shared.Count > messages.Count + 64)
        {
            var present = messages.Select(m => m.Path).ToHashSet(StringComparer.Ordinal);
            foreach (var key in shared.Keys) if (!present.Contains(key)) shared.TryRemove(key, out _);
        }
        messages.Sort((a, b) => a.Uid.CompareTo(b.Uid));
        if (LatestNames.TryGetValue(Path, out var latest) && latest.Count > messages.Count + 1024) latest.Clear(); // names of messages gone meanwhile
        return new FolderState(list.UidValidity, list.NextUid, messages);
    }

    /// <summary>
    /// A rename by another session while readdir(3) runs can hide a file from one scan (its
    /// old name already passed, its new name not yet reached), and a listed message must not
    /// look expunged for that: it would lose its UID. What either scan saw stands (the later
    /// scan's name first), and a listed message neither saw is looked for in a third scan and
    /// under the name it was last seen with. Only a message found nowhere is gone.
    /// </summary>
    private Dictionary<string, (string Path, string Flags, bool InNew)> Confirm(
        Dictionary<string, (string Path, string Flags, bool InNew)> latest, Dictionary<string, (string Path, string Flags, bool InNew)> earlier, IEnumerable<string> listed)
    {
        foreach (var (name, entry) in earlier)
            if (!latest.ContainsKey(name) && File.Exists(entry.Path)) latest[name] = entry;
        Dictionary<string, FolderMessage>? lastSeen = null;
        Dictionary<string, (string Path, string Flags, bool InNew)>? third = null;
        foreach (var name in listed)
        {
            if (latest.ContainsKey(name)) continue;
            // Missing from both scans: read the directories once more before anything counts as gone.
            third ??= Scan();
            if (third.TryGetValue(name, out var again)) { latest[name] = again; continue; }
            lastSeen ??= States.TryGetValue(Path, out var cached) ? cached.State.Messages.ToDictionary(m => m.BaseName, StringComparer.Ordinal) : [];
            if (lastSeen.TryGetValue(name, out var m) && File.Exists(m.Path))
                latest[name] = (m.Path, m.Flags, m.Path.Contains("/new/", StringComparison.Ordinal));
        }
        return latest;
    }

    /// <summary>The records of each folder's files, shared by all sessions (a record is immutable; a rename makes a new one).</summary>
    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<string, FolderMessage>> Shared = new(StringComparer.Ordinal);

    /// <summary>Base name → (path, flags, in new/) of every message file.</summary>
    private Dictionary<string, (string Path, string Flags, bool InNew)> Scan()
    {
        var found = new Dictionary<string, (string, string, bool)>(StringComparer.Ordinal);
        foreach (var (sub, inNew) in new[] { ("new", true), ("cur", false) })
        {
            var dir = System.IO.Path.Combine(Path, sub);
            if (!Directory.Exists(dir)) continue;
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                var name = System.IO.Path.GetFileName(file);
                if (name.StartsWith('.')) continue;
                int colon = name.IndexOf(":2,", StringComparison.Ordinal);
                var baseName = colon < 0 ? name : name[..colon];
                var flags = colon < 0 ? "" : name[(colon + 3)..];
                found[baseName] = (file, flags, inNew); // cur/, scanned last, wins: it is where the message went
            }
        }
        return found;
    }

    /// <summary>
    /// Changes a message's flags by a rename within cur/: <paramref name="change"/> is applied to
    /// the flags the file has on disk, so a change made meanwhile by another session or server
    /// is kept, not overwritten. Returns the new path and flags, or null if the message is gone.
    /// </summary>
    public (string Path, string Flags)? SetFlags(FolderMessage message, Func<string, string> change, MaildirDelivery.OpenDirectory? cur = null)
    {
        var path = message.Path;
        for (int attempt = 0; attempt < 5; attempt++)
        {
            var name = System.IO.Path.GetFileName(path);
            int colon = name.IndexOf(":2,", StringComparison.Ordinal);
            var onDisk = colon < 0 ? "" : name[(colon + 3)..];
            var flags = NormalizeFlags(change(onDisk));
            var targetName = string.Concat(message.BaseName, ":2,", flags);
            var target = string.Concat(Path, "/cur/", targetName);
            if (target == path && File.Exists(path)) return (target, flags);
            bool inCur = cur != null && path.Length == cur.Path.Length + 1 + name.Length && path.StartsWith(cur.Path, StringComparison.Ordinal);
            if (inCur ? cur!.TryRename(name, targetName) : MaildirDelivery.TryRename(path, target))
            {
                Renamed(message.BaseName, target);
                return (target, flags);
            }
            // Renamed meanwhile: find it by its base name and apply the change to what it has now.
            var now = Find(message.BaseName);
            if (now == null) return null;
            path = now;
        }
        return null;
    }

    /// <summary>The folder's cur/ opened for many flag changes in a row (SetFlags); null if it cannot be opened.</summary>
    public MaildirDelivery.OpenDirectory? OpenCur()
    {
        try { return new(System.IO.Path.Combine(Path, "cur")); }
        catch (IOException) { return null; }
    }

    /// <summary>Flag letters as a Maildir name has them: each once, in ASCII order (the string itself when it already is).</summary>
    public static string NormalizeFlags(string flags)
    {
        bool ordered = true;
        for (int i = 1; i < flags.Length && ordered; i++) ordered = flags[i - 1] < flags[i];
        if (ordered) return flags;
        Span<bool> seen = stackalloc bool[128];
        int count = 0;
        foreach (var c in flags)
        {
            if (c >= 128) return new string(flags.Distinct().Order().ToArray());
            if (!seen[c]) { seen[c] = true; count++; }
        }
        Span<char> result = stackalloc char[count];
        for (int c = 0, k = 0; c < 128; c++) if (seen[c]) result[k++] = (char)c;
        return new string(result);
    }

    /// <summary>
    /// The file of a message by its base name, wherever a rename has put it; null if none. The
    /// last name a session of this process gave it is tried first; then the directories are
    /// read, three times before the message counts as gone, since a rename by another process
    /// while readdir(3) runs can hide a file from one reading.
    /// </summary>
    private string? Find(string baseName)
    {
        if (LatestNames.TryGetValue(Path, out var names) && names.TryGetValue(baseName, out var latest) && File.Exists(latest)) return latest;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var found = Directory.EnumerateFiles(System.IO.Path.Combine(Path, "cur"), baseName + ":2,*").FirstOrDefault() ??
                        Directory.EnumerateFiles(System.IO.Path.Combine(Path, "new"), baseName + "*").FirstOrDefault();
            if (found != null) return found;
        }
        return null;
    }

    /// <summary>The name each message last got from a flag change in this process, by folder and base name.</summary>
    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<string, string>> LatestNames = new(StringComparer.Ordinal);

    private void Renamed(string baseName, string path) =>
        LatestNames.GetOrAdd(Path, _ => new ConcurrentDictionary<string, string>(StringComparer.Ordinal))[baseName] = path;

    /// <summary>
    /// Removes a message's file, wherever another session's rename has put it meanwhile (a
    /// flag change renames the file; deleting the old name alone would lose the expunge).
    /// Returns the name removed, or null when the message was already gone (removed by another).
    /// </summary>
    public string? Delete(FolderMessage message)
    {
        string? path = message.Path;
        string? removed = null;
        for (int attempt = 0; attempt < 5 && path != null; attempt++)
        {
            if (MaildirDelivery.TryUnlink(path)) { removed = path; break; }
            path = Find(message.BaseName);
        }
        if (LatestNames.TryGetValue(Path, out var names)) names.TryRemove(message.BaseName, out _);
        return removed;
    }

    /// <summary>
    /// Stores a message given in its wire form (CRLF lines, as an IMAP APPEND sends it) as lmtpd
    /// stores one: LF lines in tmp/, fsynced, the mail user's, dated <paramref name="received"/>,
    /// then renamed into cur/ with <paramref name="flags"/> and cur/ fsynced. Returns its base name
    /// and stored size.
    /// </summary>
    public async Task<(string BaseName, long Size)> AppendAsync(Stream wire, DateTimeOffset received, string flags)
    {
        var tmpName = MaildirDelivery.UniqueName();
        var tmp = System.IO.Path.Combine(Path, "tmp", tmpName);
        try
        {
            long size, lines;
            await using (var fs = new FileStream(tmp, new FileStreamOptions
                         {
                             Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 64 * 1024, UnixCreateMode = AtomicFile.Private,
                         }))
            {
                var writer = new Mail.Shared.Smtp.DataWriter(fs, long.MaxValue, dotStuffed: false);
                await writer.CopyFromAsync(wire);
                await fs.FlushAsync();
                fs.Flush(flushToDisk: true);
                (size, lines) = (fs.Length, writer.Lines);
            }
            MaildirDelivery.Chown(tmp, ownerUid, ownerGid);
            File.SetLastWriteTimeUtc(tmp, received.UtcDateTime);
            var baseName = $"{tmpName},S={size},W={size + lines}";
            File.Move(tmp, System.IO.Path.Combine(Path, "cur", baseName + ":2," + NormalizeFlags(flags)));
            MaildirDelivery.FsyncDirectory(System.IO.Path.Combine(Path, "cur"));
            return (baseName, size);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Takes out a message AppendAsync stored, by its base name (an APPEND of several that must be all or none failed part way).</summary>
    public void Remove(string baseName)
    {
        if (Find(baseName) is { } path) MaildirDelivery.TryUnlink(path);
    }

    /// <summary>
    /// A copy of <paramref name="message"/> (of another folder, or this one) in this folder's cur/ as
    /// <paramref name="baseName"/> with <paramref name="flags"/>: a hard link, a copy across file
    /// systems. Call <see cref="CommitCopies"/> once after a run of copies.
    /// </summary>
    public void CopyIn(FolderMessage message, string baseName, string flags)
    {
        var dest = System.IO.Path.Combine(Path, "cur", baseName + ":2," + NormalizeFlags(flags));
        var from = Locate(message) ?? throw new FileNotFoundException("expunged meanwhile", message.Path);
        if (!MaildirDelivery.TryLink(from, dest)) File.Copy(from, dest);
    }

    /// <summary>Makes the copies and moves into cur/ durable (fsync of the directory).</summary>
    public void CommitCopies() => MaildirDelivery.FsyncDirectory(System.IO.Path.Combine(Path, "cur"));

    /// <summary>Is there a message of this base name in cur/ already?</summary>
    public bool HasBaseName(string baseName) => Directory.EnumerateFiles(System.IO.Path.Combine(Path, "cur"), baseName + ":2,*").Any();

    /// <summary>Moves every message of this folder into <paramref name="target"/>'s cur/ (RENAME of INBOX), both directories fsynced.</summary>
    public void MoveAllTo(MaildirFolder target)
    {
        foreach (var m in Sync(takeNew: true).Messages)
            File.Move(Locate(m) ?? m.Path, System.IO.Path.Combine(target.Path, "cur", m.FileName));
        target.CommitCopies();
        CommitCopies();
    }

    /// <summary>Where a message's file is now (a flag change elsewhere renames it); null if it is gone.</summary>
    public string? Locate(FolderMessage message) => File.Exists(message.Path) ? message.Path : Find(message.BaseName);

    /// <summary>The keywords of dovecot-keywords, by index (flag letter 'a' + index).</summary>
    public List<string> Keywords()
    {
        var list = new List<string>();
        var p = System.IO.Path.Combine(Path, "dovecot-keywords");
        if (!File.Exists(p)) return list;
        foreach (var line in File.ReadAllLines(p))
        {
            int sp = line.IndexOf(' ');
            if (sp <= 0 || !int.TryParse(line.AsSpan(0, sp), out var i) || i is < 0 or > 25) continue;
            while (list.Count <= i) list.Add("");
            list[i] = line[(sp + 1)..];
        }
        return list;
    }

    /// <summary>The flag letter of <paramref name="keyword"/>, added to dovecot-keywords if new; null when all 26 are taken.</summary>
    public char? KeywordLetter(string keyword)
    {
        return Locked<char?>(() =>
        {
            var list = Keywords();
            int i = list.FindIndex(k => k.Equals(keyword, StringComparison.OrdinalIgnoreCase));
            if (i >= 0) return (char)('a' + i);
            i = list.FindIndex(k => k.Length == 0);
            if (i < 0) { if (list.Count >= 26) return null; i = list.Count; list.Add(""); }
            list[i] = keyword;
            AtomicFile.WriteText(System.IO.Path.Combine(Path, "dovecot-keywords"), string.Concat(list.Select((k, n) => k.Length > 0 ? $"{n} {k}\n" : "")),
                AtomicFile.Private, (ownerUid, ownerGid));
            return (char)('a' + i);
        });
    }
}
