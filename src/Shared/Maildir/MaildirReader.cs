// Lists the messages of a Maildir++ folder as readers (IMAP, POP3, tools)
// see them: every file in new/ and cur/, once. A message moved from new/ to
// cur/ by another reader between the two directory scans is still listed
// once, by its unique base name (the part before ":2,").
namespace Mail.Shared.Maildir;

public sealed record MaildirMessage(string BaseName, string Path, long Size, string Flags, bool Recent);

public static class MaildirReader
{
    /// <summary>The folder names of a Maildir++ tree: "INBOX" and each ".Name" as "Name".</summary>
    /// <summary>
    /// A message's size with CRLF line ends, as IMAP's RFC822.SIZE and POP3's LIST count it:
    /// from the file name's ",W=" when lmtpd or Dovecot wrote it, else counted from the file.
    /// </summary>
    public static long VirtualSize(FolderMessage m)
    {
        if (MaildirQuota.VirtualSizeFromName(m.Path) is { } v) return v;
        try
        {
            var data = File.ReadAllBytes(m.Path).AsSpan();
            return data.Length + data.Count((byte)'\n') - data.Count("\r\n"u8);
        }
        catch (IOException) { return 0; }
    }

    public static IReadOnlyList<string> Folders(string maildir)
    {
        var list = new List<string> { "INBOX" };
        if (Directory.Exists(maildir))
            list.AddRange(Directory.EnumerateDirectories(maildir, ".*")
                .Where(d => Directory.Exists(System.IO.Path.Combine(d, "cur")))
                .Select(d => System.IO.Path.GetFileName(d)[1..])
                .Where(n => n.Length > 0)
                .Order(StringComparer.Ordinal));
        return list;
    }

    public static string FolderPath(string maildir, string folder) =>
        folder == "INBOX" ? maildir : System.IO.Path.Combine(maildir, "." + folder);

    public static IReadOnlyList<MaildirMessage> List(string folderPath)
    {
        var seen = new Dictionary<string, MaildirMessage>(StringComparer.Ordinal);
        foreach (var (sub, recent) in new[] { ("new", true), ("cur", false) })
        {
            var dir = System.IO.Path.Combine(folderPath, sub);
            if (!Directory.Exists(dir)) continue;
            foreach (var path in Directory.EnumerateFiles(dir))
            {
                var name = System.IO.Path.GetFileName(path);
                if (name.StartsWith('.')) continue;
                int colon = name.IndexOf(":2,", StringComparison.Ordinal);
                var baseName = colon < 0 ? name : name[..colon];
                var flags = colon < 0 ? "" : name[(colon + 3)..];
                long size = MaildirQuota.SizeFromName(path) ?? SafeLength(path);
                // cur/ wins over new/: it is where the message went.
                seen[baseName] = new MaildirMessage(baseName, path, size, flags, recent);
            }
        }
        return seen.Values.OrderBy(m => m.BaseName, StringComparer.Ordinal).ToList();
    }

    private static long SafeLength(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (IOException) { return 0; }
    }
}
