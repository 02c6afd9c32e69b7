// A small tmpfs mounted over a folder of a test, to stand for a disk that
// fills up; unmounted on dispose. Needs root (CI runs as root; elsewhere the
// test is skipped, under CI=true it fails).
namespace Mail.Tests.Support;

internal sealed class Tmpfs : IDisposable
{
    public string Path { get; }

    private Tmpfs(string path) => Path = path;

    public static Tmpfs Mount(string path, string size = "256k")
    {
        Directory.CreateDirectory(path);
        var r = Run.Program(Peers.Require("mount"), ["-t", "tmpfs", "-o", $"size={size},mode=0755", "tmpfs", path]);
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

    /// <summary>Remounts read-only (writes fail with EROFS), or writable again.</summary>
    public void SetReadOnly(bool readOnly)
    {
        var r = Run.Program(Peers.Require("mount"), ["-o", readOnly ? "remount,ro" : "remount,rw", Path]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
    }

    /// <summary>Makes room again.</summary>
    public void Empty() => File.Delete(System.IO.Path.Combine(Path, ".filler"));

    public void Dispose() => Run.Program(Peers.Require("umount"), ["-l", Path]);
}
