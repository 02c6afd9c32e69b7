// bench/imap: our imappopd and Dovecot's imap serve identical copies of one
// 10,000-message Maildir in the same run, driven by the same raw IMAP client:
// LOGIN+SELECT, the listing FETCH (cold, without any index, then warm), SORT
// and THREAD (cold, then warm), FETCH of 1,000 BODY[], SEARCH TEXT, STORE
// +FLAGS on all; then memory per
// idle connection with many IDLE sessions open. Prints a ratio per operation
// (Dovecot's time / ours: above 1 means we are faster).
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using static Mail.Bench.BenchProcess;

if (args.Length < 3) { Console.Error.WriteLine("usage: imapbench BINDIR MESSAGES IDLE-CONNECTIONS"); return 64; }
var bin = args[0];
int messages = int.Parse(args[1]), idleConnections = int.Parse(args[2]);
string[] ColdFolders = ["Cold1", "Cold2", "Cold3"], SortFolders = ["ColdSort1", "ColdSort2", "ColdSort3"];
var dovecot = FindProgram("dovecot") ?? throw new InvalidOperationException("dovecot is not installed");
var dir = Directory.CreateTempSubdirectory("imapbench-").FullName;
File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
Process? authd = null, imappopd = null, dove = null;
try
{
    File.WriteAllText(Path.Combine(dir, "passwd"), $"bench@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\n");
    File.WriteAllText(Path.Combine(dir, "domains"), "bench.test\n");
    // One Maildir, written once, copied for each server.
    var source = Path.Combine(dir, "source");
    foreach (var sub in new[] { "cur", "new", "tmp" }) Directory.CreateDirectory(Path.Combine(source, sub));
    var rng = new Random(7);
    for (int i = 0; i < messages; i++)
    {
        var body = new StringBuilder();
        int lines = 20 + rng.Next(80);
        for (int l = 0; l < lines; l++) body.Append("Lorem ipsum dolor sit amet ").Append(rng.Next()).Append(" consectetur adipiscing elit\n");
        if (i % 97 == 0) body.Append("the needle is here\n");
        var text = $"From: Sender {i % 50} <sender{i % 50}@remote.test>\nTo: bench@bench.test\nSubject: Message number {i}\n" +
                   $"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <{i}@remote.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}";
        var lf = text.Count(c => c == '\n');
        var name = $"{1700000000 + i}.M{i:D6}P1.bench,S={text.Length},W={text.Length + lf}:2,{(i % 3 == 0 ? "S" : "")}";
        File.WriteAllText(Path.Combine(source, "cur", name), text);
        File.SetLastWriteTimeUtc(Path.Combine(source, "cur", name), DateTime.UnixEpoch.AddSeconds(1700000000 + i));
    }
    // Each server gets the Maildir as INBOX and as six more folders for three cold listings and three cold SORTs.
    foreach (var copy in new[] { "ours", "dovecot" })
    {
        var target = Path.Combine(dir, copy, "bench.test", "bench");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        Process.Start("cp", ["-a", source, target])!.WaitForExit();
        foreach (var cold in ColdFolders.Concat(SortFolders)) Process.Start("cp", ["-a", source, Path.Combine(target, "." + cold)])!.WaitForExit();
        Process.Start("chown", ["-R", "5000:5001", Path.Combine(dir, copy)])!.WaitForExit();
    }
    var (oursPort, dovecotPort) = (FreePort(), FreePort());
    WriteAuthdConfig(dir, $"{dir}/ours");
    File.WriteAllText(Path.Combine(dir, "imappopd.conf"), $"""
        imap_listen = 127.0.0.1:{oursPort}
        imaps_listen =
        pop3_listen =
        pop3s_listen =
        managesieve_listen =
        authd_socket = {dir}/authd.sock
        max_connections_per_ip = {idleConnections + 100}
        max_sessions_per_user = {idleConnections + 100}
        log_file = {dir}/imappopd.log
        """);
    Directory.CreateDirectory(Path.Combine(dir, "dovecot-run"));
    File.WriteAllText(Path.Combine(dir, "dovecot.conf"), $$"""
        base_dir = {{dir}}/dovecot-run
        instance_name = imapbench
        log_path = {{dir}}/dovecot.log
        ssl = no
        disable_plaintext_auth = no
        protocols = imap
        first_valid_uid = 1
        mail_location = maildir:{{dir}}/dovecot/%d/%n
        default_process_limit = {{idleConnections + 100}}
        default_client_limit = {{idleConnections * 2 + 100}}
        protocol imap {
          mail_max_userip_connections = {{idleConnections + 100}}
        }
        service anvil {
          client_limit = {{idleConnections * 3 + 100}}
        }
        service auth {
          client_limit = {{idleConnections * 3 + 100}}
        }
        namespace inbox {
          inbox = yes
          separator = /
        }
        passdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        userdb {
          driver = passwd-file
          args = {{dir}}/passwd
          default_fields = home={{dir}}/dovecot/%d/%n
        }
        service imap-login {
          inet_listener imap {
            address = 127.0.0.1
            port = {{dovecotPort}}
          }
          inet_listener imaps {
            port = 0
          }
        }
        """);
    authd = Start(Path.Combine(bin, "authd"), "--config", Path.Combine(dir, "authd.conf"));
    await WaitForFile(Path.Combine(dir, "authd.sock"));
    imappopd = Start(Path.Combine(bin, "imappopd"), "--config", Path.Combine(dir, "imappopd.conf"));
    dove = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot.conf"));
    await WaitForPort(oursPort);
    await WaitForPort(dovecotPort);

    Console.WriteLine($"bench/imap: {messages} messages, identical Maildir copies on {dir}; ratio = Dovecot's time / ours (above 1: we are faster)");
    Console.WriteLine($"{"operation",-44}{"ours",12}{"dovecot",12}{"ratio",8}");
    void Row(string name, double ours, double theirs) => Console.WriteLine($"{name,-44}{ours * 1000,10:0.0}ms{theirs * 1000,10:0.0}ms{theirs / ours,8:0.00}");

    // Warm-up on a separate 300-message folder, each command 40 times: our JIT has compiled
    // every path fully (as in a server that has run for a while: a method is recompiled
    // optimised after 30 calls); Dovecot's processes and page cache are warm too.
    foreach (var port in new[] { oursPort, dovecotPort })
    {
        var w = await Client.OpenAsync(port);
        await w.RunAsync("CREATE Warmup");
        await w.RunAsync("UID COPY 1:300 Warmup");
        await w.RunAsync("SELECT Warmup");
        foreach (var cmd in new[] { "UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE INTERNALDATE BODYSTRUCTURE)", "UID FETCH 1:* BODY.PEEK[]", "SEARCH TEXT needle",
                     "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
                     "STORE 1:* +FLAGS.SILENT (\\Flagged)", "STORE 1:* -FLAGS.SILENT (\\Flagged)" })
            for (int i = 0; i < 40; i++) await w.RunAsync(cmd);
        for (int i = 0; i < 40; i++) await Client.SessionAsync(port);
        w.Dispose();
    }
    await Task.Delay(1000); // the runtime's background recompilation finishes
    var o = await Client.OpenAsync(oursPort);
    var d = await Client.OpenAsync(dovecotPort);
    const string listing = "UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE INTERNALDATE BODYSTRUCTURE)";
    // Cold: the first listing of a folder, with no index on either side; one copy each time.
    async Task<double> Cold(Client c, int k)
    {
        await c.RunAsync("SELECT " + ColdFolders[k]);
        return await c.TimeAsync(listing);
    }
    // Each row runs ours and Dovecot's in turn, round after round, so that a slow spell of the
    // machine (a journal commit, another process) falls on both; the medians are compared.
    async Task Rows(string name, Func<Client, int, Task<double>> run, int rounds = 5)
    {
        var (ours, theirs) = (new List<double>(), new List<double>());
        for (int k = 0; k < rounds; k++)
        {
            ours.Add(await run(o, k));
            theirs.Add(await run(d, k));
        }
        Row(name, ours.Order().ElementAt(rounds / 2), theirs.Order().ElementAt(rounds / 2));
    }
    await Rows("listing FETCH, cold (no index)", Cold, rounds: ColdFolders.Length);
    await Rows("SORT (SUBJECT), cold (no index)", async (c, k) =>
    {
        await c.RunAsync("SELECT " + SortFolders[k]);
        return await c.TimeAsync("SORT (SUBJECT) UTF-8 ALL");
    }, rounds: SortFolders.Length);
    await o.RunAsync("SELECT INBOX");
    await d.RunAsync("SELECT INBOX");
    await o.RunAsync(listing); // INBOX's index made
    await d.RunAsync(listing);
    await Rows("listing FETCH, warm", (c, _) => c.TimeAsync(listing));
    foreach (var sort in new[] { "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL" })
    {
        await o.RunAsync(sort); // the sort keys known to both
        await d.RunAsync(sort);
        await Rows(sort.Replace(" UTF-8 ALL", "") + ", warm", (c, _) => c.TimeAsync(sort));
    }
    await Rows("UID FETCH 1:1000 BODY.PEEK[]", (c, _) => c.TimeAsync("UID FETCH 1:1000 BODY.PEEK[]"));
    await Rows("SEARCH TEXT needle", (c, _) => c.TimeAsync("SEARCH TEXT needle"));
    await Rows("STORE 1:* +FLAGS.SILENT (\\Flagged)", async (c, _) =>
    {
        var t = await c.TimeAsync("STORE 1:* +FLAGS.SILENT (\\Flagged)");
        await c.TimeAsync("STORE 1:* -FLAGS.SILENT (\\Flagged)");
        return t;
    });
    await Rows("connect + LOGIN + SELECT INBOX + LOGOUT", (c, _) => Client.SessionAsync(c == o ? oursPort : dovecotPort));
    o.Dispose();
    d.Dispose();

    // Memory of idle IDLE sessions: our one process against all of Dovecot's imap processes.
    // Ours is started afresh (the listings above left free heap that new sessions would reuse,
    // hiding their cost) and one session runs first, so that the code it needs is compiled.
    Stop(imappopd);
    imappopd = Start(Path.Combine(bin, "imappopd"), "--config", Path.Combine(dir, "imappopd.conf"));
    await WaitForPort(oursPort);
    using (var first = await Client.OpenAsync(oursPort)) { await first.IdleAsync(); }
    // imappopd gives the garbage of a busy spell back after three quiet seconds (IdleMemoryTrim):
    // both measurements are taken after that, as an administrator would see them.
    await Task.Delay(5000);
    long OursKb() => RssKb(imappopd.Id);
    long DovecotKb() => Descendants(dove.Id).Sum(RssKb);
    var (oursBefore, dovecotBefore) = (OursKb(), DovecotKb());
    var idle = new List<Client>();
    for (int i = 0; i < idleConnections; i++) { var c = await Client.OpenAsync(oursPort); await c.IdleAsync(); idle.Add(c); }
    GC.KeepAlive(idle);
    await Task.Delay(5000);
    var oursPer = (OursKb() - oursBefore) / (double)idleConnections;
    foreach (var c in idle) c.Dispose();
    idle.Clear();
    double dovecotPer = double.NaN;
    try
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        for (int i = 0; i < idleConnections; i++)
        {
            var c = await Client.OpenAsync(dovecotPort).WaitAsync(limit.Token);
            await c.IdleAsync().WaitAsync(limit.Token);
            idle.Add(c);
        }
        await Task.Delay(1000);
        dovecotPer = (DovecotKb() - dovecotBefore) / (double)idleConnections;
    }
    catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException or SocketException)
    {
        Console.WriteLine($"  (Dovecot took {idle.Count} idle connections, then: {e.Message})");
    }
    foreach (var c in idle) c.Dispose();
    Console.WriteLine($"{"memory per idle IDLE connection (" + idleConnections + ")",-44}{oursPer,10:0.0}KB{dovecotPer,10:0.0}KB{dovecotPer / oursPer,8:0.00}");
}
finally
{
    if (imappopd != null) Stop(imappopd);
    if (dove != null) Stop(dove);
    if (authd != null) Stop(authd);
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;

static long RssKb(int pid)
{
    try
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }
    catch (IOException) { }
    return 0;
}

/// <summary>A bare IMAP client: sends a command, reads to its tagged reply (literals included), times it.</summary>
sealed class Client : IDisposable
{
    private readonly TcpClient _tcp = new();
    private Stream _s = null!;
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _len, _pos;
    private int _tag;

    public static async Task<Client> OpenAsync(int port)
    {
        var c = new Client();
        await c._tcp.ConnectAsync(IPAddress.Loopback, port);
        c._tcp.NoDelay = true;
        c._s = c._tcp.GetStream();
        await c.ReadLineAsync();
        await c.RunAsync("LOGIN bench@bench.test pw");
        await c.RunAsync("SELECT INBOX");
        return c;
    }

    public static async Task<double> SessionAsync(int port)
    {
        var sw = Stopwatch.StartNew();
        using var c = await OpenAsync(port);
        await c.RunAsync("LOGOUT");
        return sw.Elapsed.TotalSeconds;
    }

    public async Task IdleAsync()
    {
        await _s.WriteAsync(Encoding.ASCII.GetBytes($"i{++_tag} IDLE\r\n"));
        var line = await ReadLineAsync();
        if (!line.StartsWith('+')) throw new InvalidOperationException("IDLE: " + line);
    }

    public async Task<double> TimeAsync(string command)
    {
        var sw = Stopwatch.StartNew();
        await RunAsync(command);
        return sw.Elapsed.TotalSeconds;
    }

    public async Task RunAsync(string command)
    {
        var tag = "b" + ++_tag;
        await _s.WriteAsync(Encoding.ASCII.GetBytes($"{tag} {command}\r\n"));
        while (true)
        {
            var line = await ReadLineAsync();
            if (line.StartsWith(tag + " "))
            {
                if (!line.StartsWith(tag + " OK")) throw new InvalidOperationException($"{command}: {line}");
                return;
            }
        }
    }

    /// <summary>One line; a literal announced at its end is read (and dropped) with the rest of the line.</summary>
    private async Task<string> ReadLineAsync()
    {
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos == _len)
            {
                _len = await _s.ReadAsync(_buf);
                _pos = 0;
                if (_len == 0) throw new IOException("server closed the connection");
            }
            int lf = Array.IndexOf(_buf, (byte)'\n', _pos, _len - _pos);
            if (lf < 0) { sb.Append(Encoding.Latin1.GetString(_buf, _pos, _len - _pos)); _pos = _len; continue; }
            sb.Append(Encoding.Latin1.GetString(_buf, _pos, lf - _pos));
            _pos = lf + 1;
            var text = sb.ToString().TrimEnd('\r');
            if (text.EndsWith('}') && text.LastIndexOf('{') is var open and >= 0 && long.TryParse(text.AsSpan(open + 1, text.Length - open - 2), out var n))
            {
                while (n > 0)
                {
                    if (_pos == _len) { _len = await _s.ReadAsync(_buf); _pos = 0; if (_len == 0) throw new IOException("closed in a literal"); }
                    var take = (int)Math.Min(n, _len - _pos);
                    _pos += take;
                    n -= take;
                }
                sb.Clear();
                sb.Append(text).Append("<literal>");
                continue;
            }
            return text;
        }
    }

    public void Dispose() => _tcp.Dispose();
}
