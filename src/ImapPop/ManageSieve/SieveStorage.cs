// A user's Sieve scripts as Pigeonhole keeps them, so that Dovecot users'
// filters carry over untouched: ~/sieve/NAME.sieve, the active one named by
// the link ~/.dovecot.sieve -> sieve/NAME.sieve (lmtpd runs what it points
// to). A script name is one directory entry: no '/', no control characters,
// never "." or "..", so no name reaches outside ~/sieve. Writes are atomic
// (a new file renamed into place, as is the link), owned by the mail user.
using System.Text;
using Mail.Shared.IO;

namespace Mail.ImapPop.ManageSieve;

internal sealed class SieveStorage(string home, uint uid, uint gid)
{
    public const int MaxNameLength = 200;
    private const string Extension = ".sieve";

    private string Folder => Path.Combine(home, "sieve");
    private string ActiveLink => Path.Combine(home, ".dovecot.sieve");

    /// <summary>Null when <paramref name="name"/> may name a script, else why not.</summary>
    public static string? CheckName(string name)
    {
        if (name.Length == 0) return "Script name is empty";
        if (Encoding.UTF8.GetByteCount(name) > MaxNameLength) return "Script name is too long";
        if (name is "." or ".." || name.StartsWith('.')) return "Script name may not start with '.'";
        foreach (var c in name)
            if (c < ' ' || c == 127 || c is '/' or '\\' or '\u2028' or '\u2029' or '\ufffd')
                return "Script name has a character not allowed";
        return null;
    }

    private string PathOf(string name) => Path.Combine(Folder, name + Extension);

    public bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>The scripts by name, in name order.</summary>
    public List<string> List()
    {
        if (!Directory.Exists(Folder)) return [];
        return Directory.EnumerateFiles(Folder, "*" + Extension).Select(f => Path.GetFileName(f)[..^Extension.Length])
            .Where(n => CheckName(n) == null).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The active script's name: where ~/.dovecot.sieve links to, when that is a script here.</summary>
    public string? Active()
    {
        var info = new FileInfo(ActiveLink);
        if (info.LinkTarget is not { } target) return null;
        var full = Path.GetFullPath(target, home);
        if (Path.GetDirectoryName(full) != Path.GetFullPath(Folder) || !full.EndsWith(Extension, StringComparison.Ordinal)) return null;
        var name = Path.GetFileName(full)[..^Extension.Length];
        return CheckName(name) == null && File.Exists(full) ? name : null;
    }

    public string? Read(string name) => Exists(name) ? File.ReadAllText(PathOf(name)) : null;

    public long Size(string name) => Exists(name) ? new FileInfo(PathOf(name)).Length : 0;

    public long TotalSize() => List().Sum(Size);

    public void Write(string name, string text)
    {
        EnsureFolder();
        AtomicFile.WriteText(PathOf(name), text, AtomicFile.Private, (uid, gid));
    }

    public void Delete(string name) => File.Delete(PathOf(name));

    public void Rename(string from, string to)
    {
        bool active = Active() == from;
        File.Move(PathOf(from), PathOf(to));
        if (active) Activate(to);
    }

    /// <summary>
    /// Makes <paramref name="name"/> active (null: none is). A ~/.dovecot.sieve that is a plain
    /// file (written by hand before) is kept as the script "dovecot.orig", as Pigeonhole keeps it.
    /// </summary>
    public void Activate(string? name)
    {
        var info = new FileInfo(ActiveLink);
        if (info.Exists && info.LinkTarget == null)
        {
            EnsureFolder();
            var keep = "dovecot.orig";
            for (int n = 1; Exists(keep); n++) keep = $"dovecot.orig.{n}";
            File.Move(ActiveLink, PathOf(keep));
        }
        if (name == null)
        {
            if (info.LinkTarget != null) File.Delete(ActiveLink);
            return;
        }
        var temp = ActiveLink + ".new." + Environment.ProcessId + "." + Environment.CurrentManagedThreadId;
        if (File.Exists(temp) || new FileInfo(temp).LinkTarget != null) File.Delete(temp);
        File.CreateSymbolicLink(temp, Path.Combine("sieve", name + Extension));
        Ownership.ChownLink(temp, uid, gid);
        File.Move(temp, ActiveLink, overwrite: true);
        Disk.FsyncDirectory(home);
    }

    private void EnsureFolder()
    {
        if (!Directory.Exists(home))
        {
            Directory.CreateDirectory(home);
            Ownership.Chown(home, uid, gid);
        }
        if (Directory.Exists(Folder)) return;
        Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Ownership.Chown(Folder, uid, gid);
    }
}
