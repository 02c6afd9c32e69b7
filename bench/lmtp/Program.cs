// bench/lmtp: our lmtpd (with AuthD) against Dovecot's LMTP, each delivering
// into its own Maildir tree on the same disk, for the same users, driven by
// the same client. Each row: deliveries per second for both, the ratio, and
// peak memory (lmtpd / the largest Dovecot lmtp process). The sieve rows give
// each recipient a 20-rule script (~/.dovecot.sieve, the same file for both)
// and compare with a second Dovecot whose LMTP runs Pigeonhole.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using static Mail.Bench.BenchProcess;

if (args.Length < 2) { Console.Error.WriteLine("usage: lmtpbench BINDIR SECONDS"); return 64; }
var bin = args[0];
var seconds = int.Parse(args[1]);
var dovecot = FindProgram("dovecot") ?? throw new InvalidOperationException("dovecot is not installed");
var dir = Directory.CreateTempSubdirectory("lmtpbench-").FullName;
File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
const int users = 100;
try
{
    var passwd = new StringBuilder();
    for (int i = 0; i < users; i++) passwd.Append($"u{i}@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\n");
    for (int i = 0; i < users; i++) passwd.Append($"s{i}@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\n");
    File.WriteAllText(Path.Combine(dir, "passwd"), passwd.ToString());
    File.WriteAllText(Path.Combine(dir, "domains"), "bench.test\n");
    foreach (var m in new[] { "mail-ours", "mail-dovecot" })
    {
        Directory.CreateDirectory(Path.Combine(dir, m));
        Process.Start("chown", ["5000:5001", Path.Combine(dir, m)])!.WaitForExit();
    }
    // The sieve users' homes, in both trees: the same 20-rule script, active as Pigeonhole keeps it.
    // Dovecot keeps the Maildir below the home (mail = ~/Maildir): with both in one folder it takes
    // ~/.dovecot.sieve for a mailbox and fails the delivery. Ours ignores what is not a folder.
    foreach (var m in new[] { "mail-ours", "mail-dovecot-sieve" })
        for (int i = 0; i < users; i++)
        {
            var home = Path.Combine(dir, m, "bench.test", $"s{i}");
            Directory.CreateDirectory(Path.Combine(home, "sieve"));
            File.WriteAllText(Path.Combine(home, "sieve", "rules.sieve"), TwentyRules);
            File.CreateSymbolicLink(Path.Combine(home, ".dovecot.sieve"), "sieve/rules.sieve");
        }
    foreach (var m in new[] { "mail-ours", "mail-dovecot-sieve" })
        Process.Start("chown", ["-R", "-h", "5000:5001", Path.Combine(dir, m)])!.WaitForExit();
    var oursPort = FreePort();
    var dovecotPort = FreePort();
    var sievePort = FreePort();
    WriteAuthdConfig(dir, $"{dir}/mail-ours");
    File.WriteAllText(Path.Combine(dir, "lmtpd.conf"), $"""
        listen = 127.0.0.1:{oursPort}
        socket =
        authd_socket = {dir}/authd.sock
        max_message_size = 10M
        log_file = {dir}/lmtpd.log
        sieve_before =
        sieve_after =
        """);
    string DovecotConfig(string name, int port, string extra, string tree = "mail-dovecot", string maildir = "") => $$"""
        base_dir = {{dir}}/{{name}}
        instance_name = lmtpbench-{{name}}
        log_path = {{dir}}/{{name}}.log
        listen = 127.0.0.1
        ssl = no
        protocols = lmtp
        first_valid_uid = 1
        mail_location = maildir:{{dir}}/{{tree}}/%d/%n{{maildir}}
        passdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        userdb {
          driver = passwd-file
          args = {{dir}}/passwd
          default_fields = home={{dir}}/{{tree}}/%d/%n
        }
        service lmtp {
          inet_listener lmtp {
            address = 127.0.0.1
            port = {{port}}
          }
        }
        {{extra}}
        """;
    foreach (var name in new[] { "dovecot", "dovecot-sieve" }) Directory.CreateDirectory(Path.Combine(dir, name));
    File.WriteAllText(Path.Combine(dir, "dovecot.conf"), DovecotConfig("dovecot", dovecotPort, ""));
    File.WriteAllText(Path.Combine(dir, "dovecot-sieve.conf"), DovecotConfig("dovecot-sieve", sievePort, """
        protocol lmtp {
          mail_plugins = sieve
        }
        plugin {
          sieve = file:~/sieve;active=~/.dovecot.sieve
        }
        """, "mail-dovecot-sieve", "/Maildir"));
    using var authd = Start(Path.Combine(bin, "authd"), "--config", Path.Combine(dir, "authd.conf"));
    await WaitForFile(Path.Combine(dir, "authd.sock"));
    using var lmtpd = Start(Path.Combine(bin, "lmtpd"), "--config", Path.Combine(dir, "lmtpd.conf"));
    using var dove = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot.conf"));
    using var doveSieve = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot-sieve.conf"));
    try
    {
        await WaitForPort(oursPort);
        await WaitForPort(dovecotPort);
        await WaitForPort(sievePort);
        Console.WriteLine($"bench/lmtp: median of 3 alternating runs of {seconds} s; both fsync every message; Maildirs on {dir}");
        // The disk's own limit, now: what a delivery cannot beat (write, fsync, rename, fsync the directory).
        foreach (var writers in new[] { 1, 8 })
            Console.WriteLine($"disk limit, {writers} writer{(writers == 1 ? "" : "s")}: {DiskLimit(Path.Combine(dir, "disk"), writers, seconds):0} deliveries/s (4 KiB: write, fsync, rename into new/, fsync new/)");
        Console.WriteLine($"{"size",-6}{"clients",8}{"boxes",7}{"lmtpd/s",10}{"dovecot/s",11}{"ratio",8}   peak memory (lmtpd / largest dovecot lmtp)");
        foreach (var size in new[] { 4 * 1024, 100 * 1024 })
            foreach (var clients in new[] { 1, 8 })
                foreach (var boxes in new[] { 1, 100 })
                {
                    await Measure(oursPort, size, 1, boxes, 1);
                    await Measure(dovecotPort, size, 1, boxes, 1);
                    var ours = new List<double>();
                    var theirs = new List<double>();
                    for (int round = 0; round < 3; round++)
                    {
                        ours.Add(await Measure(oursPort, size, clients, boxes, seconds));
                        theirs.Add(await Measure(dovecotPort, size, clients, boxes, seconds));
                    }
                    var (o, t) = (ours.Order().ElementAt(1), theirs.Order().ElementAt(1));
                    var doveMem = Children(dove.Id, "lmtp").Select(PeakKb).DefaultIfEmpty(0).Max();
                    Console.WriteLine($"{size / 1024 + "K",-6}{clients,8}{boxes,7}{o,10:0}{t,11:0}{o / t,8:0.00}   {PeakKb(lmtpd.Id) / 1024.0:0.0} MiB / {doveMem / 1024.0:0.0} MiB");
                }
        // A 20-rule script per recipient: ours against Dovecot's LMTP with Pigeonhole.
        Console.WriteLine($"{"sieve",-6}{"clients",8}{"boxes",7}{"lmtpd/s",10}{"pigeonh/s",11}{"ratio",8}   peak memory (lmtpd / largest dovecot lmtp)");
        foreach (var size in new[] { 4 * 1024, 100 * 1024 })
            foreach (var clients in new[] { 1, 8 })
            {
                await Measure(oursPort, size, 1, users, 1, "s");
                await Measure(sievePort, size, 1, users, 1, "s");
                var ours = new List<double>();
                var theirs = new List<double>();
                for (int round = 0; round < 3; round++)
                {
                    ours.Add(await Measure(oursPort, size, clients, users, seconds, "s"));
                    theirs.Add(await Measure(sievePort, size, clients, users, seconds, "s"));
                }
                var (o, t) = (ours.Order().ElementAt(1), theirs.Order().ElementAt(1));
                var doveMem = Children(doveSieve.Id, "lmtp").Select(PeakKb).DefaultIfEmpty(0).Max();
                Console.WriteLine($"{size / 1024 + "K",-6}{clients,8}{users,7}{o,10:0}{t,11:0}{o / t,8:0.00}   {PeakKb(lmtpd.Id) / 1024.0:0.0} MiB / {doveMem / 1024.0:0.0} MiB");
            }
        // Both filed each message by the last rule: the same count in each tree's Bench folders.
        int Count(string tree, string sub, string folder) => Directory.GetDirectories(Path.Combine(dir, tree, "bench.test"), "s*")
            .Select(h => Path.Combine(h, sub, folder)).Where(Directory.Exists)
            .Sum(f => Directory.GetFiles(Path.Combine(f, "new")).Length + Directory.GetFiles(Path.Combine(f, "cur")).Length);
        Console.WriteLine($"filed by the 20th rule: ours {Count("mail-ours", "", ".Bench")}, Pigeonhole {Count("mail-dovecot-sieve", "Maildir", ".Bench")}; " +
            $"left in INBOX: ours {Count("mail-ours", "", "")}, Pigeonhole {Count("mail-dovecot-sieve", "Maildir", "")}");
    }
    catch (InvalidOperationException)
    {
        // A refused delivery: what each server logged about it, before the folder goes.
        foreach (var log in new[] { "lmtpd.log", "dovecot.log", "dovecot-sieve.log" }.Select(l => Path.Combine(dir, l)).Where(File.Exists))
            Console.Error.WriteLine($"--- {Path.GetFileName(log)}:\n" + string.Join('\n', File.ReadLines(log).TakeLast(10)));
        throw;
    }
    finally
    {
        Stop(lmtpd);
        Stop(dove);
        Stop(doveSieve);
        Stop(authd);
    }
}
finally
{
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;


// Deliveries per second the disk allows: each writer writes 4 KiB to tmp/, fsyncs it,
// renames it into new/ and fsyncs new/, as a Maildir delivery does, for the time given.
static double DiskLimit(string root, int writers, int seconds)
{
    foreach (var d in new[] { "tmp", "new" }) Directory.CreateDirectory(Path.Combine(root, d));
    var block = new byte[4096];
    var stop = Stopwatch.StartNew();
    var limit = TimeSpan.FromSeconds(seconds);
    long total = 0;
    Parallel.For(0, writers, new ParallelOptions { MaxDegreeOfParallelism = writers }, w =>
    {
        long n = 0;
        while (stop.Elapsed < limit)
        {
            var name = $"{w}.{n}";
            var tmp = Path.Combine(root, "tmp", name);
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
            {
                fs.Write(block);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, Path.Combine(root, "new", name));
            Mail.Shared.IO.Disk.FsyncDirectory(Path.Combine(root, "new"));
            n++;
        }
        Interlocked.Add(ref total, n);
    });
    var rate = total / stop.Elapsed.TotalSeconds;
    Directory.Delete(root, recursive: true);
    return rate;
}

// `clients` connections, each delivering messages of `size` bytes for the time given,
// spreading them over `boxes` mailboxes. Returns deliveries per second.
static async Task<double> Measure(int port, int size, int clients, int boxes, int seconds, string prefix = "u")
{
    var line = new string('b', 78) + "\r\n";
    var body = new StringBuilder();
    while (body.Length < size) body.Append(line);
    var data = Encoding.ASCII.GetBytes($"From: Sender <a@remote.test>\r\nTo: {prefix}@bench.test\r\nSubject: bench\r\nMessage-ID: <{Guid.NewGuid():N}@remote.test>\r\n\r\n{body}.\r\n");
    var stop = Stopwatch.StartNew();
    var limit = TimeSpan.FromSeconds(seconds);
    var tasks = Enumerable.Range(0, clients).Select(async c =>
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        tcp.NoDelay = true;
        var s = tcp.GetStream();
        var r = new StreamReader(s, Encoding.ASCII);
        await r.ReadLineAsync();
        await s.WriteAsync(Encoding.ASCII.GetBytes("LHLO bench\r\n"));
        while ((await r.ReadLineAsync())![3] == '-') { }
        int done = 0;
        for (int i = 0; stop.Elapsed < limit; i++)
        {
            var box = boxes == 1 ? 0 : (c * 37 + i) % boxes;
            await s.WriteAsync(Encoding.ASCII.GetBytes($"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{prefix}{box}@bench.test>\r\nDATA\r\n"));
            for (int k = 0; k < 3; k++)
            {
                var reply = await r.ReadLineAsync();
                if (reply == null || reply[0] is '4' or '5') throw new InvalidOperationException($"port {port}: {reply}");
            }
            await s.WriteAsync(data);
            var final = await r.ReadLineAsync();
            if (final == null || !final.StartsWith("250")) throw new InvalidOperationException($"port {port}: {final}");
            done++;
        }
        await s.WriteAsync(Encoding.ASCII.GetBytes("QUIT\r\n"));
        return done;
    }).ToList();
    var total = (await Task.WhenAll(tasks)).Sum();
    return total / stop.Elapsed.TotalSeconds;
}

// Twenty rules as a filter editor writes them; the message matches only the last.
partial class Program
{
    const string TwentyRules = """
        require ["fileinto", "mailbox", "imap4flags", "envelope", "body", "regex", "relational", "comparator-i;ascii-numeric"];
        if header :contains "subject" "invoice" { fileinto :create "Invoices"; stop; }
        if address :is :domain "from" "shop.example" { fileinto :create "Shopping"; stop; }
        if header :contains "list-id" "announce" { fileinto :create "Lists/Announce"; stop; }
        if header :matches "subject" "[*] *" { fileinto :create "Lists"; stop; }
        if address :is "from" ["boss@work.example", "hr@work.example"] { addflag "\\Flagged"; fileinto :create "Work"; stop; }
        if envelope :is :domain "from" "newsletter.example" { fileinto :create "News"; stop; }
        if header :regex "subject" "^(re|fwd?): urgent" { addflag "\\Flagged"; }
        if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "4" { fileinto :create "Low"; stop; }
        if exists "x-mailing-list" { fileinto :create "Lists/Other"; stop; }
        if header :contains "x-spam-flag" "YES" { fileinto :create "Junk"; stop; }
        if address :contains "to" "sales@" { fileinto :create "Sales"; stop; }
        if header :contains ["subject", "from"] "github" { fileinto :create "Code"; stop; }
        if size :over 20M { fileinto :create "Large"; stop; }
        if header :contains "subject" "receipt" { fileinto :create "Receipts"; stop; }
        if address :is :localpart "from" "noreply" { fileinto :create "Automated"; stop; }
        if header :contains "subject" ["meeting", "calendar", "invitation"] { fileinto :create "Calendar"; stop; }
        if header :matches "from" "*@family.example*" { fileinto :create "Family"; stop; }
        if anyof (header :contains "subject" "alert", header :contains "subject" "warning") { fileinto :create "Alerts"; stop; }
        if header :is "precedence" ["bulk", "list"] { fileinto :create "Bulk"; stop; }
        if header :is "subject" "bench" { fileinto :create "Bench"; stop; }

        """;
}
