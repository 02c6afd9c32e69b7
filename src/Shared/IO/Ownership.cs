// Who owns a file, and giving it to the mail user: a daemon running as root
// writes into a user's Maildir as that user's files; one running as the user
// leaves ownership as it is.
using System.Runtime.InteropServices;

namespace Mail.Shared.IO;

public static partial class Ownership
{
    public static bool IsRoot { get; } = Geteuid() == 0;

    /// <summary>The id of a group named in /etc/group, or null.</summary>
    public static uint? GroupId(string name)
    {
        foreach (var line in File.ReadLines("/etc/group"))
        {
            var f = line.Split(':');
            if (f.Length >= 3 && f[0] == name && uint.TryParse(f[2], out var gid)) return gid;
        }
        return null;
    }

    /// <summary>chown(2) when running as root; nothing otherwise.</summary>
    public static void Chown(string path, uint uid, uint gid)
    {
        if (!IsRoot) return;
        if (ChownNative(path, uid, gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot chown {path} to {uid}:{gid} (errno {errno})", errno);
        }
    }

    /// <summary>lchown(2) when running as root: a symbolic link itself, not what it points to.</summary>
    public static void ChownLink(string path, uint uid, uint gid)
    {
        if (!IsRoot) return;
        if (LchownNative(path, uid, gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot chown {path} to {uid}:{gid} (errno {errno})", errno);
        }
    }

    /// <summary>The owner of <paramref name="path"/>, or null when it cannot be read.</summary>
    public static (uint Uid, uint Gid)? Of(string path)
    {
        // struct stat on x86_64 Linux: st_uid at offset 28, st_gid at 32; 144 bytes in all.
        Span<byte> buf = stackalloc byte[256];
        int rc;
        unsafe
        {
            fixed (byte* p = buf) rc = StatNative(path, p);
        }
        return rc == 0 ? (BitConverter.ToUInt32(buf[28..]), BitConverter.ToUInt32(buf[32..])) : null;
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int StatNative(string path, byte* buf);

    [LibraryImport("libc", EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ChownNative(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "lchown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LchownNative(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint Geteuid();
}
