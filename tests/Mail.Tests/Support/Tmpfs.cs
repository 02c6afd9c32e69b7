// A small tmpfs mounted over a folder of a test, to stand for a disk that
// fills up; unmounted on dispose. Needs root (CI runs as root; elsewhere the
// test is skipped, under CI=true it fails).
namespace Mail.Tests.Support;

internal sealed class Tmpfs : IDisposable
{
    public string Path { get; }

    private Tmpfs(string path) => Path = path;

    /// <summary>Mounts a tmpfs of <paramref name="size"/> over <paramref name="path"/>, with at most <paramref name="inodes"/> files if given.</summary>
    public static Tmpfs Mount(string path, string size = "256k", int inodes = 0)
    {
        Directory.CreateDirectory(path);
        var options = $"size={size},mode=0755" + (inodes > 0 ? $",nr_inodes={inodes}" : "");
        var r = Run.Program(Peers.Require("mount"), ["-t", "tmpfs", "-o", options, "tmpfs", path]);
        if (r.ExitCode != 0)
        {
            var msg = $"cannot mount a tmpfs on {path}: {r.Stderr.Trim()}";
            if (Peers.InCi) Assert.Fail(msg);
            else Assert.Ignore(msg);
        }
        return new Tmpfs(path);
    }

    /// <summary>Fills the file system until a write fails for want of space.</summary>
    public void Fill()
    {
        using var fs = new FileStream(System.IO.Path.Combine(Path, ".filler"), FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[4096];
        try { while (true) fs.Write(block); }
        catch (IOException) { }
    }

    /// <summary>Creates empty files until no inode is left (a file system out of inodes, with space to spare).</summary>
    public void FillInodes()
    {
        var dir = Directory.CreateDirectory(System.IO.Path.Combine(Path, ".inodes")).FullName;
        try
        {
            for (int i = 0; i < 1_000_000; i++) File.Create(System.IO.Path.Combine(dir, i.ToString())).Dispose();
            Assert.Fail("the file system has no inode limit");
        }
        catch (IOException) { }
    }

    /// <summary>Fills the file system the given way: "space" or "inodes".</summary>
    public void Fill(string what)
    {
        if (what == "inodes") FillInodes();
        else Fill();
    }

    /// <summary>Remounts read-only (writes fail with EROFS), or writable again.</summary>
    public void SetReadOnly(bool readOnly)
    {
        var r = Run.Program(Peers.Require("mount"), ["-o", readOnly ? "remount,ro" : "remount,rw", Path]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
    }

    /// <summary>Makes room again.</summary>
    public void Empty()
    {
        File.Delete(System.IO.Path.Combine(Path, ".filler"));
        var inodes = System.IO.Path.Combine(Path, ".inodes");
        if (Directory.Exists(inodes)) Directory.Delete(inodes, recursive: true);
    }

    public void Dispose() => Run.Program(Peers.Require("umount"), ["-l", Path]);
}
