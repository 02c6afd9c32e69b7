// Delivery into Maildir++ as Dovecot lays it out: a message is written to
// tmp/, fsynced, renamed into new/ and the directory fsynced, so that a crash
// at any instant leaves either no trace in new/ or the whole message. File
// names are unique across processes and hosts, and carry ,S=size,W=vsize as
// Dovecot's do. One written copy serves many recipients through hard links.
// Paths come from AuthD; a folder name comes from an address (+detail) and is
// checked before it names a directory.
using System.Runtime.InteropServices;
using System.Text;

namespace Mail.Shared.Maildir;

public static partial class MaildirDelivery
{
    private static long _counter;
    private static readonly string Host = SafeHost(Environment.MachineName);
    public static readonly TimeSpan StaleTmpAge = TimeSpan.FromHours(36);

    /// <summary>A new unique base name: time.MusecPpidQcounter.host (the Maildir spec, as Dovecot writes it).</summary>
    public static string UniqueName()
    {
        var now = DateTimeOffset.UtcNow;
        var secs = now.ToUnixTimeSeconds();
        var usec = (now.UtcTicks / 10) % 1_000_000;
        return $"{secs}.M{usec}P{Environment.ProcessId}Q{Interlocked.Increment(ref _counter)}.{Host}";
    }

    private static string SafeHost(string host) => host.Replace("/", "\\057").Replace(":", "\\072");

    /// <summary>Creates the Maildir (and its cur/new/tmp) if needed, owned by uid/gid when running as root.</summary>
    public static void Ensure(string maildir, uint uid, uint gid)
    {
        foreach (var sub in new[] { "", "cur", "new", "tmp" })
        {
            var path = Path.Combine(maildir, sub);
            if (Directory.Exists(path)) continue;
            var parent = Path.GetDirectoryName(path.TrimEnd('/'));
            if (sub == "" && parent != null && !Directory.Exists(parent))
            {
                Directory.CreateDirectory(parent);
                Chown(parent, uid, gid);
            }
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Chown(path, uid, gid);
        }
    }

    /// <summary>
    /// The folder's Maildir for a +detail, if that folder exists: Maildir++
    /// ".detail" with '.' as the hierarchy separator. INBOX (the root) otherwise.
    /// </summary>
    public static string FolderFor(string maildir, string? detail)
    {
        if (string.IsNullOrEmpty(detail) || detail.Length > 200) return maildir;
        foreach (var c in detail)
            if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return maildir;
        if (detail.StartsWith('.') || detail.Contains("..")) return maildir;
        var folder = Path.Combine(maildir, "." + detail);
        return Directory.Exists(Path.Combine(folder, "cur")) ? folder : maildir;
    }

    /// <summary>
    /// Removes files left in tmp/ by interrupted deliveries: those older than 36 hours (the
    /// Maildir rule, for any writer), and at once those whose writer, named in the file name
    /// (P&lt;pid&gt; on this host), no longer runs, so that a killed lmtpd leaves nothing behind
    /// once the next message arrives. Were such a file still wanted, its writer's rename would
    /// fail and the message be retried: nothing is lost either way.
    /// </summary>
    public static void CleanTmp(string maildir)
    {
        var tmp = Path.Combine(maildir, "tmp");
        if (!Directory.Exists(tmp)) return;
        var limit = DateTime.UtcNow - StaleTmpAge;
        foreach (var f in Directory.EnumerateFiles(tmp))
        {
            try { if (WriterIsGone(Path.GetFileName(f)) || File.GetLastWriteTimeUtc(f) < limit) File.Delete(f); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Is <paramref name="name"/> a unique name of this host whose process no longer runs?</summary>
    internal static bool WriterIsGone(string name)
    {
        if (!name.EndsWith("." + Host, StringComparison.Ordinal) || !Directory.Exists("/proc/self")) return false;
        var p = name.IndexOf(".M", StringComparison.Ordinal);
        p = p < 0 ? -1 : name.IndexOf('P', p);
        if (p < 0) return false;
        int end = p + 1;
        while (end < name.Length && char.IsAsciiDigit(name[end])) end++;
        if (!int.TryParse(name.AsSpan(p + 1, end - p - 1), out var pid) || pid <= 0) return false;
        return !Directory.Exists("/proc/" + pid);
    }

    /// <summary>A new file in <paramref name="maildir"/>/tmp (mode 0600, the mail user's) for a message being received.</summary>
    public static (string Path, FileStream File) CreateTmp(string maildir, uint uid, uint gid)
    {
        var tmp = Path.Combine(maildir, "tmp", UniqueName());
        var fs = new FileStream(tmp, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite, BufferSize = 64 * 1024,
        });
        try { Chown(tmp, uid, gid); }
        catch { fs.Dispose(); File.Delete(tmp); throw; }
        return (tmp, fs);
    }

    /// <summary>
    /// Makes a written tmp/ file visible in <paramref name="folder"/>/new
    /// (rename, or a hard link when the file serves several recipients), and
    /// fsyncs the directory (cur/ with Maildir flag letters when <paramref name="flags"/> has any). A recipient whose mailbox belongs to another
    /// uid/gid than the file gets a copy of its own. Returns the new path.
    /// </summary>
    public static string Publish(string tmpPath, string folder, long size, long vsize, bool link, uint uid, uint gid, string flags = "")
    {
        var name = Path.GetFileName(tmpPath);
        if (link) name = UniqueName();
        // With flags (a Sieve filter's), the message goes to cur/ with them, as Dovecot saves it.
        var sub = flags.Length > 0 ? "cur" : "new";
        var target = Path.Combine(folder, sub, $"{name},S={size},W={vsize}" + (flags.Length > 0 ? ":2," + flags : ""));
        if (link)
        {
            bool sameOwner = !Mail.Shared.IO.Ownership.IsRoot || (Mail.Shared.IO.Ownership.Of(tmpPath) is var (fu, fg) && fu == uid && fg == gid);
            if (!sameOwner || LinkFile(tmpPath, target) != 0)
            {
                // Another file system: copy through this folder's own tmp/.
                var copy = Path.Combine(folder, "tmp", name);
                File.Copy(tmpPath, copy);
                using (var fs = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite)) fs.Flush(flushToDisk: true);
                Chown(copy, uid, gid);
                File.Move(copy, target);
            }
        }
        else
        {
            File.Move(tmpPath, target);
        }
        FsyncDirectory(Path.Combine(folder, sub));
        return target;
    }

    public static void FsyncDirectory(string dir) => Mail.Shared.IO.Disk.FsyncDirectory(dir);

    /// <summary>The owner of a file (stat(2): .NET does not expose it).</summary>
    public static void Chown(string path, uint uid, uint gid) => Mail.Shared.IO.Ownership.Chown(path, uid, gid);

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LinkFile(string oldPath, string newPath);

    /// <summary>rename(2) with nothing around it (File.Move adds a stat and path work per call); false if the source is gone.</summary>
    public static bool TryRename(string from, string to)
    {
        if (RenameNative(from, to) == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == 2) return false; // ENOENT
        throw new IOException($"rename {from} -> {to} failed (errno {errno})", errno);
    }

    [LibraryImport("libc", EntryPoint = "rename", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameNative(string from, string to);

    /// <summary>
    /// An open directory, for renames within it by name alone (renameat(2)): the kernel does not
    /// walk the directory's path again for each of many renames.
    /// </summary>
    public sealed class OpenDirectory : IDisposable
    {
        private int _fd;

        public string Path { get; }

        public OpenDirectory(string path)
        {
            Path = path;
            _fd = OpenNative(path, 0x10000 | 0x80000); // O_RDONLY | O_DIRECTORY | O_CLOEXEC
            if (_fd < 0) { var errno = Marshal.GetLastPInvokeError(); throw new IOException($"cannot open directory {path} (errno {errno})", errno); }
        }

        /// <summary>Renames one entry of the directory; false if it is gone.</summary>
        public bool TryRename(string from, string to)
        {
            ObjectDisposedException.ThrowIf(_fd < 0, this);
            if (RenameAtNative(_fd, from, _fd, to) == 0) return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == 2) return false;
            throw new IOException($"rename {from} -> {to} in {Path} failed (errno {errno})", errno);
        }

        public void Dispose()
        {
            if (_fd >= 0) CloseNative(_fd);
            _fd = -1;
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenNative(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int CloseNative(int fd);

    [LibraryImport("libc", EntryPoint = "renameat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameAtNative(int fromDir, string from, int toDir, string to);

    /// <summary>unlink(2); false if the name is gone.</summary>
    public static bool TryUnlink(string path)
    {
        if (UnlinkNative(path) == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == 2) return false; // ENOENT
        throw new IOException($"unlink {path} failed (errno {errno})", errno);
    }

    [LibraryImport("libc", EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int UnlinkNative(string path);

    /// <summary>A hard link (link(2)); true on success.</summary>
    public static bool TryLink(string from, string to) => LinkFile(from, to) == 0;

}
