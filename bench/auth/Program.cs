// bench/auth: AuthD against Dovecot's auth process over the Dovecot auth
// client protocol. Both serve one passwd-file (the same users, the same hash
// per row), both are asked by the same client with the same concurrency, and
// each row prints both rates, their ratio and each process's peak memory.
// The last row: Dovecot's IMAP logging in through AuthD (imap-login on its
// client socket, the imap process's user from its userdb socket) against the
// same Dovecot IMAP on its own auth, IMAP LOGIN and LOGOUT per second.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using static Mail.Bench.BenchProcess;

if (args.Length < 3) { Console.Error.WriteLine("usage: authbench AUTHD SECONDS CONNECTIONS"); return 64; }
var authdPath = args[0];
var seconds = int.Parse(args[1]);
var connections = int.Parse(args[2]);
var dovecot = FindProgram("dovecot") ?? throw new InvalidOperationException("dovecot is not installed");

var dir = Directory.CreateTempSubdirectory("authbench-").FullName;
File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
try
{
    const int users = 50;
    var schemes = new[] { "SHA512-CRYPT", "SSHA256" };
    var passwd = new StringBuilder();
    foreach (var scheme in schemes)
        for (int i = 0; i < users; i++)
            passwd.Append($"{Tag(scheme)}{i}@bench.test:{PasswordScheme.Hash("pw" + i, scheme)}::::::\n");
    // The IMAP row's users: a uid, gid and home each (their Maildir), for both Dovecots and AuthD.
    for (int i = 0; i < users; i++)
        passwd.Append($"imap{i}@bench.test:{PasswordScheme.Hash("pw" + i, "SSHA256")}:5000:5001::{dir}/mail/bench.test/imap{i}::\n");
    Directory.CreateDirectory(Path.Combine(dir, "mail"));
    Process.Start("chown", ["5000:5001", Path.Combine(dir, "mail")])!.WaitForExit();
    File.WriteAllText(Path.Combine(dir, "passwd"), passwd.ToString());
    File.WriteAllText(Path.Combine(dir, "domains"), "bench.test\n");

    // Dovecot: only its auth service, on a Unix socket in our folder.
    Directory.CreateDirectory(Path.Combine(dir, "dovecot"));
    File.WriteAllText(Path.Combine(dir, "dovecot.conf"), $$"""
        base_dir = {{dir}}/dovecot
        instance_name = authbench
        log_path = {{dir}}/dovecot.log
        listen = 127.0.0.1
        ssl = no
        protocols =
        disable_plaintext_auth = no
        auth_mechanisms = plain
        passdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        userdb {
          driver = static
          args = uid=nobody gid=nogroup home={{dir}}/mail/%d/%n
        }
        service auth {
          unix_listener auth-client {
            mode = 0666
          }
        }
        """);
    // Dovecot's IMAP twice, the same but for its auth: its own (the passwd-file) or AuthD's sockets.
    var (imapOwn, imapAuthd) = (FreePort(), FreePort());
    string ImapDovecot(string name, int port, string auth) => $$"""
        base_dir = {{dir}}/{{name}}
        instance_name = authbench-{{name}}
        log_path = {{dir}}/{{name}}.log
        listen = 127.0.0.1
        ssl = no
        protocols = imap
        disable_plaintext_auth = no
        first_valid_uid = 1
        mail_location = maildir:~
        {{auth}}
        service imap-login {
          inet_listener imap {
            address = 127.0.0.1
            port = {{port}}
          }
          inet_listener imaps {
            port = 0
          }
        }
        """;
    foreach (var name in new[] { "imap-own", "imap-authd" }) Directory.CreateDirectory(Path.Combine(dir, name));
    File.WriteAllText(Path.Combine(dir, "imap-own.conf"), ImapDovecot("imap-own", imapOwn, $$"""
        passdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        userdb {
          driver = passwd-file
          args = {{dir}}/passwd
        }
        """));
    File.WriteAllText(Path.Combine(dir, "imap-authd.conf"), ImapDovecot("imap-authd", imapAuthd, $$"""
        auth_socket_path = {{dir}}/auth-userdb
        service imap-login {
          chroot =
          executable = imap-login {{dir}}/auth-client
        }
        service imap {
          executable = imap -a {{dir}}/auth-userdb
        }
        """));
    File.WriteAllText(Path.Combine(dir, "authd.conf"), $"""
        grpc_socket = {dir}/authd.sock
        dovecot_auth_socket = {dir}/auth-client
        dovecot_userdb_socket = {dir}/auth-userdb
        socket_mode = 0666
        mail_root = {dir}/mail
        socketmap_socket =
        passwd_file = {dir}/passwd
        domains_file = {dir}/domains
        aliases_file = {dir}/virtual
        log_file = {dir}/authd.log
        """);

    using var dovecotProc = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot.conf"));
    using var authd = Start(authdPath, "--config", Path.Combine(dir, "authd.conf"));
    using var imapOwnProc = Start(dovecot, "-F", "-c", Path.Combine(dir, "imap-own.conf"));
    using var imapAuthdProc = Start(dovecot, "-F", "-c", Path.Combine(dir, "imap-authd.conf"));
    try
    {
    var dovecotSocket = Path.Combine(dir, "dovecot", "auth-client");
    var authdSocket = Path.Combine(dir, "auth-client");
    await WaitForFile(dovecotSocket);
    await WaitForFile(authdSocket);

    Console.WriteLine($"bench/auth: AuthD (NativeAOT) against Dovecot 2.3 auth, {connections} connections, median of 3 alternating runs of {seconds} s (IMAP row: of 5), AUTH PLAIN over the Dovecot auth protocol, {users} users per scheme");
    Console.WriteLine($"{"scheme",-14}{"authd/s",10}{"dovecot/s",11}{"ratio",8}   peak memory (authd / dovecot auth)");
    int? dovecotAuthPid = null;
    foreach (var scheme in schemes)
    {
        // Warm both (JIT, connection set-up, file read), then measure each in turn.
        await Measure(authdSocket, Tag(scheme), users, connections, 1);
        await Measure(dovecotSocket, Tag(scheme), users, connections, 1);
        dovecotAuthPid ??= FindChild(dovecotProc.Id, "auth") ?? throw new InvalidOperationException("no dovecot auth process");
        // Three rounds, alternating, so that a noisy moment hurts both alike; the median counts.
        var oursRuns = new List<double>();
        var theirsRuns = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            oursRuns.Add(await Measure(authdSocket, Tag(scheme), users, connections, seconds));
            theirsRuns.Add(await Measure(dovecotSocket, Tag(scheme), users, connections, seconds));
        }
        var ours = oursRuns.Order().ElementAt(1);
        var theirs = theirsRuns.Order().ElementAt(1);
        Console.WriteLine($"{scheme,-14}{ours,10:0}{theirs,11:0}{ours / theirs,8:0.00}   {PeakKb(authd.Id) / 1024.0:0.0} MiB / {PeakKb(dovecotAuthPid.Value) / 1024.0:0.0} MiB");
    }

    // Dovecot's IMAP: LOGIN and LOGOUT through AuthD, against through its own auth (SSHA256 both).
    await WaitForPort(imapOwn);
    await WaitForPort(imapAuthd);
    await ImapLogins(imapAuthd, users, connections, 1);
    await ImapLogins(imapOwn, users, connections, 1);
    var viaAuthd = new List<double>();
    var viaOwn = new List<double>();
    // The auth service's own CPU time per login: AuthD's against Dovecot's auth process (and its workers).
    var ownAuthPids = Children(imapOwnProc.Id, "auth");
    double authdCpu = 0, ownCpu = 0, authdLogins = 0, ownLogins = 0;
    // Five rounds: each login costs Dovecot's imap processes some fifty times what it costs either auth
    // service, so the row is a small difference in a noisy total; the median of five steadies it.
    for (int round = 0; round < 5; round++)
    {
        var before = CpuMs(authd.Id);
        var rate = await ImapLogins(imapAuthd, users, connections, seconds);
        (authdCpu, authdLogins) = (authdCpu + CpuMs(authd.Id) - before, authdLogins + rate * seconds);
        viaAuthd.Add(rate);
        before = ownAuthPids.Sum(CpuMs);
        rate = await ImapLogins(imapOwn, users, connections, seconds);
        (ownCpu, ownLogins) = (ownCpu + ownAuthPids.Sum(CpuMs) - before, ownLogins + rate * seconds);
        viaOwn.Add(rate);
    }
    var (a, o) = (viaAuthd.Order().ElementAt(2), viaOwn.Order().ElementAt(2));
    var ownAuth = ownAuthPids.Select(PeakKb).DefaultIfEmpty(0).Max();
    Console.WriteLine($"{"Dovecot IMAP",-14}{a,10:0}{o,11:0}{a / o,8:0.00}   {PeakKb(authd.Id) / 1024.0:0.0} MiB / {ownAuth / 1024.0:0.0} MiB   (LOGIN+LOGOUT/s: through AuthD / through Dovecot's own auth)");
    Console.WriteLine($"{"",-14}auth CPU per login: {authdCpu / authdLogins:0.00} ms AuthD / {ownCpu / ownLogins:0.00} ms Dovecot's auth");
    }
    finally
    {
        Stop(authd);
        Stop(dovecotProc);
        Stop(imapOwnProc);
        Stop(imapAuthdProc);
    }
}
finally
{
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;

static string Tag(string scheme) => scheme == "SHA512-CRYPT" ? "crypt" : "cheap";

// One client: `connections` sockets, each sending AUTH after AUTH for the time given.
static async Task<double> Measure(string socket, string prefix, int users, int connections, int seconds)
{
    var stop = Stopwatch.StartNew();
    var limit = TimeSpan.FromSeconds(seconds);
    var tasks = Enumerable.Range(0, connections).Select(async c =>
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(socket));
        using var stream = new NetworkStream(s);
        using var reader = new StreamReader(stream, Encoding.ASCII);
        await stream.WriteAsync(Encoding.ASCII.GetBytes("VERSION\t1\t2\nCPID\t1\n"));
        while (await reader.ReadLineAsync() != "DONE") { }
        int done = 0;
        for (uint id = 1; stop.Elapsed < limit; id++)
        {
            var u = (int)((id + c * 7) % users);
            var resp = Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{prefix}{u}@bench.test\0pw{u}"));
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"AUTH\t{id}\tPLAIN\tservice=imap\tsecured\tnologin\tresp={resp}\n"));
            var line = await reader.ReadLineAsync();
            if (line == null || !line.StartsWith($"OK\t{id}\t", StringComparison.Ordinal))
                throw new InvalidOperationException($"{socket}: unexpected reply '{line}'");
            done++;
        }
        return done;
    }).ToList();
    var total = (await Task.WhenAll(tasks)).Sum();
    return total / stop.Elapsed.TotalSeconds;
}

// IMAP logins per second: `connections` clients, each connecting, logging in (LOGIN), logging out, again.
static async Task<double> ImapLogins(int port, int users, int connections, int seconds)
{
    var stop = Stopwatch.StartNew();
    var limit = TimeSpan.FromSeconds(seconds);
    var tasks = Enumerable.Range(0, connections).Select(async c =>
    {
        int done = 0;
        for (int n = c; stop.Elapsed < limit; n += connections)
        {
            using var t = new TcpClient();
            await t.ConnectAsync(System.Net.IPAddress.Loopback, port);
            using var stream = t.GetStream();
            using var reader = new StreamReader(stream, Encoding.ASCII);
            async Task Expect(string tag)
            {
                string? line;
                while ((line = await reader.ReadLineAsync()) != null && !line.StartsWith(tag, StringComparison.Ordinal)) { }
                if (line == null || !line.StartsWith(tag + " OK", StringComparison.Ordinal) && tag != "*")
                    throw new InvalidOperationException($"imap {port}: {line}");
            }
            await Expect("*");
            var u = n % users;
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"a LOGIN imap{u}@bench.test pw{u}\r\n"));
            await Expect("a");
            await stream.WriteAsync("b LOGOUT\r\n"u8.ToArray());
            await Expect("b");
            done++;
        }
        return done;
    }).ToList();
    var total = (await Task.WhenAll(tasks)).Sum();
    return total / stop.Elapsed.TotalSeconds;
}
