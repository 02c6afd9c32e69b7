// The one way a small state file is replaced (dovecot-uidlist,
// dovecot-keywords, subscriptions, maildirsize, our index and modseq files,
// the queue's state files, the directory's files): a temporary file with a
// unique name beside it, created exclusively, written, fsynced when losing it
// in a crash would lose data, given the mode the file had (or the mode asked
// for a new one) and its owner, then renamed over the file, whose directory
// is fsynced too. A reader sees the old file or the new one, never a part.
namespace Mail.Shared.IO;

public static class AtomicFile
{
    /// <summary>Owner read and write only, as Dovecot creates its Maildir files.</summary>
    public const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Replaces <paramref name="path"/> with what <paramref name="write"/> writes to the stream it is
    /// given (buffered). A file that exists keeps its mode (and, rewritten by root, its owner); a
    /// new one gets <paramref name="newMode"/>. With an owner given, the file is chowned to it
    /// (a daemon running as root writes into a user's Maildir).
    /// </summary>
    /// <param name="durable">fsync the file and its directory: the content must survive a crash (not for a cache).</param>
    public static void Write(string path, Action<Stream> write, UnixFileMode newMode = Private, (uint Uid, uint Gid)? owner = null, bool durable = true)
    {
        UnixFileMode mode;
        try
        {
            mode = File.GetUnixFileMode(path);
            owner ??= Ownership.IsRoot ? Ownership.Of(path) : null; // root's rewrite of a user's file stays the user's
        }
        catch (FileNotFoundException) { mode = newMode; }
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, "." + Path.GetFileName(path) + ".tmp." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N"));
        try
        {
            using (var fs = new FileStream(tmp, new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 64 * 1024, UnixCreateMode = mode,
                   }))
            {
                write(fs);
                fs.Flush(flushToDisk: durable);
            }
            File.SetUnixFileMode(tmp, mode); // the umask may have taken bits away
            if (owner is { } o) Ownership.Chown(tmp, o.Uid, o.Gid);
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        if (durable) Disk.FsyncDirectory(dir);
    }

    /// <summary>Replaces <paramref name="path"/> with UTF-8 <paramref name="text"/>.</summary>
    public static void WriteText(string path, string text, UnixFileMode newMode = Private, (uint Uid, uint Gid)? owner = null, bool durable = true) =>
        Write(path, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)), newMode, owner, durable);
}
