// A private authoritative DNS server for a test: NSD on 127.0.0.1 and a free
// port (UDP and TCP), serving zones from zone files the test writes. Each zone
// gets its SOA and NS records; the test gives the rest in zone-file syntax,
// names relative to the zone. Stopped by its process id.
using System.Diagnostics;
using System.Text;

namespace Mail.Tests.Support;

internal sealed class ZoneServer : IDisposable
{
    public int Port { get; }
    public string Address => $"127.0.0.1:{Port}";
    private readonly Process _process;
    private readonly TempDir _dir;

    private ZoneServer(int port, Process process, TempDir dir) => (Port, _process, _dir) = (port, process, dir);

    /// <param name="zones">zone name and its records, one per line, e.g. ("example.com", "@ TXT \"v=spf1 -all\"").</param>
    public static ZoneServer Start(params (string Zone, string Records)[] zones)
    {
        var nsd = Peers.Require("nsd");
        var dir = new TempDir();
        var port = Ports.Free();
        var conf = new StringBuilder($"""
            server:
              ip-address: 127.0.0.1@{port}
              port: {port}
              username: ""
              chroot: ""
              zonesdir: "{dir.Path}"
              pidfile: "{dir["nsd.pid"]}"
              database: ""
              zonelistfile: "{dir["zone.list"]}"
              xfrdfile: "{dir["xfrd.state"]}"
              xfrdir: "{dir.Path}"
              logfile: "{dir["nsd.log"]}"
              server-count: 1
              do-ip6: no
              verbosity: 1
              # No response rate limiting: every query here comes from 127.0.0.1.
              rrl-ratelimit: 0
            remote-control:
              control-enable: no

            """);
        foreach (var (zone, records) in zones)
        {
            var file = zone + ".zone";
            File.WriteAllText(dir[file], $"$ORIGIN {zone}.\n$TTL 60\n@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ NS ns.{zone}.\nns A 127.0.0.1\n{records}\n");
            conf.Append($"zone:\n  name: \"{zone}\"\n  zonefile: \"{file}\"\n");
        }
        File.WriteAllText(dir["nsd.conf"], conf.ToString());
        var check = Run.Program(Peers.Require("nsd-checkconf"), [dir["nsd.conf"]]);
        Assert.That(check.ExitCode, Is.Zero, "nsd.conf: " + check.Stderr + check.Stdout);
        var psi = new ProcessStartInfo(nsd) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-d", "-c", dir["nsd.conf"] }) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        var server = new ZoneServer(port, process, dir);
        var up = PeerProcess.Listening(process, port);
        if (!up)
        {
            var log = File.Exists(dir["nsd.log"]) ? File.ReadAllText(dir["nsd.log"]) : "";
            server.Dispose();
            Assert.Fail("nsd did not start: " + log);
        }
        return server;
    }

    public string Log() => File.Exists(_dir["nsd.log"]) ? File.ReadAllText(_dir["nsd.log"]) : "";

    public void Dispose()
    {
        PeerProcess.Stop(_process);
        _dir.Dispose();
    }
}
