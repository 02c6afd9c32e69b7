// Gives back the pages of the program's own files that start-up touched. A
// daemon maps its executable (19 MB for a NativeAOT image) and libraries; the
// start touches most of them once (and the kernel maps neighbours of each page
// it faults in), so an idle daemon would stay resident with code it never runs
// again. Pages of a file mapping that nobody wrote are exact copies of the file:
// dropped from the process (madvise MADV_DONTNEED) they stay in the page cache
// and come back on the next use at the cost of a minor fault. A mapping with any
// page written (relocations) is left alone, as is anything writable or anonymous.
// The role Windows' working-set trimming plays; Linux has no call for it.
using System.Globalization;
using System.Runtime.InteropServices;

namespace Mail.Shared.Net;

public static partial class WorkingSet
{
    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    private const int MadvDontneed = 4;

    /// <summary>Drops the clean, read-only pages of mapped files from this process; the bytes given back.</summary>
    public static long DropCleanFilePages()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        long dropped = 0;
        string[] lines;
        try { lines = File.ReadAllLines("/proc/self/smaps"); }
        catch (IOException) { return 0; }
        (nint Start, nint End)? candidate = null;
        long rss = 0;
        foreach (var line in lines)
        {
            if (IsMappingHeader(line))
            {
                candidate = Candidate(line);
                rss = 0;
                continue;
            }
            if (candidate == null) continue;
            if (line.StartsWith("Rss:", StringComparison.Ordinal)) rss = Kb(line);
            else if (line.StartsWith("Private_Dirty:", StringComparison.Ordinal))
            {
                var (start, end) = candidate.Value;
                candidate = null;
                if (Kb(line) != 0 || rss == 0) continue; // written, or nothing resident
                if (Madvise(start, (nuint)(end - start), MadvDontneed) == 0) dropped += rss * 1024;
            }
        }
        return dropped;
    }

    /// <summary>"start-end perms offset dev inode path": a mapping line, as opposed to "Key: value".</summary>
    private static bool IsMappingHeader(string line)
    {
        int dash = line.IndexOf('-');
        int space = line.IndexOf(' ');
        return dash > 0 && space > dash && line.AsSpan(0, dash).ContainsAnyExcept("0123456789abcdef") == false;
    }

    /// <summary>The range of a read-only mapping of a file, or null for anything else.</summary>
    private static (nint, nint)? Candidate(string header)
    {
        var f = header.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 6 || !f[5].StartsWith('/') || f[5].EndsWith(" (deleted)", StringComparison.Ordinal)) return null;
        var perms = f[1];
        if (perms.Length < 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p') return null; // readable, not writable, private
        var range = f[0].Split('-');
        if (range.Length != 2
            || !long.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
            || !long.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end)) return null;
        return ((nint)start, (nint)end);
    }

    private static long Kb(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb : 0;
    }
}
