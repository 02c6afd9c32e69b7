// Maildir++ quota: the maildirsize file. Its first line holds the limits
// ("<bytes>S,<count>C"), each further line a change ("<bytes> <count>").
// The usage is the sum of the changes; it is recalculated from the files when
// the file is missing, malformed, or grows past 5120 bytes (as Dovecot does).
// The file is rewritten through tmp/ and a rename; appends are single writes.
using System.Globalization;
using System.Text;

namespace Mail.Shared.Maildir;

public static class MaildirQuota
{
    public readonly record struct Usage(long Bytes, long Messages);

    /// <summary>Current usage of the whole Maildir, from maildirsize (recalculated when needed).</summary>
    public static Usage Read(string maildir, long limitBytes, long limitMessages)
    {
        var path = Path.Combine(maildir, "maildirsize");
        try
        {
            if (File.Exists(path))
            {
                var text = File.ReadAllText(path);
                if (text.Length <= 5120)
                {
                    var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    if (lines.Length > 0 && lines[0] == Header(limitBytes, limitMessages))
                    {
                        long b = 0, m = 0;
                        bool ok = true;
                        foreach (var l in lines.Skip(1))
                        {
                            var f = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                            if (f.Length != 2 || !long.TryParse(f[0], out var db) || !long.TryParse(f[1], out var dm)) { ok = false; break; }
                            b += db;
                            m += dm;
                        }
                        if (ok) return new Usage(b, m);
                    }
                }
            }
        }
        catch (IOException) { }
        return Recalculate(maildir, limitBytes, limitMessages);
    }

    /// <summary>Counts every message file of every folder and writes a fresh maildirsize.</summary>
    public static Usage Recalculate(string maildir, long limitBytes, long limitMessages)
    {
        long bytes = 0, count = 0;
        var folders = new List<string> { maildir };
        if (Directory.Exists(maildir))
            folders.AddRange(Directory.EnumerateDirectories(maildir, ".*").Where(d => Path.GetFileName(d) is not ("." or "..")));
        foreach (var folder in folders)
            foreach (var sub in new[] { "cur", "new" })
            {
                var dir = Path.Combine(folder, sub);
                if (!Directory.Exists(dir)) continue;
                foreach (var f in Directory.EnumerateFiles(dir))
                {
                    count++;
                    bytes += SizeFromName(f) ?? new FileInfo(f).Length;
                }
            }
        // Maildir++: a cache that can always be recounted, so not fsynced; the Maildir's owner's.
        if (Directory.Exists(maildir))
            Mail.Shared.IO.AtomicFile.WriteText(Path.Combine(maildir, "maildirsize"), $"{Header(limitBytes, limitMessages)}\n{bytes} {count}\n",
                Mail.Shared.IO.AtomicFile.Private, Mail.Shared.IO.Ownership.Of(maildir), durable: false);
        return new Usage(bytes, count);
    }

    /// <summary>Records a delivery (or, with negative numbers, a removal).</summary>
    public static void Add(string maildir, long bytes, long messages)
    {
        var path = Path.Combine(maildir, "maildirsize");
        if (!File.Exists(path)) return;
        var line = Encoding.ASCII.GetBytes($"{bytes} {messages}\n");
        using var fs = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        fs.Write(line);
    }

    private static string Header(long bytes, long messages)
    {
        var parts = new List<string>();
        if (bytes > 0) parts.Add(bytes.ToString(CultureInfo.InvariantCulture) + "S");
        if (messages > 0) parts.Add(messages.ToString(CultureInfo.InvariantCulture) + "C");
        return parts.Count == 0 ? "0S" : string.Join(',', parts);
    }

    /// <summary>The W= (virtual, CRLF) size in a Maildir file name, if present.</summary>
    public static long? VirtualSizeFromName(string path) => NumberInName(path, ",W=");

    /// <summary>The S= size in a Maildir file name, if present.</summary>
    public static long? SizeFromName(string path) => NumberInName(path, ",S=");

    private static long? NumberInName(string path, string field)
    {
        var name = Path.GetFileName(path);
        int i = name.IndexOf(field, StringComparison.Ordinal);
        if (i < 0) return null;
        int start = i + field.Length, end = start;
        while (end < name.Length && char.IsAsciiDigit(name[end])) end++;
        return long.TryParse(name.AsSpan(start, end - start), out var n) ? n : null;
    }
}
