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
        /// <summary>A login process's exchange (no "nologin"): its user is kept for the mail process's REQUEST.</summary>
        public bool Login;
    }

    // Requests are handled in order on the read loop; only a failure's delayed
    // answer runs on its own, so a slow failure does not hold up the others.
    private readonly Dictionary<uint, Exchange> _pending = new();
    private readonly SemaphoreSlim _write = new(1, 1);
    // The login cookie of this connection, and the client's pid once it said CPID (LoginRequests).
    private readonly string _cookie = RandomNumberGenerator.GetHexString(32, lowercase: true);
    private uint? _cpid;
    private readonly CancellationTokenSource _closed = new();
    private int _delayed;

    public async Task RunAsync()
    {
        var handshake = new System.Text.StringBuilder();
        handshake.Append("VERSION\t1\t2\n");
        foreach (var m in sasl.Offered(secured: true))
            handshake.Append("MECH\t").Append(m).Append(SaslMechanism.IsPlaintext(m) ? "\tplaintext\n" : "\n");
        handshake.Append("SPID\t").Append(Environment.ProcessId).Append('\n');
        handshake.Append("CUID\t").Append(Interlocked.Increment(ref _nextCuid)).Append('\n');
        handshake.Append("COOKIE\t").Append(_cookie).Append('\n');
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
            while (!_closed.IsCancellationRequested)
            {
                var line = await conn.ReadLineAsync();
                if (line.Status == LineStatus.TooLong)
                {
                    Log.Warn($"{conn.SessionId}: dovecot-auth: line too long; disconnecting");
                    return;
                }
                if (!line.IsLine) return;
                var args = line.Text.Split('\t');
                bool keep = args[0] switch
                {
                    "CPID" => Cpid(args),
                    "AUTH" when args.Length >= 3 => await AuthAsync(args),
                    "CONT" when args.Length >= 3 => await ContinueAsync(args),
                    "CANCEL" when args.Length >= 2 && uint.TryParse(args[1], out var cid) => _pending.Remove(cid) || true,
                    _ => Unknown(args[0]),
                };
                if (!keep) return;
            }
        }
        finally
        {
            // Let delayed answers go out (or see the cancellation) before the connection goes.
            var deadline = Stopwatch.StartNew();
            while (Volatile.Read(ref _delayed) > 0 && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
            _closed.Cancel();
            if (_cpid is { } pid) LoginRequests.Unregister(pid, _cookie);
        }
    }

    /// <summary>CPID: the client process's pid, under which its logins are asked for by REQUEST.</summary>
    private bool Cpid(string[] args)
    {
        if (_cpid != null || args.Length < 2 || !uint.TryParse(args[1], out var pid)) return Unknown("CPID");
        _cpid = pid;
        LoginRequests.Register(pid, _cookie);
        return true;
    }

    private bool Unknown(string command)
    {
        Log.Warn($"{conn.SessionId}: dovecot-auth: unknown or malformed command '{MailLog.Safe(command, 20)}'; disconnecting");
        return false;
    }

    private async Task<bool> AuthAsync(string[] args)
    {
        if (!uint.TryParse(args[1], out var id)) return false;
        var mechName = args[2].ToUpperInvariant();
        string service = "", rip = "", lip = "", session = "";
        bool secured = false, nologin = false;
        byte[]? initial = null;
        for (int i = 3; i < args.Length; i++)
        {
            var a = args[i];
            if (a == "secured" || a.StartsWith("secured=", StringComparison.Ordinal)) secured = true;
            else if (a == "nologin") nologin = true;
            else if (a.StartsWith("service=", StringComparison.Ordinal)) service = a[8..];
            else if (a.StartsWith("rip=", StringComparison.Ordinal)) rip = a[4..];
            else if (a.StartsWith("lip=", StringComparison.Ordinal)) lip = a[4..];
            else if (a.StartsWith("session=", StringComparison.Ordinal)) session = a[8..];
            else if (a.StartsWith("resp=", StringComparison.Ordinal))
            {
                initial = TryBase64(a[5..]);
                if (initial == null) { await SendAsync($"FAIL\t{id}\treason=Invalid base64 data in initial response"); return true; }
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
        if (_pending.ContainsKey(id))
        {
            Log.Warn($"{conn.SessionId}: dovecot-auth: duplicate request id {id}; disconnecting");
            return false;
        }
        if (_pending.Count >= MaxPending)
        {
            await SendAsync($"FAIL\t{id}\treason=Too many pending requests");
            return true;
        }
        var mech = sasl.Begin(mechName, secured, out var refusal);
        if (mech == null)
        {
            await AnswerAsync(id, mechName, null, refusal, client);
            return true;
        }
        var exchange = new Exchange(mech, mechName, client) { Login = !nologin };
        _pending[id] = exchange;
        return await StepAsync(id, exchange, initial);
    }

    private async Task<bool> ContinueAsync(string[] args)
    {
        if (!uint.TryParse(args[1], out var id)) return false;
        if (!_pending.TryGetValue(id, out var exchange))
        {
            Log.Warn($"{conn.SessionId}: dovecot-auth: CONT for unknown request {id}; disconnecting");
            return false;
        }
        var response = TryBase64(args[2]);
        if (response == null)
        {
            _pending.Remove(id);
            await SendAsync($"FAIL\t{id}\treason=Invalid base64 data in continued response");
            return true;
        }
        return await StepAsync(id, exchange, response);
    }

    private async Task<bool> StepAsync(uint id, Exchange ex, byte[]? response)
    {
        var step = await ex.Mech.StepAsync(response, _closed.Token);
        if (step.Status == SaslStatus.Continue && ++ex.Steps > SaslServer.MaxSteps)
            step = SaslStep.Malformed("too many SASL steps");
        if (step.Status == SaslStatus.Continue)
        {
            await SendAsync($"CONT\t{id}\t{Convert.ToBase64String(step.Challenge ?? [])}");
            return true;
        }
        _pending.Remove(id);
        if (step.Status == SaslStatus.Success && ex.Login && _cpid is { } pid && step.User != null) LoginRequests.Succeeded(pid, id, step.User);
        return await AnswerAsync(id, ex.Name, ex.Mech, step, ex.Client);
    }

    /// <summary>Logs and answers a finished exchange; false when the connection must close.</summary>
    private async Task<bool> AnswerAsync(uint id, string mechName, SaslMechanism? mech, SaslStep step, ClientInfo client)
    {
        var delay = sasl.Conclude(mechName, mech, step, client);
        if (step.Status == SaslStatus.Tempfail)
        {
            Log.Warn($"{conn.SessionId}: dovecot-auth: temporary failure for request {id}; closing the connection so the client answers 4xx");
            return false;
        }
        var user = Tab(step.User ?? mech?.AttemptedUser ?? "");
        var line = step.Status == SaslStatus.Success
            ? step.FinalData is { Length: > 0 }
                ? $"OK\t{id}\tuser={user}\tresp={Convert.ToBase64String(step.FinalData)}"
                : $"OK\t{id}\tuser={user}"
            : step.Status == SaslStatus.BadMechanism ? $"FAIL\t{id}\treason={step.Reason}"
            : user.Length > 0 ? $"FAIL\t{id}\tuser={user}" : $"FAIL\t{id}";
        if (delay <= TimeSpan.Zero)
        {
            await SendAsync(line);
            return true;
        }
        Interlocked.Increment(ref _delayed);
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(delay, _closed.Token);
                await SendAsync(line);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException) { }
            finally { Interlocked.Decrement(ref _delayed); }
        });
        return true;
    }

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
