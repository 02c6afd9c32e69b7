// What the queue holds, as postqueue -p shows it: each message's id, where it
// is (active, incoming, deferred, hold), size, arrival, sender and the
// recipients still to do. Read by mtad for its control socket, and by mailctl
// itself, read-only, when mtad is not running. Also the control socket's
// wire form of an entry, written by mtad and read by mailctl.
using System.Globalization;

namespace Mail.Queue;

/// <param name="Reasons">Why a recipient waits (the last attempt's error), when it was tried.</param>
public sealed record QueueEntry(string Id, QueueDir Dir, long Size, DateTimeOffset Arrival, string Sender, IReadOnlyList<string> Recipients,
    IReadOnlyDictionary<string, string>? Reasons = null)
{
    /// <summary>"ENTRY id dir size arrival-ms &lt;sender&gt;" then "RCPT address[ reason]" per recipient (addresses hold no spaces).</summary>
    public IEnumerable<string> ToLines()
    {
        yield return $"ENTRY {Id} {Dir.ToString().ToLowerInvariant()} {Size} {Arrival.ToUnixTimeMilliseconds()} <{Sender}>";
        foreach (var r in Recipients) yield return "RCPT " + r + (Reasons?.GetValueOrDefault(r) is { } why ? " " + why : "");
    }

    /// <summary>A reason as the state file and the control socket carry it: printable, one line, bounded.</summary>
    public static string CleanReason(string text) => new(text.Select(ch => ch < ' ' || ch == 127 ? ' ' : ch).Take(500).ToArray());

    /// <summary>Parses an ENTRY line (its RCPT lines are added by the reader); null when malformed.</summary>
    public static QueueEntry? Parse(string line)
    {
        var f = line.Split(' ');
        if (f.Length != 6 || f[0] != "ENTRY" || !Spool.IsValidId(f[1]) || !Enum.TryParse<QueueDir>(f[2], ignoreCase: true, out var dir) ||
            !long.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var size) ||
            !long.TryParse(f[4], NumberStyles.None, CultureInfo.InvariantCulture, out var ms) || !f[5].StartsWith('<') || !f[5].EndsWith('>'))
            return null;
        return new QueueEntry(f[1], dir, size, DateTimeOffset.FromUnixTimeMilliseconds(ms), f[5][1..^1], []);
    }
}

public static class QueueListing
{
    /// <summary>
    /// The messages of the spool at <paramref name="root"/>, in postqueue's order (active, incoming,
    /// deferred, hold); files still being received (<paramref name="isOpen"/>) or not whole are left out.
    /// Reads only: nothing is created or changed.
    /// </summary>
    public static List<QueueEntry> Read(string root, Func<string, bool>? isOpen = null)
    {
        var list = new List<QueueEntry>();
        foreach (var dir in new[] { QueueDir.Active, QueueDir.Incoming, QueueDir.Deferred, QueueDir.Hold })
        {
            var path = Path.Combine(root, dir.ToString().ToLowerInvariant());
            if (!Directory.Exists(path)) continue;
            foreach (var f in Directory.EnumerateFiles(path).Order(StringComparer.Ordinal))
            {
                var id = Path.GetFileName(f);
                if (!Spool.IsValidId(id) || (isOpen?.Invoke(id) ?? false)) continue;
                if (QueueFileReader.Read(f, out var env, out var chunks) != QueueFileStatus.Ok) continue;
                var state = Path.Combine(root, "state", id);
                List<string> remaining;
                var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
                try
                {
                    remaining = [];
                    foreach (var line in File.Exists(state) ? File.ReadAllLines(state).Skip(1) : env!.Recipients)
                    {
                        var tab = line.IndexOf('\t');
                        var rcpt = tab < 0 ? line : line[..tab];
                        if (!env!.Recipients.Contains(rcpt)) continue;
                        remaining.Add(rcpt);
                        if (tab >= 0) reasons[rcpt] = line[(tab + 1)..];
                    }
                }
                catch (IOException) { remaining = env!.Recipients.ToList(); }
                list.Add(new QueueEntry(id, dir, chunks.Sum(c => (long)c.Length), env!.Arrival, env.Sender, remaining, reasons));
            }
        }
        return list;
    }
}
