// Durability primitives the spool and the Maildir library share: fsync of a
// directory (so a rename or link in it survives a crash).
using System.Runtime.InteropServices;

namespace Mail.Shared.IO;

public static partial class Disk
{
    public static void FsyncDirectory(string dir)
    {
        int fd = Open(dir, 0 /* O_RDONLY */);
        if (fd < 0) { var errno = Marshal.GetLastPInvokeError(); throw new IOException($"cannot open {dir} to fsync it (errno {errno})", errno); }
        try
        {
            if (Fsync(fd) != 0) { var errno = Marshal.GetLastPInvokeError(); throw new IOException($"fsync of {dir} failed (errno {errno})", errno); }
        }
        finally { Close(fd); }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
