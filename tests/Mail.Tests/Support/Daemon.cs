// One of our built daemons as its own process (build/bin/NAME --config FILE), for the
// tests that kill it: started, waited for until its socket answers, killed with
// SIGKILL and started again; stopped by process id when the test ends.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Mail.Tests.Support;

internal sealed class Daemon(string name, string configFile, EndPoint ready) : IDisposable
{
    private Process? _process;

    public string Name => name;

    /// <summary>Starts the daemon and waits until <c>ready</c> takes a connection.</summary>
    public async Task StartAsync()
    {
        _process = Process.Start(new ProcessStartInfo(Repo.Program(name)) { ArgumentList = { "--config", configFile }, UseShellExecute = false })!;
        var up = await Wait.UntilAsync(async () =>
        {
            if (_process.HasExited) return true;
            try
            {
                using var s = new Socket(ready.AddressFamily, SocketType.Stream, ready is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
                await s.ConnectAsync(ready);
                return true;
            }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30));
        Assert.That(up && !_process.HasExited, Is.True, $"{name} did not start");
    }

    /// <summary>SIGKILL: no clean-up of any kind, as a crash or the OOM killer.</summary>
    public void Kill()
    {
        if (_process == null) return;
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
        _process = null;
    }

    public void Dispose() => Kill();
}
