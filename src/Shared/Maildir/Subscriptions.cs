// The "subscriptions" file of a Maildir, as Dovecot 2.3 writes it: a
// "V\t2" header and an empty line, then one mailbox per line with TAB as
// the hierarchy separator. The old form (one name per line, no header) is
// read as well. Replaced atomically.
namespace Mail.Shared.Maildir;

public static class Subscriptions
{
    public static HashSet<string> Read(string maildir)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        var path = Path.Combine(maildir, "subscriptions");
        if (!File.Exists(path)) return set;
        var lines = File.ReadAllLines(path);
        int start = 0;
        bool v2 = lines.Length > 0 && lines[0].StartsWith("V\t", StringComparison.Ordinal);
        if (v2) start = lines.Length > 1 && lines[1].Length == 0 ? 2 : 1;
        for (int i = start; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0) continue;
            var name = v2 ? line.Replace('\t', MailboxName.Separator) : line.Replace('.', MailboxName.Separator);
            set.Add(MailboxName.Decode(name) ?? name);
        }
        return set;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, object> Locks = new(StringComparer.Ordinal);

    /// <summary>Changes the subscriptions under a lock (per Maildir, in this process), written through a unique temporary file.</summary>
    public static void Update(string maildir, Func<HashSet<string>, bool> change, uint uid, uint gid)
    {
        lock (Locks.GetOrAdd(maildir, _ => new object()))
        {
            var set = Read(maildir);
            if (change(set)) Write(maildir, set, uid, gid);
        }
    }

    public static void Write(string maildir, IEnumerable<string> names, uint uid, uint gid)
    {
        var text = "V\t2\n\n" + string.Concat(names.Order(StringComparer.Ordinal).Select(n => MailboxName.Encode(n).Replace(MailboxName.Separator, '\t') + "\n"));
        Mail.Shared.IO.AtomicFile.WriteText(Path.Combine(maildir, "subscriptions"), text, Mail.Shared.IO.AtomicFile.Private, (uid, gid));
    }
}
