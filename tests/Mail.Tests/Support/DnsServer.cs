// A private DNS server for a test: dnsmasq on 127.0.0.1 and a free port, with
// no upstream servers, answering only for the names the test gives it (MX
// and A records; --local domains answer NXDOMAIN for anything else).
// Stopped by its process id.
using System.Diagnostics;

namespace Mail.Tests.Support;

internal sealed class DnsServer : IDisposable
{
    public int Port { get; }
    private readonly Process _process;

    private DnsServer(int port, Process process) => (Port, _process) = (port, process);

    /// <param name="records">dnsmasq options such as "--mx-host=remote.test,mx.remote.test,10" or "--host-record=mx.remote.test,127.0.0.1".</param>
    public static DnsServer Start(params string[] records)
    {
        var dnsmasq = Peers.Require("dnsmasq");
        var port = Ports.Free();
        var psi = new ProcessStartInfo(dnsmasq) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll", "--pid-file=",
                     "--listen-address=127.0.0.1", "--bind-interfaces", $"--port={port}", "--user=" + Environment.UserName, "--cache-size=0" })
            psi.ArgumentList.Add(a);
        foreach (var r in records) psi.ArgumentList.Add(r);
        var process = Process.Start(psi)!;
        var up = PeerProcess.Listening(process, port);
        Assert.That(up, Is.True, "dnsmasq did not start: " + (process.HasExited ? process.StandardError.ReadToEnd() : "not listening"));
        return new DnsServer(port, process);
    }

    public void Dispose() => PeerProcess.Stop(_process);
}
