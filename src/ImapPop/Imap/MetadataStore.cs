// METADATA (RFC 5464) of one user: server entries (mailbox "") and mailbox
// entries, /private/... and /shared/..., kept in "imappop.metadata" in the
// Maildir's root, one entry per line ("mailbox TAB entry TAB base64 value"),
// replaced atomically and fsynced: what a client stored (a push token, a
// chat client's settings) must survive a crash as mail does.
using System.Text;
using Mail.Shared.IO;

namespace Mail.ImapPop.Imap;

internal static class MetadataStore
{
    private const string FileName = "imappop.metadata";
    public const int MaxValue = 64 * 1024;
    public const int MaxEntries = 1000;
    public const int MaxEntryName = 256;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, object> Locks = new(StringComparer.Ordinal);

    /// <summary>Every entry of the user: (mailbox, entry) → value. Entry names are kept in lower case (they are case-insensitive).</summary>
    public static SortedDictionary<(string Mailbox, string Entry), byte[]> Read(string maildir)
    {
        var all = new SortedDictionary<(string, string), byte[]>();
        string[] lines;
        try { lines = File.ReadAllLines(Path.Combine(maildir, FileName)); }
        catch (FileNotFoundException) { return all; }
        foreach (var line in lines)
        {
            var f = line.Split('\t');
            if (f.Length != 3) continue;
            try { all[(f[0], f[1])] = Convert.FromBase64String(f[2]); }
            catch (FormatException) { }
        }
        return all;
    }

    /// <summary>Changes the entries under a lock (per Maildir, in this process); <paramref name="change"/> returns false to leave them as they were.</summary>
    public static T Update<T>(string maildir, uint uid, uint gid, Func<SortedDictionary<(string Mailbox, string Entry), byte[]>, (bool Changed, T Result)> change)
    {
        lock (Locks.GetOrAdd(maildir, _ => new object()))
        {
            var all = Read(maildir);
            var (changed, result) = change(all);
            if (changed)
            {
                var sb = new StringBuilder();
                foreach (var ((mailbox, entry), value) in all)
                    sb.Append(mailbox).Append('\t').Append(entry).Append('\t').Append(Convert.ToBase64String(value)).Append('\n');
                AtomicFile.WriteText(Path.Combine(maildir, FileName), sb.ToString(), AtomicFile.Private, (uid, gid));
            }
            return result;
        }
    }

    /// <summary>A mailbox and those below it renamed (their entries follow), or one deleted (<paramref name="to"/> null: its entries go).</summary>
    public static void MailboxMoved(string maildir, uint uid, uint gid, string from, string? to)
    {
        if (!File.Exists(Path.Combine(maildir, FileName))) return;
        Update(maildir, uid, gid, all =>
        {
            var moved = all.Keys.Where(k => k.Mailbox == from || (to != null && k.Mailbox.StartsWith(from + "/", StringComparison.Ordinal))).ToList();
            foreach (var key in moved)
            {
                var value = all[key];
                all.Remove(key);
                if (to != null) all[(to + key.Mailbox[from.Length..], key.Entry)] = value;
            }
            return (moved.Count > 0, 0);
        });
    }

    /// <summary>
    /// An entry name as RFC 5464 3.2 allows it: "/private/" or "/shared/" then slash-separated
    /// parts of printable ASCII without "*" or "%", no empty part, no trailing slash; lower-cased.
    /// Null when it is not one.
    /// </summary>
    public static string? Normalize(string entry)
    {
        if (entry.Length is < 2 or > MaxEntryName || entry[0] != '/' || entry[^1] == '/' || entry.Contains("//", StringComparison.Ordinal)) return null;
        foreach (var c in entry) if (c is < '!' or > '~' or '*' or '%') return null;
        var lower = entry.ToLowerInvariant();
        return lower.StartsWith("/private/", StringComparison.Ordinal) || lower.StartsWith("/shared/", StringComparison.Ordinal)
            || lower is "/private" or "/shared" ? lower : null;
    }
}
