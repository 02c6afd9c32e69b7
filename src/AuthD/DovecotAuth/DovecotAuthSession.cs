// Dovecot's authentication client protocol (v1.2), so that a Postfix with
// `smtpd_sasl_type = dovecot` authenticates against AuthD. The client (an
// smtpd process) is untrusted: lines are bounded, ids checked, at most
// MaxPending exchanges run at once, and unknown commands end the connection.
//   S: VERSION 1 2 / MECH ... / SPID / CUID / COOKIE / DONE
//   C: VERSION 1 x / CPID pid
//   C: AUTH id mech service=smtp [lip= rip= secured resp=base64]
//   S: CONT id base64 | OK id user=... | FAIL id [user=...]
//   C: CONT id base64
// A temporary failure (the directory is down) closes the connection instead
// of answering FAIL: Postfix's dovecot client takes any FAIL as a permanent
// 535, but a lost connection as "454 4.7.0 Temporary authentication
// failure", which is what the SMTP client must hear. Clients reconnect.
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Mail.AuthD.Sasl;
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using NLog;

namespace Mail.AuthD.DovecotAuth;

internal sealed class DovecotAuthSession(LineConnection conn, SaslServer sasl)
{
    private static readonly Logger Log = MailLog.For("auth");
    private static int _nextCuid;
    public const int MaxPending = 64;

    private sealed class Exchange(SaslMechanism mech, string name, ClientInfo client)
    {
        public readonly SaslMechanism Mech = mech;
        public readonly string Name = name;
        public readonly ClientInfo Client = client;
        public int Steps;
        public bool Busy;
    }

    private readonly Dictionary<uint, Exchange> _pending = new();
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private int _running;

    public async Task RunAsync()
    {
        var handshake = new System.Text.StringBuilder();
        handshake.Append("VERSION\t1\t2\n");
        foreach (var m in sasl.Offered(secured: true))
            handshake.Append("MECH\t").Append(m).Append(SaslMechanism.IsPlaintext(m) ? "\tplaintext\n" : "\n");
        handshake.Append("SPID\t").Append(Environment.ProcessId).Append('\n');
        handshake.Append("CUID\t").Append(Interlocked.Increment(ref _nextCuid)).Append('\n');
        handshake.Append("COOKIE\t").Append(RandomNumberGenerator.GetHexString(32, lowercase: true)).Append('\n');
        handshake.Append("DONE");
        await SendAsync(handshake.ToString());

        var version = await conn.ReadLineAsync();
        if (!version.IsLine || !version.Text.StartsWith("VERSION\t1\t", StringComparison.Ordinal))
        {
            Log.Warn($"{conn.SessionId}: dovecot-auth: client sent no VERSION 1 handshake; disconnecting");
            return;
        }
        try
        {
            while (true)
            {
                var line = await conn.ReadLineAsync();
                if (line.Status == LineStatus.TooLong)
                {
                    Log.Warn($"{conn.SessionId}: dovecot-auth: line too long; disconnecting");
                    return;
                }
                if (!line.IsLine) return;
                var args = line.Text.Split('\t');
                switch (args[0])
                {
                    case "CPID":
                        break;
                    case "AUTH" when args.Length >= 3:
                        if (!Auth(args)) return;
                        break;
                    case "CONT" when args.Length >= 3:
                        if (!Continue(args)) return;
                        break;
                    case "CANCEL" when args.Length >= 2 && uint.TryParse(args[1], out var cid):
                        lock (_pending) _pending.Remove(cid);
                        break;
                    default:
                        Log.Warn($"{conn.SessionId}: dovecot-auth: unknown or malformed command '{MailLog.Safe(args[0], 20)}'; disconnecting");
                        return;
                }
            }
        }
        finally
        {
            _closed.Cancel();
            // Let running exchanges finish their replies (or see the cancellation) before the connection goes.
            var deadline = Stopwatch.StartNew();
            while (Volatile.Read(ref _running) > 0 && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        }
    }

    private bool Auth(string[] args)
    {
        if (!uint.TryParse(args[1], out var id)) return false;
        var mechName = args[2].ToUpperInvariant();
        string service = "", rip = "", lip = "", session = "";
        bool secured = false;
        byte[]? initial = null;
        for (int i = 3; i < args.Length; i++)
        {
            var a = args[i];
            if (a == "secured" || a.StartsWith("secured=", StringComparison.Ordinal)) secured = true;
            else if (a.StartsWith("service=", StringComparison.Ordinal)) service = a[8..];
            else if (a.StartsWith("rip=", StringComparison.Ordinal)) rip = a[4..];
            else if (a.StartsWith("lip=", StringComparison.Ordinal)) lip = a[4..];
            else if (a.StartsWith("session=", StringComparison.Ordinal)) session = a[8..];
            else if (a.StartsWith("resp=", StringComparison.Ordinal))
            {
                initial = TryBase64(a[5..]);
                if (initial == null) { Reply($"FAIL\t{id}\treason=Invalid base64 data in initial response"); return true; }
            }
        }
        // A client on this host counts as secured: no remote address given (a local
        // tool such as doveadm auth test), a loopback one, or rip equal to lip.
        if (rip.Length == 0 || rip == lip || (IPAddress.TryParse(rip, out var ripAddr) && IPAddress.IsLoopback(ripAddr))) secured = true;
        var client = new ClientInfo
        {
            Service = Trim(service, 32), RemoteIp = Trim(rip, 64), LocalIp = Trim(lip, 64), Secured = secured,
            SessionId = session.Length > 0 ? Trim(session, 64) : conn.SessionId,
        };
        lock (_pending)
        {
            if (_pending.ContainsKey(id))
            {
                Log.Warn($"{conn.SessionId}: dovecot-auth: duplicate request id {id}; disconnecting");
                return false;
            }
            if (_pending.Count >= MaxPending)
            {
                Reply($"FAIL\t{id}\ttemp\treason=Too many pending requests");
                return true;
            }
        }
        var mech = sasl.Begin(mechName, secured, out var refusal);
        if (mech == null)
        {
            Spawn(async () =>
            {
                await sasl.ConcludeAsync(mechName, null, refusal, client, _closed.Token);
                await SendAsync($"FAIL\t{id}\treason={refusal.Reason}");
            });
            return true;
        }
        var exchange = new Exchange(mech, mechName, client) { Busy = true };
        lock (_pending) _pending[id] = exchange;
        Spawn(() => StepAsync(id, exchange, initial));
        return true;
    }

    private bool Continue(string[] args)
    {
        if (!uint.TryParse(args[1], out var id)) return false;
        Exchange? exchange;
        lock (_pending)
        {
            if (!_pending.TryGetValue(id, out exchange) || exchange.Busy)
            {
                Log.Warn($"{conn.SessionId}: dovecot-auth: CONT for unknown or busy request {id}; disconnecting");
                return false;
            }
            exchange.Busy = true;
        }
        var response = TryBase64(args[2]);
        if (response == null)
        {
            lock (_pending) _pending.Remove(id);
            Reply($"FAIL\t{id}\treason=Invalid base64 data in continued response");
            return true;
        }
        Spawn(() => StepAsync(id, exchange, response));
        return true;
    }

    private async Task StepAsync(uint id, Exchange ex, byte[]? response)
    {
        var step = await ex.Mech.StepAsync(response, _closed.Token);
        if (step.Status == SaslStatus.Continue && ++ex.Steps > SaslServer.MaxSteps)
            step = SaslStep.Malformed("too many SASL steps");
        if (step.Status == SaslStatus.Continue)
        {
            lock (_pending) ex.Busy = false;
            await SendAsync($"CONT\t{id}\t{Convert.ToBase64String(step.Challenge ?? [])}");
            return;
        }
        lock (_pending) _pending.Remove(id);
        step = await sasl.ConcludeAsync(ex.Name, ex.Mech, step, ex.Client, _closed.Token);
        var user = Tab(step.User ?? ex.Mech.AttemptedUser ?? "");
        if (step.Status == SaslStatus.Tempfail)
        {
            Log.Warn($"{conn.SessionId}: dovecot-auth: temporary failure for request {id}; closing the connection so the client answers 4xx");
            _closed.Cancel();
            conn.Input.CancelPendingRead();
            return;
        }
        var line = step.Status == SaslStatus.Success
            ? step.FinalData is { Length: > 0 }
                ? $"OK\t{id}\tuser={user}\tresp={Convert.ToBase64String(step.FinalData)}"
                : $"OK\t{id}\tuser={user}"
            : user.Length > 0 ? $"FAIL\t{id}\tuser={user}" : $"FAIL\t{id}";
        await SendAsync(line);
    }

    private void Spawn(Func<Task> work)
    {
        Interlocked.Increment(ref _running);
        _ = Task.Run(async () =>
        {
            try { await work(); }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException) { }
            catch (Exception e) { Log.Error(e, $"{conn.SessionId}: dovecot-auth: request failed"); }
            finally { Interlocked.Decrement(ref _running); }
        });
    }

    private void Reply(string line) => Spawn(() => SendAsync(line));

    private async Task SendAsync(string text)
    {
        await _write.WaitAsync();
        try
        {
            conn.BufferText(text + "\n");
            await conn.FlushAsync();
        }
        finally { _write.Release(); }
    }

    private static byte[]? TryBase64(string s)
    {
        if (s.Length > 16384) return null;
        var buf = new byte[s.Length];
        return Convert.TryFromBase64String(s, buf, out var n) ? buf[..n] : null;
    }

    private static string Trim(string s, int max) => s.Length <= max ? s : s[..max];

    /// <summary>A value fit for one tab-separated field.</summary>
    private static string Tab(string s) => s.Replace("\t", "").Replace("\n", "").Replace("\r", "");
}
