// What every benchmark needs: starting and stopping the programs it
// compares, finding a peer's worker processes, and reading peak memory.
using System.Diagnostics;

namespace Mail.Bench;

internal static class BenchProcess
{
    private static readonly List<Process> Started = [];
    private static readonly List<Action> AtExit = [];
    private static readonly List<System.Runtime.InteropServices.PosixSignalRegistration> Registrations = []; // kept: a collected one is unregistered

    /// <summary>
    /// A benchmark stopped by a signal (Ctrl-C, kill) skips its finally blocks: what it started
    /// is stopped here then, and <paramref name="cleanup"/> runs (a peer stopped by its own tool).
    /// </summary>
    public static void OnSignal(Action cleanup)
    {
        lock (AtExit)
        {
            AtExit.Add(cleanup);
            if (AtExit.Count > 1) return;
        }
        foreach (var signal in new[] { System.Runtime.InteropServices.PosixSignal.SIGTERM, System.Runtime.InteropServices.PosixSignal.SIGINT })
            Registrations.Add(System.Runtime.InteropServices.PosixSignalRegistration.Create(signal, _ =>
            {
                lock (Started) foreach (var p in Started) try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                lock (AtExit) foreach (var a in AtExit) try { a(); } catch (Exception) { }
            }));
    }

    public static Process Start(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) Console.Error.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        lock (Started) Started.Add(p);
        return p;
    }

    public static void Stop(Process p)
    {
        if (p.HasExited) return;
        Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
        if (!p.WaitForExit(15_000)) p.Kill(entireProcessTree: true);
    }

    public static async Task WaitForFile(string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(path))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{path} did not appear");
            await Task.Delay(50);
        }
    }

    /// <summary>Children of <paramref name="parent"/> whose command name is <paramref name="name"/>.</summary>
    public static List<int> Children(int parent, string name)
    {
        var found = new List<int>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(d, "stat"));
                var comm = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (ppid == parent && comm == name) found.Add(pid);
            }
            catch (Exception e) when (e is IOException or FormatException or ArgumentOutOfRangeException) { }
        }
        return found;
    }

    /// <summary>Every process below <paramref name="root"/>, at any depth.</summary>
    public static List<int> Descendants(int root)
    {
        var parentOf = new Dictionary<int, int>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(d, "stat"));
                parentOf[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
            }
            catch (Exception e) when (e is IOException or FormatException or ArgumentOutOfRangeException) { }
        }
        var found = new List<int>();
        var frontier = new Queue<int>([root]);
        while (frontier.Count > 0)
        {
            var p = frontier.Dequeue();
            foreach (var (child, parent) in parentOf)
                if (parent == p) { found.Add(child); frontier.Enqueue(child); }
        }
        return found;
    }

    public static int? FindChild(int parent, string name)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            var c = Children(parent, name);
            if (c.Count > 0) return c[0];
            Thread.Sleep(100);
        }
        return null;
    }

    /// <summary>User and system CPU time of a process so far, in milliseconds (/proc/PID/stat fields 14 and 15).</summary>
    public static double CpuMs(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(f[11]) + long.Parse(f[12])) * 1000.0 / 100; // USER_HZ is 100 on Linux
    }

    /// <summary>VmHWM of a process in KiB (0 when it is gone).</summary>
    public static long PeakKb(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        catch (IOException) { }
        return 0;
    }

    /// <summary>authd.conf for a benchmark: a passwd-file directory in <paramref name="dir"/>, Maildirs under <paramref name="mailRoot"/>.</summary>
    public static void WriteAuthdConfig(string dir, string mailRoot) => File.WriteAllText(Path.Combine(dir, "authd.conf"), $"""
        grpc_socket = {dir}/authd.sock
        dovecot_auth_socket =
        socketmap_socket =
        passwd_file = {dir}/passwd
        domains_file = {dir}/domains
        aliases_file = {dir}/virtual
        mail_root = {mailRoot}
        log_file = {dir}/authd.log
        """);

    public static async Task WaitForPort(int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try { using var t = new System.Net.Sockets.TcpClient(); await t.ConnectAsync(System.Net.IPAddress.Loopback, port); return; }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline) { await Task.Delay(100); }
        }
    }

    public static string? FindProgram(string name) =>
        new[] { "/usr/sbin", "/usr/bin", "/sbin" }.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    public static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
