// The queue manager: takes committed messages from incoming/, delivers them,
// and keeps what could not be delivered in deferred/ for a retry with
// exponential back-off, up to the queue lifetime. Per-recipient results are
// honoured: only recipients that got a 4xx are tried again. Local recipients
// (after AuthD's alias expansion) go by LMTP to lmtp_destination. What is
// still to do for a message is kept in state/ID beside the queue file.
using System.Globalization;
using System.Diagnostics;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.Spool;
using NLog;

namespace Mail.Mta;

internal sealed record QueueOptions(string LmtpDestination, string Hostname, TimeSpan RetryMin, TimeSpan RetryMax, TimeSpan Lifetime);

internal sealed class QueueManager(Spool spool, AuthClient auth, QueueOptions options)
{
    private static readonly Logger Log = MailLog.For("qmgr");
    private readonly SemaphoreSlim _wake = new(0, 1);
    private string StateDir => Path.Combine(spool.Root, "state");

    public void Wake()
    {
        try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(StateDir);
        var (removed, requeued, corrupt) = spool.Recover();
        Log.Info($"queue manager started: {removed} unfinished removed, {requeued} requeued, {corrupt} corrupt");
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await ScanAsync(ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.Error(e, "queue scan failed");
            }
            try { await _wake.WaitAsync(TimeSpan.FromSeconds(1), ct); }
            catch (OperationCanceledException) { return; }
        }
    }

    private async Task ScanAsync(CancellationToken ct)
    {
        foreach (var path in Directory.EnumerateFiles(spool.DirPath(QueueDir.Incoming)).ToList())
        {
            var id = Path.GetFileName(path);
            if (QueueFileReader.Read(path, out _, out _) != QueueFileStatus.Ok) continue; // still being received
            spool.Move(id, QueueDir.Incoming, QueueDir.Active);
            await DeliverAsync(id, ct);
        }
        foreach (var path in Directory.EnumerateFiles(spool.DirPath(QueueDir.Deferred)).ToList())
        {
            var id = Path.GetFileName(path);
            var state = Path.Combine(StateDir, id);
            if (File.Exists(state) && File.GetLastWriteTimeUtc(state) > DateTime.UtcNow) continue; // not due yet
            spool.Move(id, QueueDir.Deferred, QueueDir.Active);
            await DeliverAsync(id, ct);
        }
    }

    private async Task DeliverAsync(string id, CancellationToken ct)
    {
        var path = spool.FilePath(QueueDir.Active, id);
        var status = QueueFileReader.Read(path, out var envelope, out var chunks);
        if (status != QueueFileStatus.Ok)
        {
            spool.Move(id, QueueDir.Active, QueueDir.Corrupt);
            Log.Error($"{id}: queue file is {status.ToString().ToLowerInvariant()}; moved to corrupt/");
            return;
        }
        var statePath = Path.Combine(StateDir, id);
        int attempts = 0;
        var remaining = envelope!.Recipients.ToList();
        if (File.Exists(statePath))
        {
            var lines = File.ReadAllLines(statePath);
            if (lines.Length >= 1 && int.TryParse(lines[0], out var a)) attempts = a;
            remaining = lines.Skip(1).Where(l => envelope.Recipients.Contains(l)).ToList();
        }
        var started = Stopwatch.StartNew();
        var deferred = new List<(string Rcpt, string Why)>();
        var failed = new List<FailedRecipient>();
        var local = new Dictionary<string, List<string>>(StringComparer.Ordinal); // LMTP target -> envelope recipients
        foreach (var rcpt in remaining)
        {
            ResolveRecipientReply r;
            try { r = await auth.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = rcpt }, cancellationToken: ct); }
            catch (RpcException e) { deferred.Add((rcpt, "authd unreachable: " + e.Status.Detail)); continue; }
            switch (r.Status)
            {
                case RecipientStatus.Ok:
                    foreach (var t in r.Targets)
                    {
                        if (!t.Local) { deferred.Add((rcpt, $"delivery to remote address <{t.Address}> is not available yet")); continue; }
                        (local.TryGetValue(t.Address, out var list) ? list : local[t.Address] = []).Add(rcpt);
                    }
                    break;
                case RecipientStatus.Tempfail:
                    deferred.Add((rcpt, "temporary lookup failure"));
                    break;
                case RecipientStatus.NotOurDomain:
                    deferred.Add((rcpt, "delivery to remote domains is not available yet"));
                    break;
                default:
                    LogResult(id, envelope, rcpt, rcpt, "none", started, "5.1.1", "bounced", "user unknown");
                    failed.Add(new FailedRecipient(rcpt, "5.1.1", "550 5.1.1 User unknown"));
                    break;
            }
        }
        if (local.Count > 0)
        {
            try
            {
                var results = await LmtpClient.DeliverAsync(options.LmtpDestination, options.Hostname, envelope.Sender, local.Keys.ToList(),
                    s => QueueFileReader.CopyContent(path, chunks, s), ct);
                foreach (var res in results)
                    foreach (var rcpt in local[res.Recipient])
                    {
                        var dsn = res.Reply.Length > 8 && char.IsAsciiDigit(res.Reply[4]) ? res.Reply.Split(' ')[1] : res.Reply[..1] + ".0.0";
                        if (res.Ok) LogResult(id, envelope, res.Recipient, rcpt, "lmtp", started, dsn, "sent", res.Reply);
                        else if (res.Permanent)
                        {
                            LogResult(id, envelope, res.Recipient, rcpt, "lmtp", started, dsn, "bounced", res.Reply);
                            failed.Add(new FailedRecipient(rcpt, dsn, res.Reply));
                        }
                        else deferred.Add((rcpt, res.Reply));
                    }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                foreach (var rcpt in local.Values.SelectMany(v => v)) deferred.Add((rcpt, "LMTP: " + e.Message));
            }
        }
        var still = deferred.Select(d => d.Rcpt).Distinct().ToList();
        var age = DateTimeOffset.UtcNow - envelope.Arrival;
        if (still.Count > 0 && age > options.Lifetime)
        {
            foreach (var (rcpt, why) in deferred) LogResult(id, envelope, rcpt, rcpt, "none", started, "4.4.7", "expired", why);
            failed.AddRange(still.Select(r => new FailedRecipient(r, "4.4.7", "message expired: " + deferred.First(d => d.Rcpt == r).Why)));
            still.Clear();
        }
        if (failed.Count > 0 && await Bounces.QueueAsync(spool, options.Hostname, id, envelope, path, chunks, failed) != null) Wake();
        if (still.Count == 0)
        {
            File.Delete(path);
            File.Delete(statePath);
            Spool.FsyncDirectory(spool.DirPath(QueueDir.Active));
            Log.Info($"{id}: removed");
            return;
        }
        attempts++;
        var delay = TimeSpan.FromTicks(Math.Min(options.RetryMax.Ticks, options.RetryMin.Ticks * (1L << Math.Min(attempts - 1, 20))));
        foreach (var (rcpt, why) in deferred) LogResult(id, envelope, rcpt, rcpt, "none", started, "4.0.0", "deferred", why);
        var tmp = statePath + ".tmp";
        File.WriteAllLines(tmp, [attempts.ToString(CultureInfo.InvariantCulture), .. still]);
        File.SetLastWriteTimeUtc(tmp, DateTime.UtcNow + delay);
        File.Move(tmp, statePath, overwrite: true);
        Spool.FsyncDirectory(StateDir);
        spool.Move(id, QueueDir.Active, QueueDir.Deferred);
    }

    private static void LogResult(string id, QueueEnvelope env, string to, string origTo, string relay, Stopwatch started, string dsn, string status, string text)
    {
        var delay = (DateTimeOffset.UtcNow - env.Arrival).TotalSeconds;
        var line = $"{id}: to=<{MailLog.Safe(to)}>{(to != origTo ? $", orig_to=<{MailLog.Safe(origTo)}>" : "")}, relay={relay}, delay={delay:0.##}, " +
                   $"delays={started.Elapsed.TotalSeconds:0.###}, dsn={dsn}, status={status} ({MailLog.Safe(text)})";
        if (status == "sent") Log.Info(line); else Log.Warn(line);
    }

}
