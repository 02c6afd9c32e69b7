// The queue manager: takes committed messages from incoming/, delivers them,
// and keeps what could not be delivered in deferred/ for a retry with
// exponential back-off, up to the queue lifetime. Up to max_deliveries
// messages are in delivery at once, and at most destination_concurrency of
// them talk to one destination (Postfix's default_destination_concurrency_limit).
// Per-recipient results are honoured: only recipients that got a 4xx are
// tried again. Local recipients (after AuthD's alias expansion) go by LMTP to
// lmtp_destination; others by SMTP to their domain's MX hosts or the relay
// host (SmtpDelivery, NextHop). What is still to do for a message is kept in state/ID
// beside the queue file: "ATTEMPTS[ warned]" then the remaining recipients,
// its mtime being the next attempt.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Smtp;
using Mail.Queue;
using NLog;

namespace Mail.Mta;

internal sealed record QueueOptions(Func<CancellationToken, Task<ServerAddress>> LmtpDestination, string Hostname, TimeSpan RetryMin, TimeSpan RetryMax, TimeSpan Lifetime,
    TimeSpan DelayWarning, int MaxDeliveries = 100, int DestinationConcurrency = 20,
    NextHop? Routes = null, TlsLevel SmtpTls = TlsLevel.May, bool DeferRemote = false, RelayLogins? Logins = null,
    Mail.MailAuth.Srs? Srs = null, Mail.MailAuth.DkimKeyring? Keys = null);

internal sealed class QueueManager(Spool spool, RecipientCache recipients, QueueOptions options)
{
    private static readonly Logger Log = MailLog.For("qmgr");
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly SemaphoreSlim _slots = new(options.MaxDeliveries);
    private readonly ConcurrentDictionary<string, Task> _inFlight = new();
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _destinations = new();

    /// <summary>
    /// A deferred message's retry state when its state file could not be written (a full or
    /// failing disk): kept here until a later attempt can write it, so that the queue goes on
    /// retrying without a restart and without retrying at once, again and again.
    /// </summary>
    private sealed record RetryState(DateTime Due, int Attempts, bool Warned, List<string> Still);
    private readonly ConcurrentDictionary<string, RetryState> _retry = new();
    private readonly SmtpClient _lmtp = new(ClientProtocol.Lmtp, options.Hostname, TlsLevel.None);
    private readonly NextHop _nextHop = options.Routes ?? new NextHop("", 25, []);
    private readonly SmtpClient _smtp = new(ClientProtocol.Smtp, options.Hostname, options.SmtpTls);

    /// <summary>MX hosts (addresses) tried per delivery, as Postfix's smtp_mx_address_limit.</summary>
    private const int MaxHosts = 5;
    private string StateDir => Path.Combine(spool.Root, "state");

    public void Wake()
    {
        try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(StateDir);
        var (removed, requeued, corrupt) = spool.Recover();
        foreach (var state in Directory.EnumerateFiles(StateDir))
        {
            // A state file whose message is gone (its removal outran the state's in a crash).
            var id = Path.GetFileName(state);
            if (id.EndsWith(".tmp", StringComparison.Ordinal) || !Enum.GetValues<QueueDir>().Any(d => File.Exists(spool.FilePath(d, id)))) File.Delete(state);
        }
        Log.Info($"queue manager started: {removed} unfinished removed, {requeued} requeued, {corrupt} corrupt");
        while (!ct.IsCancellationRequested)
        {
            // Scans when woken (a message committed, a delivery done, the administrator) and when
            // the next deferred message is due; at least once a minute. An idle queue costs nothing.
            var wait = MaxSleep;
            try
            {
                wait = await ScanAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                Log.Error(e, "queue scan failed");
                wait = TimeSpan.FromSeconds(1);
            }
            try { await _wake.WaitAsync(wait, ct); }
            catch (OperationCanceledException) { break; }
        }
        // Deliveries under way finish or are cut off by the token; what they
        // left in active/ is requeued at the next start.
        await Task.WhenAll(_inFlight.Values);
        _lmtp.Dispose();
        _smtp.Dispose();
    }

    private static readonly TimeSpan MaxSleep = TimeSpan.FromMinutes(1);

    /// <summary>Starts what is due; returns how long until the next deferred message is.</summary>
    private async Task<TimeSpan> ScanAsync(CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var next = now + MaxSleep;
        foreach (var path in Directory.EnumerateFiles(spool.DirPath(QueueDir.Incoming)))
        {
            var id = Path.GetFileName(path);
            if (id.StartsWith('.')) continue; // not a queue file (a temporary file, an administrator's)
            if (spool.IsOpen(id) || _inFlight.ContainsKey(id)) continue; // still being received, or already taken
            await StartAsync(id, QueueDir.Incoming, ct);
        }
        foreach (var path in Directory.EnumerateFiles(spool.DirPath(QueueDir.Deferred)))
        {
            var id = Path.GetFileName(path);
            if (id.StartsWith('.') || _inFlight.ContainsKey(id)) continue;
            var state = Path.Combine(StateDir, id);
            var due = _retry.TryGetValue(id, out var kept) ? kept.Due : File.Exists(state) ? File.GetLastWriteTimeUtc(state) : now;
            if (due > now)
            {
                if (due < next) next = due;
                continue; // not due yet
            }
            await StartAsync(id, QueueDir.Deferred, ct);
        }
        var wait = next - DateTime.UtcNow;
        return wait < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : wait;
    }

    /// <summary>Waits for a delivery slot, moves the message to active/ and delivers it in the background.</summary>
    private async Task StartAsync(string id, QueueDir from, CancellationToken ct)
    {
        await _slots.WaitAsync(ct);
        var gate = new TaskCompletionSource();
        // Under the control lock: an administrator's delete or hold sees the message either
        // before it is taken (and acts on it) or in delivery (and is refused), never between.
        lock (_control)
        {
            try
            {
                spool.Move(id, from, QueueDir.Active, durable: false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _slots.Release(); // gone meanwhile
                Log.Debug($"{id}: not scheduled: {e.Message}");
                return;
            }
            _inFlight[id] = gate.Task;
        }
        _ = Task.Run(async () =>
        {
            try { await DeliverAsync(id, ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            catch (Exception e) { DeferAfterFault(id, e); }
            finally
            {
                _inFlight.TryRemove(id, out _);
                _slots.Release();
                gate.SetResult();
                Wake();
            }
        }, CancellationToken.None);
    }

    /// <summary>
    /// A fault stopped this message's delivery (a full disk while writing its state or a notice,
    /// a bug): the message, never the queue, waits, back in deferred/ with a retry at retry_min.
    /// </summary>
    private void DeferAfterFault(string id, Exception e)
    {
        var kind = StorageError.Is(e) ? StorageError.Classify(e).ToString() : e.GetType().Name;
        Log.Error($"{id}: delivery stopped by a fault ({kind}: {MailLog.Safe(e.Message)}); deferred, retry in {options.RetryMin.TotalSeconds:0}s");
        if (!StorageError.Is(e)) Log.Debug(e, $"{id}: fault");
        var kept = _retry.GetValueOrDefault(id);
        _retry[id] = new RetryState(DateTime.UtcNow + options.RetryMin, kept?.Attempts ?? 0, kept?.Warned ?? false, kept?.Still ?? []);
        try { spool.Move(id, QueueDir.Active, QueueDir.Deferred, durable: false); }
        catch (Exception m) when (m is IOException or UnauthorizedAccessException)
        {
            Log.Error($"{id}: cannot move back to deferred/ ({MailLog.Safe(m.Message)}); it is retried from active/ at the next start");
        }
    }

    // ---- the administrator's queue operations (mtad's control socket) ----

    private readonly object _control = new();

    /// <summary>What the queue holds (postqueue -p).</summary>
    public List<QueueEntry> List() => QueueListing.Read(spool.Root, spool.IsOpen);

    /// <summary>Every deferred message is due now (postqueue -f); returns how many.</summary>
    public int Flush()
    {
        int n = 0;
        lock (_control)
            foreach (var path in Directory.EnumerateFiles(spool.DirPath(QueueDir.Deferred)))
            {
                DueNow(Path.GetFileName(path));
                n++;
            }
        Wake();
        return n;
    }

    /// <summary>A deferred message's next attempt is now (its state file's time is when it is due).</summary>
    private void DueNow(string id)
    {
        var state = Path.Combine(StateDir, id);
        if (File.Exists(state)) File.SetLastWriteTimeUtc(state, DateTime.UtcNow.AddSeconds(-1));
    }

    /// <summary>The outcome of an operation on queue ids: how many were done, and those in delivery (refused: try again).</summary>
    public sealed record ControlResult(int Done, List<string> Busy);

    /// <summary>Deletes a message, or ALL (postsuper -d); a message in delivery is refused, never counted and then delivered.</summary>
    public ControlResult Delete(string target) => Act(target, [QueueDir.Incoming, QueueDir.Deferred, QueueDir.Hold], (id, dir) =>
    {
        File.Delete(spool.FilePath(dir, id));
        File.Delete(Path.Combine(StateDir, id));
        Log.Info($"{id}: removed by the administrator");
    }, durable: [QueueDir.Incoming, QueueDir.Deferred, QueueDir.Hold]);

    /// <summary>Puts a message, or ALL, on hold (postsuper -h).</summary>
    public ControlResult Hold(string target) => Act(target, [QueueDir.Incoming, QueueDir.Deferred], (id, dir) =>
    {
        spool.Move(id, dir, QueueDir.Hold);
        Log.Info($"{id}: held by the administrator");
    });

    /// <summary>Releases a held message, or ALL (postsuper -H): it is tried at once.</summary>
    public ControlResult Release(string target)
    {
        var r = Act(target, [QueueDir.Hold], (id, dir) =>
        {
            DueNow(id);
            spool.Move(id, dir, QueueDir.Deferred);
            Log.Info($"{id}: released by the administrator");
        });
        Wake();
        return r;
    }

    private ControlResult Act(string target, QueueDir[] dirs, Action<string, QueueDir> action, QueueDir[]? durable = null)
    {
        int done = 0;
        var busy = new List<string>();
        lock (_control)
        {
            foreach (var dir in dirs)
                foreach (var path in Directory.EnumerateFiles(spool.DirPath(dir)))
                {
                    var id = Path.GetFileName(path);
                    if (!Spool.IsValidId(id) || (target != "ALL" && id != target)) continue;
                    if (spool.IsOpen(id)) continue; // still being received: not yet a message of the queue
                    action(id, dir);
                    done++;
                }
            foreach (var id in _inFlight.Keys)
                if (target == "ALL" || id == target) busy.Add(id);
            foreach (var dir in durable ?? []) Spool.FsyncDirectory(spool.DirPath(dir));
        }
        return new ControlResult(done, busy);
    }

    private SemaphoreSlim Destination(string name) => _destinations.GetOrAdd(name, _ => new SemaphoreSlim(options.DestinationConcurrency));

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
        bool warned = false;
        var remaining = envelope!.Recipients.ToList();
        if (_retry.TryGetValue(id, out var kept) && kept.Still.Count > 0)
        {
            // The state a full disk kept from its file: fresher than any file there may be.
            (attempts, warned) = (kept.Attempts, kept.Warned);
            remaining = kept.Still.Where(envelope.Recipients.Contains).ToList();
        }
        else if (File.Exists(statePath))
        {
            var lines = File.ReadAllLines(statePath);
            var head = lines.Length >= 1 ? lines[0].Split(' ') : [];
            if (head.Length >= 1 && int.TryParse(head[0], out var a)) attempts = a;
            warned = head.Contains("warned");
            remaining = lines.Skip(1).Select(l => l.Split('\t')[0]).Where(envelope.Recipients.Contains).ToList();
        }
        var started = Stopwatch.StartNew();
        var deferred = new List<(string Rcpt, string Why)>();
        var failed = new List<RecipientNotice>();
        var delivered = new List<RecipientNotice>();
        var relayed = new List<RecipientNotice>();
        var local = new Dictionary<string, List<string>>(StringComparer.Ordinal); // LMTP target -> envelope recipients
        // (domain, forwarded by an alias of ours) -> (recipient, address)
        var remote = new Dictionary<(string Domain, bool Forwarded), List<(string Rcpt, string Target)>>();
        void Remote(string rcpt, string target, bool forwarded = false)
        {
            var domain = target[(target.LastIndexOf('@') + 1)..].ToLowerInvariant();
            (remote.TryGetValue((domain, forwarded), out var list) ? list : remote[(domain, forwarded)] = []).Add((rcpt, target));
        }
        HashSet<string>? deliveredTo = null;
        foreach (var rcpt in remaining)
        {
            // A bounce to an address we rewrote when forwarding: back to the original sender
            // (its hash was checked on arrival; the time stamp is not checked again here).
            if (options.Srs is { } srs && Mail.MailAuth.Srs.IsSrs(rcpt) && rcpt.EndsWith("@" + srs.Domain, StringComparison.OrdinalIgnoreCase))
            {
                if (srs.Reverse(rcpt, DateTimeOffset.UtcNow, checkAge: false) is { } original) { Remote(rcpt, original); continue; }
                LogResult(id, envelope, rcpt, rcpt, "none", started, "5.1.1", "bounced", "invalid SRS address");
                failed.Add(new RecipientNotice(rcpt, "5.1.1", "550 5.1.1 invalid SRS address"));
                continue;
            }
            ResolveRecipientReply r;
            try { r = await recipients.ResolveAsync(rcpt, null, ct); }
            catch (RpcException e) when (!ct.IsCancellationRequested) { deferred.Add((rcpt, "authd unreachable: " + e.Status.Detail)); continue; }
            switch (r.Status)
            {
                case RecipientStatus.Ok:
                    foreach (var t in r.Targets)
                    {
                        if (!t.Local) { Remote(rcpt, t.Address, forwarded: true); continue; }
                        // As Postfix's local(8): a message that already went to this mailbox has come back round a forwarding loop.
                        deliveredTo ??= DeliveredTo(path, chunks);
                        if (deliveredTo.Contains(t.Address))
                        {
                            LogResult(id, envelope, t.Address, rcpt, "none", started, "5.4.6", "bounced", "mail forwarding loop for " + t.Address);
                            failed.Add(new RecipientNotice(rcpt, "5.4.6", "554 5.4.6 mail forwarding loop for " + t.Address));
                            continue;
                        }
                        (local.TryGetValue(t.Address, out var list) ? list : local[t.Address] = []).Add(rcpt);
                    }
                    break;
                case RecipientStatus.Tempfail:
                    deferred.Add((rcpt, "temporary lookup failure"));
                    break;
                case RecipientStatus.NotOurDomain:
                    // From a local process (a Sieve redirect through the pickup socket, say): sent on
                    // for someone else, so a sender not of ours is rewritten as an alias's would be.
                    Remote(rcpt, rcpt, forwarded: envelope.Attributes.GetValueOrDefault(OriginAttribute) == "local");
                    break;
                default:
                    LogResult(id, envelope, rcpt, rcpt, "none", started, "5.1.1", "bounced", "user unknown");
                    failed.Add(new RecipientNotice(rcpt, "5.1.1", "550 5.1.1 User unknown"));
                    break;
            }
        }
        if (local.Count > 0)
        {
            var destination = Destination("lmtp");
            await destination.WaitAsync(ct);
            try
            {
                var server = await options.LmtpDestination(ct);
                var message = new OutgoingMessage(envelope.Sender, local.Keys.ToList(), ContentSize(chunks), EmptyAttributes, c => QueueFileReader.ReadContentAsync(path, chunks, c));
                var outcome = await _lmtp.DeliverAsync(server, message, ct);
                foreach (var res in outcome.Results)
                    foreach (var rcpt in local[res.Recipient])
                    {
                        var dsn = res.Dsn;
                        if (res.Ok)
                        {
                            LogResult(id, envelope, res.Recipient, rcpt, server.ToString(), started, dsn, "sent", res.Reply, "lmtp");
                            delivered.Add(new RecipientNotice(rcpt, dsn, res.Reply));
                        }
                        else if (res.Permanent)
                        {
                            LogResult(id, envelope, res.Recipient, rcpt, server.ToString(), started, dsn, "bounced", res.Reply, "lmtp");
                            failed.Add(new RecipientNotice(rcpt, dsn, res.Reply));
                        }
                        else deferred.Add((rcpt, res.Reply));
                    }
            }
            catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested))
            {
                // Whatever went wrong with this delivery defers this message; the queue goes on.
                if (e is not (IOException or SocketException or OperationCanceledException)) Log.Error(e, $"{id}: LMTP delivery failed");
                foreach (var rcpt in local.Values.SelectMany(v => v)) deferred.Add((rcpt, "LMTP: " + e.Message));
            }
            finally { destination.Release(); }
        }
        foreach (var ((domain, forwarded), list) in remote)
            if (options.DeferRemote) deferred.AddRange(list.Select(x => (x.Rcpt, "deferred transport (defer_transports = smtp)")));
            else await DeliverRemoteAsync(id, envelope, path, chunks, domain, list, started, relayed, failed, deferred, ct, forwarded);
        var still = deferred.Select(d => d.Rcpt).Distinct().ToList();
        var age = DateTimeOffset.UtcNow - envelope.Arrival;
        if (still.Count > 0 && age > options.Lifetime)
        {
            foreach (var (rcpt, why) in deferred) LogResult(id, envelope, rcpt, rcpt, "none", started, "4.4.7", "expired", why);
            failed.AddRange(still.Select(r => new RecipientNotice(r, "4.4.7", "message expired: " + deferred.First(d => d.Rcpt == r).Why)));
            still.Clear();
        }
        bool queued = false;
        if (failed.Count > 0) queued |= await Bounces.QueueAsync(spool, options.Hostname, id, envelope, path, chunks, NoticeKind.Failed, failed) != null;
        if (delivered.Count > 0) queued |= await Bounces.QueueAsync(spool, options.Hostname, id, envelope, path, chunks, NoticeKind.Delivered, delivered) != null;
        if (relayed.Count > 0) queued |= await Bounces.QueueAsync(spool, options.Hostname, id, envelope, path, chunks, NoticeKind.Relayed, relayed) != null;
        if (still.Count > 0 && !warned && options.DelayWarning > TimeSpan.Zero && age >= options.DelayWarning)
        {
            var delayed = still.Select(r => new RecipientNotice(r, "4.0.0", deferred.First(d => d.Rcpt == r).Why)).ToList();
            queued |= await Bounces.QueueAsync(spool, options.Hostname, id, envelope, path, chunks, NoticeKind.Delayed, delayed,
                envelope.Arrival + options.Lifetime) != null;
            warned = true;
        }
        if (queued) Wake();
        if (still.Count == 0)
        {
            // Not fsynced: should the removal be lost in a crash, the message is
            // delivered again (a duplicate, never a loss), as with Postfix.
            File.Delete(path);
            File.Delete(statePath);
            _retry.TryRemove(id, out _);
            Log.Info($"{id}: removed");
            return;
        }
        attempts++;
        var delay = TimeSpan.FromTicks(Math.Min(options.RetryMax.Ticks, options.RetryMin.Ticks * (1L << Math.Min(attempts - 1, 20))));
        foreach (var (rcpt, why) in deferred) LogResult(id, envelope, rcpt, rcpt, "none", started, "4.0.0", "deferred", why);
        try
        {
            // A recipient per line, with why it waits (for the queue listing), as "address<TAB>reason".
            AtomicFile.WriteText(statePath, string.Join('\n', [attempts.ToString(CultureInfo.InvariantCulture) + (warned ? " warned" : ""),
                .. still.Select(r => r + "\t" + QueueEntry.CleanReason(deferred.First(d => d.Rcpt == r).Why))]) + "\n");
            File.SetLastWriteTimeUtc(statePath, DateTime.UtcNow + delay); // when it is due; set before the message is in deferred/
            _retry.TryRemove(id, out _);
        }
        catch (Exception e) when (StorageError.Is(e))
        {
            // No room for the state file: the queue keeps it in memory and goes on.
            Log.Warn($"{id}: cannot record the retry state ({StorageError.Classify(e)}); kept in memory");
            _retry[id] = new RetryState(DateTime.UtcNow + delay, attempts, warned, still);
        }
        spool.Move(id, QueueDir.Active, QueueDir.Deferred, durable: false);
    }

    /// <summary>
    /// Mail for one other domain, by SMTP: to its MX hosts (or the relay host) in order until
    /// one takes the transaction; then each recipient is sent, bounced or deferred by that
    /// host's answer. When no host can be reached, all are deferred with the last error.
    /// </summary>
    private async Task DeliverRemoteAsync(string id, QueueEnvelope envelope, string path, IReadOnlyList<(long Offset, int Length)> chunks, string domain,
        List<(string Rcpt, string Target)> list, Stopwatch started, List<RecipientNotice> relayed, List<RecipientNotice> failed,
        List<(string Rcpt, string Why)> deferred, CancellationToken ct, bool forwarded = false)
    {
        var destination = Destination("smtp:" + domain.ToLowerInvariant());
        await destination.WaitAsync(ct);
        try
        {
            var logins = options.Logins ?? RelayLogins.None;
            var route = await _nextHop.ResolveAsync(domain, ct, logins.RelayHostFor(envelope.Sender));
            if (route.Hops.Count == 0)
            {
                foreach (var (rcpt, target) in list)
                {
                    if (!route.Permanent) { deferred.Add((rcpt, route.Why!)); continue; }
                    LogResult(id, envelope, target, rcpt, "none", started, route.Dsn!, "bounced", route.Why!);
                    failed.Add(new RecipientNotice(rcpt, route.Dsn!, "550 " + route.Dsn + " " + route.Why));
                }
                return;
            }
            var targets = list.Select(x => x.Target).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            var message = new OutgoingMessage(envelope.Sender, targets, ContentSize(chunks), envelope.Attributes, c => QueueFileReader.ReadContentAsync(path, chunks, c));
            if (forwarded) message = await ForwardedAsync(id, message, envelope, path, chunks, list[0].Rcpt, ct);
            string lastError = "no host to try";
            foreach (var hop in route.Hops.Take(MaxHosts))
            {
                SmtpClient.Outcome outcome;
                try
                {
                    outcome = await _smtp.DeliverAsync(new ServerAddress(hop.Name, new IPEndPoint(hop.Address, hop.Port)), message, ct,
                        logins.LoginFor(envelope.Sender, route.NextHop, hop.Name, hop.Port));
                }
                catch (Exception e) when (e is IOException or SocketException or System.Security.Authentication.AuthenticationException
                                          || (e is OperationCanceledException && !ct.IsCancellationRequested))
                {
                    lastError = e.Message;
                    Log.Info($"{id}: {hop}: {MailLog.Safe(e.Message)}");
                    continue;
                }
                var relay = hop.ToString();
                foreach (var res in outcome.Results)
                    foreach (var (rcpt, _) in list.Where(x => x.Target.Equals(res.Recipient, StringComparison.OrdinalIgnoreCase)))
                    {
                        var dsn = res.Dsn;
                        var text = res.Ok ? res.Reply : $"host {hop.Name}[{hop.Address}] said: {res.Reply}";
                        if (res.Ok)
                        {
                            LogResult(id, envelope, res.Recipient, rcpt, relay, started, dsn, "sent", res.Reply + (outcome.Encrypted ? ", TLS" : ""), "smtp");
                            // A next hop that took the DSN request reports success itself (RFC 3461 4.1); otherwise it is "relayed" here.
                            if (!outcome.Dsn) relayed.Add(new RecipientNotice(rcpt, dsn, res.Reply));
                        }
                        else if (res.Permanent)
                        {
                            LogResult(id, envelope, res.Recipient, rcpt, relay, started, dsn, "bounced", text, "smtp");
                            failed.Add(new RecipientNotice(rcpt, dsn, res.Reply));
                        }
                        else deferred.Add((rcpt, text));
                    }
                return;
            }
            foreach (var (rcpt, _) in list) deferred.Add((rcpt, lastError));
        }
        finally { destination.Release(); }
    }

    /// <summary>
    /// A message an alias of ours sends on to another domain: its envelope sender rewritten by SRS
    /// (unless it is ours, or empty), so that the next hop's SPF check passes for us; and sealed
    /// with ARC over the checks our MX made on arrival, by the alias's domain's key.
    /// </summary>
    private async Task<OutgoingMessage> ForwardedAsync(string id, OutgoingMessage message, QueueEnvelope envelope, string path,
        IReadOnlyList<(long Offset, int Length)> chunks, string alias, CancellationToken ct)
    {
        var sender = message.Sender;
        if (options.Srs is { } srs && sender.Length > 0)
        {
            // An SRS address (another forwarder's) is always rewritten, to SRS1; a plain one unless it is ours.
            var ours = false;
            if (!Mail.MailAuth.Srs.IsSrs(sender))
                try { ours = (await recipients.ResolveAsync(sender, null, ct)).Status != RecipientStatus.NotOurDomain; }
                catch (RpcException) { } // not known to be ours: rewritten, which is safe either way
            if (!ours) sender = srs.Forward(sender, DateTimeOffset.UtcNow);
        }
        byte[] seal = [];
        if (options.Keys is { } keys)
        {
            try
            {
                using var content = QueueFileReader.OpenContent(path, chunks);
                var parsed = await MimeKit.MimeMessage.LoadAsync(content, persistent: true, ct);
                seal = Encoding.ASCII.GetBytes(keys.Seal(parsed, alias[(alias.LastIndexOf('@') + 1)..].ToLowerInvariant(), options.Hostname));
            }
            catch (Exception e) when (e is FormatException or IOException or ArgumentException or InvalidOperationException or Org.BouncyCastle.Crypto.CryptoException)
            {
                Log.Warn($"{id}: not ARC-sealed: {MailLog.Safe(e.Message)}");
            }
        }
        if (sender != message.Sender) Log.Info($"{id}: forwarded: sender=<{MailLog.Safe(message.Sender)}> rewritten to <{MailLog.Safe(sender)}>{(seal.Length > 0 ? ", ARC-sealed" : "")}");
        if (seal.Length == 0) return message with { Sender = sender };
        var original = message.Content;
        async IAsyncEnumerable<ReadOnlyMemory<byte>> Sealed([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken c)
        {
            yield return seal;
            await foreach (var part in original(c)) yield return part;
        }
        return message with { Sender = sender, Size = message.Size + seal.Length, Content = Sealed };
    }

    private static readonly Dictionary<string, string> EmptyAttributes = [];

    /// <summary>The queue attribute saying where a message came from: "local" for the pickup socket.</summary>
    public const string OriginAttribute = "origin";

    /// <summary>The message's size in its stored form (what SIZE= announces, as Postfix does).</summary>
    private static long ContentSize(IReadOnlyList<(long Offset, int Length)> chunks) => chunks.Sum(c => (long)c.Length);

    /// <summary>The addresses of the message's Delivered-To headers, lower-cased.</summary>
    private static HashSet<string> DeliveredTo(string path, IReadOnlyList<(long Offset, int Length)> chunks)
    {
        var set = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var text = Encoding.UTF8.GetString(QueueFileReader.ReadHeader(path, chunks, HeaderCleanup.MaxHeaderSize));
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) break; // end of the header section
            if (line.StartsWith("Delivered-To:", StringComparison.OrdinalIgnoreCase)) set.Add(line["Delivered-To:".Length..].Trim().Trim('<', '>'));
        }
        return set;
    }

    private static void LogResult(string id, QueueEnvelope env, string to, string origTo, string relay, Stopwatch started, string dsn, string status, string text,
        string transport = "none")
    {
        MtaMetrics.Result(transport, status, started.Elapsed, DateTimeOffset.UtcNow - env.Arrival);
        var delay = (DateTimeOffset.UtcNow - env.Arrival).TotalSeconds;
        var line = $"{id}: to=<{MailLog.Safe(to)}>{(to != origTo ? $", orig_to=<{MailLog.Safe(origTo)}>" : "")}, relay={relay}, delay={delay:0.##}, " +
                   $"delays={started.Elapsed.TotalSeconds:0.###}, dsn={dsn}, status={status} ({MailLog.Safe(text)})";
        if (status == "sent") Log.Info(line); else Log.Warn(line);
    }
}
