// mailctl queue list|show|flush|delete|hold|release: the queue tools, as
// postqueue -p, postcat -q, postqueue -f and postsuper -d/-h/-H. They ask
// mtad through its control socket (control_socket in mtad.conf), so a change
// takes effect at once and a message in delivery is never deleted or held
// behind the queue manager's back. With mtad down, list and show still work,
// reading the spool without changing it; the others say that mtad is needed.
using System.CommandLine;
using System.Net.Sockets;
using System.Text;
using System.Globalization;
using Mail.Shared.Config;
using Mail.Shared.Smtp;
using Mail.Queue;

namespace Mail.MailCtl;

internal static class QueueCommands
{
    private static readonly Option<string?> MtaConfig = new("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };

    public static Command Build()
    {
        var cmd = new Command("queue", "Look at and act on the mail queue") { MtaConfig };
        var list = new Command("list", "List queued messages (as postqueue -p)");
        list.SetAction(p => Run(p, List));
        var id = new Argument<string>("id");
        var show = new Command("show", "Print a queued message's envelope and content (as postcat -q)") { id };
        show.SetAction(p => Run(p, mta => Show(mta.SpoolDir, p.GetValue(id)!)));
        var flush = new Command("flush", "Try every deferred message now (as postqueue -f)");
        flush.SetAction(p => Run(p, mta => Act(mta, "FLUSH", n => $"mailctl: {n} deferred message(s) due now")));
        var target = new Argument<string>("id") { Description = "A queue id, or ALL" };
        var delete = new Command("delete", "Delete a queued message, or ALL (as postsuper -d)") { target };
        delete.SetAction(p => Run(p, mta => Act(mta, "DELETE " + p.GetValue(target), n => $"mailctl: {n} message(s) deleted")));
        var holdId = new Argument<string>("id") { Description = "A queue id, or ALL" };
        var hold = new Command("hold", "Put a message, or ALL, on hold (as postsuper -h)") { holdId };
        hold.SetAction(p => Run(p, mta => Act(mta, "HOLD " + p.GetValue(holdId), n => $"mailctl: {n} message(s) moved to hold")));
        var releaseId = new Argument<string>("id") { Description = "A queue id, or ALL" };
        var release = new Command("release", "Release a held message, or ALL (as postsuper -H)") { releaseId };
        release.SetAction(p => Run(p, mta => Act(mta, "RELEASE " + p.GetValue(releaseId), n => $"mailctl: {n} message(s) released")));
        foreach (var c in new[] { list, show, flush, delete, hold, release }) cmd.Subcommands.Add(c);
        return cmd;
    }

    /// <summary>Where mtad keeps its queue and listens for the queue tools.</summary>
    private sealed record Mta(string SpoolDir, string ControlSocket);

    private static int Run(ParseResult parse, Func<Mta, int> action)
    {
        try
        {
            var config = CtlContext.LoadMtaConfig(parse.GetValue(MtaConfig));
            return action(new Mta(config.GetPath("spool_dir"), config.GetPath("control_socket")));
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine(e.Message);
            return CtlContext.ExitConfig;
        }
    }

    /// <summary>One command to mtad's control socket: the lines it answered, the last being OK, BUSY or ERR; null when mtad does not listen.</summary>
    private static List<string>? Ask(Mta mta, string command)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(mta.ControlSocket));
            using var stream = new NetworkStream(socket);
            stream.ReadTimeout = 60_000;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            stream.Write(Encoding.UTF8.GetBytes(command + "\r\nQUIT\r\n"));
            var lines = new List<string>();
            while (reader.ReadLine() is { } line)
            {
                lines.Add(line);
                if (line.StartsWith("OK", StringComparison.Ordinal) || line.StartsWith("BUSY", StringComparison.Ordinal) || line.StartsWith("ERR", StringComparison.Ordinal))
                    return lines;
                if (lines.Count > 1_000_000) break;
            }
            throw new IOException("mtad closed the control connection before answering");
        }
        catch (SocketException) { return null; }
    }

    /// <summary>A command that changes the queue: through mtad only.</summary>
    private static int Act(Mta mta, string command, Func<string, string> done)
    {
        var reply = Ask(mta, command);
        if (reply == null)
        {
            Console.Error.WriteLine($"mailctl: mtad is not running (no answer on {mta.ControlSocket}); the queue can only be changed through it");
            return CtlContext.ExitTempFail;
        }
        var last = reply[^1];
        if (last.StartsWith("OK", StringComparison.Ordinal))
        {
            var f = last.Split(' ');
            Console.WriteLine(done(f.Length > 1 ? f[1] : "0"));
            if (f.Length > 3 && f[2] == "BUSY") Console.Error.WriteLine($"mailctl: in delivery now, not changed: {string.Join(' ', f[3..])}");
            return f.Length > 1 && f[1] == "0" && command != "FLUSH" ? 1 : 0;
        }
        if (last.StartsWith("BUSY", StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"mailctl: in delivery now, not changed (try again): {last[5..]}");
            return CtlContext.ExitTempFail;
        }
        Console.Error.WriteLine($"mailctl: mtad refused: {last}");
        return 1;
    }

    private static int List(Mta mta)
    {
        List<QueueEntry> entries;
        var reply = Ask(mta, "LIST");
        if (reply == null)
        {
            Console.Error.WriteLine($"mailctl: mtad is not running (no answer on {mta.ControlSocket}): the queue as its files show it");
            entries = QueueListing.Read(mta.SpoolDir);
        }
        else
        {
            entries = [];
            var recipients = new List<string>();
            var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var line in reply.TakeWhile(l => !l.StartsWith("OK", StringComparison.Ordinal)))
            {
                if (line.StartsWith("RCPT ", StringComparison.Ordinal) && entries.Count > 0)
                {
                    var rest = line[5..];
                    var space = rest.IndexOf(' ');
                    recipients.Add(space < 0 ? rest : rest[..space]);
                    if (space > 0) reasons[rest[..space]] = rest[(space + 1)..];
                    continue;
                }
                if (entries.Count > 0) entries[^1] = entries[^1] with { Recipients = recipients, Reasons = reasons };
                (recipients, reasons) = ([], new Dictionary<string, string>(StringComparer.Ordinal));
                entries.Add(QueueEntry.Parse(line) ?? throw new IOException("mtad sent a line mailctl cannot read: " + line));
            }
            if (entries.Count > 0) entries[^1] = entries[^1] with { Recipients = recipients, Reasons = reasons };
        }
        Console.WriteLine("-Queue ID-   --Size-- ----Arrival Time---- -Sender/Recipient-------");
        foreach (var e in entries)
        {
            var mark = e.Dir switch { QueueDir.Active => "*", QueueDir.Hold => "!", _ => "" };
            var sender = e.Sender.Length == 0 ? "MAILER-DAEMON" : e.Sender;
            Console.WriteLine($"{e.Id + mark,-12} {e.Size,8} {e.Arrival.ToLocalTime().ToString("ddd MMM dd HH:mm:ss", CultureInfo.InvariantCulture)}  {sender}");
            // As postqueue: each reason in parentheses above the recipients it holds back.
            string? said = null;
            foreach (var r in e.Recipients)
            {
                if (e.Reasons?.GetValueOrDefault(r) is { } why && why != said) Console.WriteLine($"({(said = why)})");
                Console.WriteLine($"{"",42}{r}");
            }
            Console.WriteLine();
        }
        var bytes = entries.Sum(e => e.Size);
        Console.WriteLine(entries.Count == 0 ? "Mail queue is empty" : $"-- {(bytes + 1023) / 1024} Kbytes in {entries.Count} Request{(entries.Count == 1 ? "" : "s")}.");
        return 0;
    }

    /// <summary>Reads the queue file itself, changing nothing (as postcat does).</summary>
    private static int Show(string spoolDir, string id)
    {
        foreach (var d in Enum.GetValues<QueueDir>())
        {
            var path = Path.Combine(spoolDir, d.ToString().ToLowerInvariant(), id);
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
