// The MTA's spool: incoming/ (being received, or committed and not yet
// scheduled), active/ (being delivered), deferred/ (waiting for a retry),
// hold/ (held by the administrator) and corrupt/ (failed its checks; kept
// for a human). Moves between them are renames within one file system,
// followed by an fsync of the directories involved.
using System.Security.Cryptography;
using Mail.Shared.Logging;
using NLog;

namespace Mail.Queue;

public enum QueueDir { Incoming, Active, Deferred, Hold, Corrupt }

public sealed class Spool
{
    private static readonly Logger Log = MailLog.For("spool");
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _open = new();
    public string Root { get; }

    public Spool(string root)
    {
        Root = root;
        foreach (var d in Enum.GetValues<QueueDir>())
            Directory.CreateDirectory(DirPath(d), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string DirPath(QueueDir d) => Path.Combine(Root, d.ToString().ToLowerInvariant());
    public string FilePath(QueueDir d, string id) => Path.Combine(DirPath(d), id);

    /// <summary>A queue id: 12 hex digits of time and randomness, unique within the spool.</summary>
    public static string NewId()
    {
        Span<byte> b = stackalloc byte[6];
        var ms = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        b[0] = (byte)(ms >> 24); b[1] = (byte)(ms >> 16); b[2] = (byte)(ms >> 8);
        RandomNumberGenerator.Fill(b[3..]);
        return Convert.ToHexString(b);
    }

    public static bool IsValidId(string id) => id.Length == 12 && id.All(char.IsAsciiHexDigitUpper);

    /// <summary>Starts a new queue file in incoming/; it counts as open (see <see cref="IsOpen"/>) until committed or dropped.</summary>
    public QueueFileWriter Create(QueueEnvelope envelope, out string id)
    {
        while (true)
        {
            id = NewId();
            if (!_open.TryAdd(id, 0)) continue;
            var key = id;
            try { return new QueueFileWriter(FilePath(QueueDir.Incoming, id), envelope, () => _open.TryRemove(key, out _)); }
            catch (IOException) when (File.Exists(FilePath(QueueDir.Incoming, id))) { _open.TryRemove(id, out _); }
            catch { _open.TryRemove(id, out _); throw; }
        }
    }

    /// <summary>True while this process is still writing the incoming file <paramref name="id"/>.</summary>
    public bool IsOpen(string id) => _open.ContainsKey(id);

    /// <summary>
    /// Renames a queue file between directories. A rename is atomic: after a crash the
    /// file is under one name or the other, and recovery finds it in either, so the
    /// queue manager's own moves need no fsync (<paramref name="durable"/> false); an
    /// administrator's hold or release is made durable.
    /// </summary>
    public void Move(string id, QueueDir from, QueueDir to, bool durable = true)
    {
        File.Move(FilePath(from, id), FilePath(to, id));
        if (!durable) return;
        FsyncDirectory(DirPath(to));
        FsyncDirectory(DirPath(from));
    }

    /// <summary>
    /// At start: incoming/ files that are not complete were never acknowledged and are
    /// removed; corrupt ones go to corrupt/; active/ files were being delivered when the
    /// MTA stopped and go back to incoming/ to be scheduled again.
    /// </summary>
    public (int Removed, int Requeued, int Corrupt) Recover()
    {
        int removed = 0, requeued = 0, corrupt = 0;
        foreach (var path in Directory.EnumerateFiles(DirPath(QueueDir.Incoming)))
        {
            var id = Path.GetFileName(path);
            switch (QueueFileReader.Read(path, out _, out _))
            {
                case QueueFileStatus.Incomplete:
                    File.Delete(path);
                    removed++;
                    Log.Info($"{MailLog.Safe(id)}: removed unfinished incoming file");
                    break;
                case QueueFileStatus.Corrupt:
                    Move(id, QueueDir.Incoming, QueueDir.Corrupt);
                    corrupt++;
                    Log.Error($"{MailLog.Safe(id)}: corrupt queue file moved to corrupt/");
                    break;
            }
        }
        foreach (var path in Directory.EnumerateFiles(DirPath(QueueDir.Active)))
        {
            var id = Path.GetFileName(path);
            Move(id, QueueDir.Active, QueueDir.Incoming);
            requeued++;
            Log.Info($"{MailLog.Safe(id)}: requeued after restart");
        }
        FsyncDirectory(DirPath(QueueDir.Incoming));
        return (removed, requeued, corrupt);
    }

    public static void FsyncDirectory(string dir) => Mail.Shared.IO.Disk.FsyncDirectory(dir);
}
