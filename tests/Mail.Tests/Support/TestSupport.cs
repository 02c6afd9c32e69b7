// Helpers shared by the tests: temporary folders, the repository root,
// external programs, and the rule that a missing peer fails under CI=true.
using System.Diagnostics;
using System.Text;

namespace Mail.Tests.Support;

internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mailtest-").FullName;
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

internal static class Peers
{
    public static bool InCi => Environment.GetEnvironmentVariable("CI") == "true";

    /// <summary>Finds a program on PATH (or /usr/sbin); fails under CI=true, else skips, when it is missing.</summary>
    public static string Require(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/usr/bin", "/sbin"]))
        {
            var path = System.IO.Path.Combine(dir, program);
            if (File.Exists(path)) return path;
        }
        var msg = $"{program} is not installed (the test script installs it)";
        if (InCi) Assert.Fail(msg);
        else Assert.Ignore(msg);
        return "";
    }
}

/// <summary>A peer server process of a test (a DNS server, say): waited for on its TCP port, stopped by its process id.</summary>
internal static class PeerProcess
{
    /// <summary>True once the process accepts TCP connections on 127.0.0.1:<paramref name="port"/>; false if it exited or 30 s passed.</summary>
    public static bool Listening(System.Diagnostics.Process process, int port) => Wait.UntilAsync(() =>
    {
        if (process.HasExited) return true;
        try { using var c = new System.Net.Sockets.TcpClient(); c.Connect(System.Net.IPAddress.Loopback, port); return true; }
        catch (System.Net.Sockets.SocketException) { return false; }
    }, TimeSpan.FromSeconds(30)).Result && !process.HasExited;

    public static void Stop(System.Diagnostics.Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill();
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { }
        process.Dispose();
    }
}

internal static class Ports
{
    // Below the kernel's ephemeral range (32768 and up by default): a port handed out here is
    // never taken meanwhile as the source port of some test's outgoing connection.
    private const int First = 20000, Last = 32000;
    private static int _next = First + Random.Shared.Next(Last - First);

    /// <summary>A loopback port free at the moment of asking, each one handed out once per run.</summary>
    public static int Free()
    {
        for (int tries = 0; tries < Last - First; tries++)
        {
            var port = First + (Interlocked.Increment(ref _next) - First) % (Last - First);
            try
            {
                using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
                l.Start();
                return port;
            }
            catch (System.Net.Sockets.SocketException) { } // in use: the next one
        }
        throw new InvalidOperationException("no free loopback port");
    }
}

internal sealed record RunResult(int ExitCode, string Stdout, string Stderr);

internal static class Run
{
    /// <summary>Runs a program to completion (bounded by a timeout), feeding it stdin.</summary>
    public static RunResult Program(string file, IEnumerable<string> args, string? stdin = null, int timeoutMs = 60_000,
        IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin != null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish in {timeoutMs} ms");
        }
        return new RunResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}

internal static class Repo
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Mail.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    /// <summary>A program of the suite as built into build/bin.</summary>
    public static string Program(string name)
    {
        var path = System.IO.Path.Combine(Root, "build", "bin", name);
        Assert.That(File.Exists(path), Is.True, $"{path} is not built");
        return path;
    }
}

internal static class Wait
{
    /// <summary>Polls a condition until it holds or the time runs out.</summary>
    public static async Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return true;
            await Task.Delay(25);
        }
        return await condition();
    }

    public static Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout) => UntilAsync(() => Task.FromResult(condition()), timeout);
}
