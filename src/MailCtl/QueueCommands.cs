// mailctl queue list|show|flush|delete|hold|release: the queue tools, as
// postqueue -p, postcat -q, postqueue -f and postsuper -d/-h/-H. They work
// on the spool that mtad.conf names; mtad's queue manager picks up every
// change on its next scan (within a second).
using System.CommandLine;
using System.Globalization;
using Mail.Shared.Config;
using Mail.Shared.Smtp;
using Mail.Shared.Spool;

namespace Mail.MailCtl;

internal static class QueueCommands
{
    private static readonly Option<string?> MtaConfig = new("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };

    public static Command Build()
    {
        var cmd = new Command("queue", "Look at and act on the mail queue") { MtaConfig };
        var list = new Command("list", "List queued messages (as postqueue -p)");
        list.SetAction(p => Run(p, spool => List(spool)));
        var id = new Argument<string>("id");
        var show = new Command("show", "Print a queued message's envelope and content (as postcat -q)") { id };
        show.SetAction(p => Run(p, spool => Show(spool, p.GetValue(id)!)));
        var flush = new Command("flush", "Try every deferred message now (as postqueue -f)");
        flush.SetAction(p => Run(p, spool =>
        {
            var state = Path.Combine(spool.Root, "state");
            int n = 0;
            if (Directory.Exists(state))
                foreach (var f in Directory.EnumerateFiles(state)) { File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddSeconds(-1)); n++; }
            Console.WriteLine($"mailctl: {n} deferred message(s) due now");
            return 0;
        }));
        var target = new Argument<string>("id") { Description = "A queue id, or ALL" };
        var delete = new Command("delete", "Delete a queued message, or ALL (as postsuper -d)") { target };
        delete.SetAction(p => Run(p, spool =>
        {
            int n = 0;
            foreach (var (dir, qid) in Find(spool, p.GetValue(target)!, QueueDir.Incoming, QueueDir.Deferred, QueueDir.Hold))
            {
                if (dir == QueueDir.Incoming && QueueFileReader.Read(spool.FilePath(dir, qid), out _, out _) != QueueFileStatus.Ok) continue;
                try { File.Delete(spool.FilePath(dir, qid)); File.Delete(Path.Combine(spool.Root, "state", qid)); n++; }
                catch (IOException) { }
            }
            Console.WriteLine($"mailctl: {n} message(s) deleted");
            return n > 0 ? 0 : 1;
        }));
        var holdId = new Argument<string>("id");
        var hold = new Command("hold", "Put a message on hold (as postsuper -h)") { holdId };
        hold.SetAction(p => Run(p, spool => MoveAll(spool, p.GetValue(holdId)!, QueueDir.Hold, QueueDir.Incoming, QueueDir.Deferred)));
        var releaseId = new Argument<string>("id");
        var release = new Command("release", "Release a held message (as postsuper -H)") { releaseId };
        release.SetAction(p => Run(p, spool => MoveAll(spool, p.GetValue(releaseId)!, QueueDir.Deferred, QueueDir.Hold)));
        foreach (var c in new[] { list, show, flush, delete, hold, release }) cmd.Subcommands.Add(c);
        return cmd;
    }

    private static int Run(ParseResult parse, Func<Spool, int> action)
    {
        var path = parse.GetValue(MtaConfig) ?? Environment.GetEnvironmentVariable("MAIL_MTAD_CONFIG");
        if (string.IsNullOrEmpty(path))
            path = new[] { Path.Combine("var", "dev", "etc", "mtad.conf"), "/etc/mail/mtad.conf" }.FirstOrDefault(File.Exists);
        try
        {
            var config = MailConfig.Load("mtad", MtaSettings.Settings, path == null ? null : Path.GetFullPath(path));
            return action(new Spool(config.GetPath("spool_dir")));
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine(e.Message);
            return CtlContext.ExitConfig;
        }
    }

    private static IEnumerable<(QueueDir Dir, string Id)> Find(Spool spool, string id, params QueueDir[] dirs)
    {
        foreach (var d in dirs)
            foreach (var f in Directory.EnumerateFiles(spool.DirPath(d)))
            {
                var name = Path.GetFileName(f);
                if (id == "ALL" || name == id) yield return (d, name);
            }
    }

    private static int MoveAll(Spool spool, string id, QueueDir to, params QueueDir[] from)
    {
        int n = 0;
        foreach (var (dir, qid) in Find(spool, id, from).ToList())
        {
            try { spool.Move(qid, dir, to); n++; }
            catch (IOException) { }
        }
        Console.WriteLine($"mailctl: {n} message(s) moved to {to.ToString().ToLowerInvariant()}");
        return n > 0 ? 0 : 1;
    }

    private static int List(Spool spool)
    {
        Console.WriteLine("-Queue ID-   --Size-- ----Arrival Time---- -Sender/Recipient-------");
        long bytes = 0;
        int count = 0;
        foreach (var (dir, mark) in new[] { (QueueDir.Active, "*"), (QueueDir.Incoming, ""), (QueueDir.Deferred, ""), (QueueDir.Hold, "!") })
            foreach (var f in Directory.EnumerateFiles(spool.DirPath(dir)).Order())
            {
                if (QueueFileReader.Read(f, out var env, out var chunks) != QueueFileStatus.Ok) continue;
                var size = chunks.Sum(c => (long)c.Length);
                bytes += size;
                count++;
                var sender = env!.Sender.Length == 0 ? "MAILER-DAEMON" : env.Sender;
                Console.WriteLine($"{Path.GetFileName(f) + mark,-12} {size,8} {env.Arrival.ToLocalTime().ToString("ddd MMM dd HH:mm:ss", CultureInfo.InvariantCulture)}  {sender}");
                var state = Path.Combine(spool.Root, "state", Path.GetFileName(f));
                var remaining = File.Exists(state) ? File.ReadAllLines(state).Skip(1).ToList() : env.Recipients.ToList();
                foreach (var r in remaining) Console.WriteLine($"{"",42}{r}");
                Console.WriteLine();
            }
        Console.WriteLine(count == 0 ? "Mail queue is empty" : $"-- {(bytes + 1023) / 1024} Kbytes in {count} Request{(count == 1 ? "" : "s")}.");
        return 0;
    }

    private static int Show(Spool spool, string id)
    {
        foreach (var d in Enum.GetValues<QueueDir>())
        {
            var path = spool.FilePath(d, id);
            if (!Spool.IsValidId(id) || !File.Exists(path)) continue;
            var status = QueueFileReader.Read(path, out var env, out var chunks);
            if (status != QueueFileStatus.Ok) { Console.Error.WriteLine($"mailctl: {id} is {status.ToString().ToLowerInvariant()}"); return 1; }
            Console.WriteLine($"*** ENVELOPE RECORDS {d.ToString().ToLowerInvariant()}/{id} ***");
            Console.WriteLine($"arrival_time: {env!.Arrival:R}\nsender: {env.Sender}");
            foreach (var (k, v) in env.Attributes) Console.WriteLine($"{k}: {v}");
            foreach (var r in env.Recipients) Console.WriteLine($"recipient: {r}");
            Console.WriteLine("*** MESSAGE CONTENTS ***");
            using var stdout = Console.OpenStandardOutput();
            QueueFileReader.CopyContent(path, chunks, stdout);
            Console.WriteLine("*** END OF MESSAGE ***");
            return 0;
        }
        Console.Error.WriteLine($"mailctl: no message {id} in the queue");
        return 1;
    }
}
