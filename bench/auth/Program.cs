// bench/auth: AuthD against Dovecot's auth process over the Dovecot auth
// client protocol. Both serve one passwd-file (the same users, the same hash
// per row), both are asked by the same client with the same concurrency, and
// each row prints both rates, their ratio and each process's peak memory.
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
    File.WriteAllText(Path.Combine(dir, "authd.conf"), $"""
        grpc_socket = {dir}/authd.sock
        dovecot_auth_socket = {dir}/auth-client
        socketmap_socket =
        passwd_file = {dir}/passwd
        domains_file = {dir}/domains
        aliases_file = {dir}/virtual
        log_file = {dir}/authd.log
        """);

    using var dovecotProc = Start(dovecot, "-F", "-c", Path.Combine(dir, "dovecot.conf"));
    using var authd = Start(authdPath, "--config", Path.Combine(dir, "authd.conf"));
    try
    {
    var dovecotSocket = Path.Combine(dir, "dovecot", "auth-client");
    var authdSocket = Path.Combine(dir, "auth-client");
    await WaitForFile(dovecotSocket);
    await WaitForFile(authdSocket);

    Console.WriteLine($"bench/auth: {connections} connections, median of 3 alternating runs of {seconds} s, AUTH PLAIN over the Dovecot auth protocol, {users} users per scheme");
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
    }
    finally
    {
        Stop(authd);
        Stop(dovecotProc);
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
