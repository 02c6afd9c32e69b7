// bench/memory: what each daemon keeps resident, idle after start and after a delivery.
// Ours (authd, lmtpd, imappopd, mtad), as the package ships them (NativeAOT) and as
// `mailctl up` runs them (JIT), beside a private Dovecot (auth, lmtp, imap) and Postfix
// doing the same work: one message in by SMTP, through the MTA's queue and LMTP into
// Maildir, read back by IMAP. Each reading is taken after a quiet spell, as an
// administrator's `ps` would see the server between messages. RSS counts every page a
// process maps, shared ones too; PSS divides the shared pages among their users, which
// is the fair sum over a family of processes (Dovecot's and Postfix's share libraries).
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using static Mail.Bench.BenchProcess;
using Mail.Bench;
using static Mail.Bench.BenchPostfix;

if (args.Length < 3) { Console.Error.WriteLine("usage: memorybench AOT-PUBLISH-DIR JIT-BINDIR SETTLE-SECONDS"); return 64; }
var (aotDir, jitDir, settle) = (args[0], args[1], TimeSpan.FromSeconds(int.Parse(args[2])));
var dovecot = FindProgram("dovecot") ?? throw new InvalidOperationException("dovecot is not installed");
var postfix = FindProgram("postfix") ?? throw new InvalidOperationException("postfix is not installed");
var dir = Directory.CreateTempSubdirectory("memorybench-").FullName;
File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
bool postfixStarted = false;
OnSignal(() => { if (postfixStarted) Run(postfix, "-c", Path.Combine(dir, "postfix/etc"), "stop"); });
System.Diagnostics.Process? dove = null;
try
{
    File.WriteAllText(Path.Combine(dir, "passwd"), $"bench@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\n");
    File.WriteAllText(Path.Combine(dir, "domains"), "bench.test\n");
    foreach (var m in new[] { "mail-ours", "mail-dovecot" })
    {
        Directory.CreateDirectory(Path.Combine(dir, m));
        Run("chown", "5000:5001", Path.Combine(dir, m));
    }
    var (lmtpPort, imapPort, mxPort) = (FreePort(), FreePort(), FreePort());
    var (doveLmtpPort, doveImapPort, postfixPort) = (FreePort(), FreePort(), FreePort());
    WriteAuthdConfig(dir, $"{dir}/mail-ours");
    File.WriteAllText(Path.Combine(dir, "lmtpd.conf"), $"""
        listen = 127.0.0.1:{lmtpPort}
        socket =
        authd_socket = {dir}/authd.sock
        log_file = {dir}/lmtpd.log
        """);
    File.WriteAllText(Path.Combine(dir, "imappopd.conf"), $"""
        imap_listen = 127.0.0.1:{imapPort}
        imaps_listen =
        pop3_listen =
        pop3s_listen =
        managesieve_listen =
        authd_socket = {dir}/authd.sock
        log_file = {dir}/imappopd.log
        """);
    File.WriteAllText(Path.Combine(dir, "mtad.conf"), $"""
        mx_listen = 127.0.0.1:{mxPort}
        submission_listen =
        submissions_listen =
        pickup_socket =
        authd_socket = {dir}/authd.sock
        spool_dir = {dir}/spool
        control_socket = {dir}/mtad.ctl
        lmtp_destination = 127.0.0.1:{lmtpPort}
        hostname = mx.bench.test
        log_file = {dir}/mtad.log
        """);
    Directory.CreateDirectory(Path.Combine(dir, "dovecot-run"));
    File.WriteAllText(Path.Combine(dir, "dovecot.conf"), $$"""
        base_dir = {{dir}}/dovecot-run
        instance_name = memorybench
        log_path = {{dir}}/dovecot.log
        ssl = no
        disable_plaintext_auth = no
        protocols = imap lmtp
        first_valid_uid = 1
        mail_location = maildir:{{dir}}/mail-dovecot/%d/%n
        passdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        userdb {
          driver = passwd-file
          args = {{dir}}/passwd
          default_fields = home={{dir}}/mail-dovecot/%d/%n
        }
        service imap-login {
          inet_listener imap {
            address = 127.0.0.1
            port = {{doveImapPort}}
          }
          inet_listener imaps {
            port = 0
          }
        }
        service lmtp {
          inet_listener lmtp {
            address = 127.0.0.1
            port = {{doveLmtpPort}}
          }
        }
        """);
    dove = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot.conf"));
    BenchPostfix.Start(dir, postfixPort, new Dictionary<string, string>
    {
        ["virtual_mailbox_domains"] = "bench.test", ["virtual_mailbox_maps"] = "static:bench/",
        ["virtual_transport"] = $"lmtp:inet:127.0.0.1:{doveLmtpPort}",
    });
    postfixStarted = true;
    var master = int.Parse(File.ReadAllText(Path.Combine(dir, "postfix/queue/pid/master.pid")).Trim());
    foreach (var p in new[] { doveLmtpPort, doveImapPort, postfixPort }) await WaitForPort(p);

    // Their side's roles: Dovecot's processes by name, Postfix's whole family.
    List<(string Role, List<int> Pids)> Theirs()
    {
        var family = Descendants(dove.Id).Append(dove.Id).ToList();
        List<int> Named(params string[] names) => family.Where(p => names.Contains(Comm(p))).ToList();
        return
        [
            ("Dovecot auth", Named("auth")),
            ("Dovecot lmtp", Named("lmtp")),
            ("Dovecot imap-login + imap", Named("imap-login", "imap")),
            ("Dovecot master, config, log, anvil, stats", Named("dovecot", "config", "log", "anvil", "stats")),
            ("Postfix (all its processes)", Descendants(master).Append(master).ToList()),
        ];
    }

    Console.WriteLine($"bench/memory: resident memory in MiB, each reading after {settle.TotalSeconds:0} s without traffic; " +
                      "\"after delivery\": one message in by SMTP, queued, delivered by LMTP, read back by IMAP (then logged out)");
    Console.WriteLine($"{"program",-44}{"procs",7}{"idle RSS",10}{"PSS",7}{"after RSS",11}{"PSS",7}");
    var totals = new Dictionary<string, (double Idle, double After)>();
    foreach (var (label, binDir) in new[] { ("NativeAOT", aotDir), ("JIT", jitDir) })
    {
        string Program(string name) => label == "JIT" ? Path.Combine(binDir, name) : Path.Combine(binDir, name, name);
        var authd = Start(Program("authd"), "--config", Path.Combine(dir, "authd.conf"));
        await WaitForFile(Path.Combine(dir, "authd.sock"));
        var ours = new List<(string Name, System.Diagnostics.Process P)> { ("authd", authd) };
        foreach (var name in new[] { "lmtpd", "imappopd", "mtad" })
            ours.Add((name, Start(Program(name), "--config", Path.Combine(dir, name + ".conf"))));
        try
        {
            foreach (var p in new[] { lmtpPort, imapPort, mxPort }) await WaitForPort(p);
            await Task.Delay(settle);
            var idle = ours.Select(o => Reading([o.P.Id])).ToList();
            var theirsIdle = label == "NativeAOT" ? Theirs().Select(t => Reading(t.Pids)).ToList() : null;

            var subject = $"memorybench {label} {Guid.NewGuid():N}";
            await Deliver(mxPort, subject);
            await ReadBack(imapPort, subject, Path.Combine(dir, "mail-ours/bench.test/bench"));
            if (theirsIdle != null)
            {
                await Deliver(postfixPort, subject);
                await ReadBack(doveImapPort, subject, Path.Combine(dir, "mail-dovecot/bench.test/bench"));
            }
            await Task.Delay(settle);
            var after = ours.Select(o => Reading([o.P.Id])).ToList();
            for (int i = 0; i < ours.Count; i++) Row($"{ours[i].Name} ({label})", idle[i], after[i]);
            Row($"ours ({label}), total", Sum(idle), Sum(after));
            totals[label] = (Sum(idle).Pss, Sum(after).Pss);
            if (theirsIdle != null)
            {
                var theirs = Theirs();
                var theirsAfter = theirs.Select(t => Reading(t.Pids)).ToList();
                for (int i = 0; i < theirs.Count; i++) Row(theirs[i].Role, theirsIdle[i], theirsAfter[i]);
                Row("Dovecot + Postfix, total", Sum(theirsIdle), Sum(theirsAfter));
                totals["theirs"] = (Sum(theirsIdle).Pss, Sum(theirsAfter).Pss);
                // Role by role, after the delivery: each of ours against the processes doing its work.
                Console.WriteLine($"{"",-44}ours (NativeAOT) / theirs, RSS after delivery:");
                foreach (var (o, t) in new[] { (0, 0), (1, 1), (2, 2), (3, 4) })
                    Console.WriteLine($"  {ours[o].Name,-10} / {theirs[t].Role,-30}{after[o].Rss,7:0.0} / {Cell(theirsAfter[t].Procs, theirsAfter[t].Rss),5}" +
                                      (theirsAfter[t].Procs == 0 ? "  (none left running: Dovecot ends its imap and imap-login processes at logout)" : ""));
            }
        }
        finally
        {
            foreach (var (_, p) in ours.AsEnumerable().Reverse()) Stop(p);
        }
    }
    Console.WriteLine($"whole suite, PSS after delivery: ours {totals["NativeAOT"].After:0.0} MiB (NativeAOT), {totals["JIT"].After:0.0} MiB (JIT); " +
                      $"Dovecot + Postfix {totals["theirs"].After:0.0} MiB");
}
catch (InvalidOperationException)
{
    foreach (var log in new[] { "mtad.log", "lmtpd.log", "imappopd.log", "authd.log", "dovecot.log", "postfix/maillog" }.Select(l => Path.Combine(dir, l)).Where(File.Exists))
        Console.Error.WriteLine($"--- {log}:\n" + string.Join('\n', File.ReadLines(log).TakeLast(10)));
    throw;
}
finally
{
    if (dove != null) Stop(dove);
    if (postfixStarted) Run(postfix, "-c", Path.Combine(dir, "postfix/etc"), "stop");
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;

static void Row(string name, (int Procs, double Rss, double Pss) idle, (int Procs, double Rss, double Pss) after) =>
    Console.WriteLine($"{name,-44}{(idle.Procs == after.Procs ? $"{idle.Procs}" : $"{idle.Procs}/{after.Procs}"),7}" +
                      $"{Cell(idle.Procs, idle.Rss),10}{Cell(idle.Procs, idle.Pss),7}{Cell(after.Procs, after.Rss),11}{Cell(after.Procs, after.Pss),7}");

static string Cell(int procs, double mib) => procs == 0 ? "-" : mib.ToString("0.0");

static (int Procs, double Rss, double Pss) Sum(List<(int Procs, double Rss, double Pss)> r) => (r.Sum(x => x.Procs), r.Sum(x => x.Rss), r.Sum(x => x.Pss));

// RSS (VmRSS) and PSS (smaps_rollup) of a set of processes, in MiB; a process gone meanwhile counts nothing.
static (int Procs, double Rss, double Pss) Reading(List<int> pids)
{
    int n = 0;
    double rss = 0, pss = 0;
    foreach (var pid in pids)
    {
        try
        {
            var r = Field($"/proc/{pid}/status", "VmRSS:");
            var p = Field($"/proc/{pid}/smaps_rollup", "Pss:");
            (n, rss, pss) = (n + 1, rss + r / 1024.0, pss + p / 1024.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException) { }
    }
    return (n, rss, pss);

    static long Field(string file, string name) =>
        File.ReadLines(file).Where(l => l.StartsWith(name, StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])).First();
}

static string Comm(int pid)
{
    try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
    catch (IOException) { return ""; }
}


// One message in by SMTP from loopback, for the local mailbox.
static async Task Deliver(int port, string subject)
{
    using var c = await Line.OpenAsync(port, "220");
    await c.Say("EHLO client.bench.test", "250");
    await c.Say("MAIL FROM:<sender@remote.test>", "250");
    await c.Say("RCPT TO:<bench@bench.test>", "250");
    await c.Say("DATA", "354");
    var body = string.Concat(Enumerable.Repeat("A line of text to make the message a few kilobytes long, as mail is.\r\n", 50));
    await c.Say($"From: <sender@remote.test>\r\nTo: <bench@bench.test>\r\nSubject: {subject}\r\nMessage-ID: <{Guid.NewGuid():N}@remote.test>\r\n\r\n{body}.", "250");
    await c.Say("QUIT", "221");
}

// Waits for the message in the Maildir, then reads it by IMAP and logs out.
static async Task ReadBack(int port, string subject, string maildir)
{
    var deadline = DateTime.UtcNow.AddSeconds(30);
    while (!Directory.Exists(Path.Combine(maildir, "new")) ||
           !Directory.GetFiles(Path.Combine(maildir, "new")).Concat(Directory.GetFiles(Path.Combine(maildir, "cur"))).Any(f => File.ReadAllText(f).Contains(subject)))
    {
        if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"no message \"{subject}\" in {maildir}");
        await Task.Delay(50);
    }
    using var c = await Line.OpenAsync(port, "* OK");
    await c.Say("a LOGIN bench@bench.test pw", "a OK");
    await c.Say("b SELECT INBOX", "b OK");
    var fetched = await c.Say("c FETCH 1:* (BODY[])", "c OK");
    if (!fetched.Contains(subject)) throw new InvalidOperationException($"IMAP did not return \"{subject}\"");
    await c.Say("d LOGOUT", "d OK");
}

// A line-based dialogue: each command waits for the line that starts with the expected reply.
sealed class Line : IDisposable
{
    private readonly TcpClient _tcp = new();
    private StreamReader _in = null!;
    private Stream _out = null!;

    public static async Task<Line> OpenAsync(int port, string greeting)
    {
        var l = new Line();
        await l._tcp.ConnectAsync(IPAddress.Loopback, port);
        l._out = l._tcp.GetStream();
        l._in = new StreamReader(l._out, Encoding.Latin1);
        await l.Expect(greeting);
        return l;
    }

    public async Task<string> Say(string command, string reply)
    {
        await _out.WriteAsync(Encoding.Latin1.GetBytes(command + "\r\n"));
        return await Expect(reply);
    }

    private async Task<string> Expect(string reply)
    {
        var seen = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var line = await _in.ReadLineAsync(timeout.Token) ?? throw new InvalidOperationException($"connection closed waiting for {reply}: {seen}");
            seen.Append(line).Append('\n');
            // SMTP continuation lines (250-...) are not the reply's end.
            if (line.StartsWith(reply, StringComparison.Ordinal) && !(line.Length > 3 && line[3] == '-' && char.IsDigit(reply[0]))) return seen.ToString();
            if (char.IsDigit(reply[0]) && line.Length > 3 && line[3] == ' ' && !line.StartsWith(reply, StringComparison.Ordinal))
                throw new InvalidOperationException($"expected {reply}, got: {line}");
            if (line.StartsWith(reply[..1] + " NO", StringComparison.Ordinal) || line.StartsWith(reply[..1] + " BAD", StringComparison.Ordinal))
                throw new InvalidOperationException($"expected {reply}, got: {line}");
        }
    }

    public void Dispose() => _tcp.Dispose();
}
