// mtad's control socket, for the queue tools of mailctl (postqueue,
// postsuper): one command per line, answered at once by the queue manager.
// The socket is mode 0600 (mtad's user and root only); still, each line is
// bounded and checked like any other input.
//   LIST                 ENTRY/RCPT lines (QueueEntry), then "OK n"
//   FLUSH                "OK n": deferred messages due now
//   DELETE|HOLD|RELEASE ID|ALL
//                        "OK n", or "BUSY id ..." for messages in delivery, refused
//   QUIT
// Anything else: "ERR why".
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Queue;
using NLog;

namespace Mail.Mta;

internal sealed class ControlSession(LineConnection conn, QueueManager queue)
{
    private static readonly Logger Log = MailLog.For("control");

    public async Task RunAsync()
    {
        for (int commands = 0; commands < 1000; commands++)
        {
            var read = await conn.ReadLineAsync();
            if (!read.IsLine) return;
            var parts = read.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var verb = parts.Length > 0 ? parts[0].ToUpperInvariant() : "";
            var arg = parts.Length == 2 ? parts[1] : null;
            switch (verb)
            {
                case "LIST" when parts.Length == 1:
                    var entries = queue.List();
                    foreach (var e in entries)
                        foreach (var line in e.ToLines()) conn.BufferLine(line);
                    await conn.WriteLineAsync($"OK {entries.Count}");
                    break;
                case "FLUSH" when parts.Length == 1:
                    var due = queue.Flush();
                    Log.Info($"flush: {due} deferred message(s) due now");
                    await conn.WriteLineAsync($"OK {due}");
                    break;
                case "DELETE" or "HOLD" or "RELEASE" when arg != null && (arg == "ALL" || Spool.IsValidId(arg)):
                    var result = verb switch { "DELETE" => queue.Delete(arg), "HOLD" => queue.Hold(arg), _ => queue.Release(arg) };
                    if (result.Busy.Count > 0 && (arg != "ALL" || result.Done == 0))
                        await conn.WriteLineAsync($"BUSY {string.Join(' ', result.Busy)}");
                    else
                        await conn.WriteLineAsync($"OK {result.Done}{(result.Busy.Count > 0 ? " BUSY " + string.Join(' ', result.Busy) : "")}");
                    break;
                case "QUIT":
                    return;
                default:
                    await conn.WriteLineAsync("ERR unknown command or bad argument");
                    break;
            }
        }
    }
}
