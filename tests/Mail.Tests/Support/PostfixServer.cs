// A private Postfix for a test: its own config folder (master.cf from
// /etc/postfix with the smtp service moved to 127.0.0.1:PORT and no chroot),
// queue and data folders, and log file. Stopped by the master's process id.
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Mail.Tests.Support;

internal sealed class PostfixServer : IDisposable
{
    public TempDir Dir { get; } = new();
    public int Port { get; }
    public string ConfigDir => Dir["etc"];
    public string MailLog => Dir["maillog"];
    private readonly string _postfix;

    private PostfixServer(int port, string postfix)
    {
        Port = port;
        _postfix = postfix;
    }

    /// <summary>
    /// A Postfix that keeps all mail for <paramref name="domains"/> in one Maildir, <paramref name="vmail"/>/mailbox/
    /// (written as uid 5000), with <paramref name="extra"/> settings on top.
    /// </summary>
    public static PostfixServer StartMailbox(TempDir vmail, string hostname, string domains, IDictionary<string, string>? extra = null)
    {
        File.SetUnixFileMode(vmail.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        Run.Program("chown", ["5000:5000", vmail.Path]);
        var settings = new Dictionary<string, string>
        {
            ["myhostname"] = hostname,
            ["virtual_mailbox_domains"] = domains,
            ["virtual_transport"] = "virtual",
            ["virtual_mailbox_base"] = vmail.Path,
            ["virtual_mailbox_maps"] = "static:mailbox/",
            ["virtual_uid_maps"] = "static:5000",
            ["virtual_gid_maps"] = "static:5000",
            ["virtual_minimum_uid"] = "100",
        };
        foreach (var (k, v) in extra ?? new Dictionary<string, string>()) settings[k] = v;
        return Start(settings);
    }

    public static PostfixServer Start(IDictionary<string, string> settings)
    {
        var postfix = Peers.Require("postfix");
        var postconf = Peers.Require("postconf");
        var s = new PostfixServer(Ports.Free(), postfix);
        File.SetUnixFileMode(s.Dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        Directory.CreateDirectory(s.ConfigDir);
        File.WriteAllText(Path.Combine(s.ConfigDir, "master.cf"), RewriteMasterCf(File.ReadAllText("/etc/postfix/master.cf"), s.Port));
        File.WriteAllText(Path.Combine(s.ConfigDir, "main.cf"), "");
        var all = new Dictionary<string, string>
        {
            ["compatibility_level"] = "3.6",
            ["queue_directory"] = s.Dir["queue"],
            ["data_directory"] = s.Dir["data"],
            ["inet_interfaces"] = "127.0.0.1",
            ["inet_protocols"] = "ipv4",
            ["mydestination"] = "",
            ["myhostname"] = "mx.test",
            ["mynetworks"] = "192.0.2.0/24",
            ["maillog_file"] = s.MailLog,
            ["maillog_file_prefixes"] = s.Dir.Path,
            ["smtpd_banner"] = "$myhostname ESMTP",
            ["relayhost"] = "",
            ["default_transport"] = "discard:",
            ["virtual_transport"] = "discard:",
            ["smtputf8_enable"] = "no",
        };
        foreach (var (k, v) in settings) all[k] = v;
        var r = Run.Program(postconf, ["-c", s.ConfigDir, "-e", .. all.Select(kv => $"{kv.Key}={kv.Value}")]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        Directory.CreateDirectory(s.Dir["queue"]);
        Directory.CreateDirectory(s.Dir["data"]);
        foreach (var step in new[] { "set-permissions", "check", "start" })
        {
            var p = Run.Program(postfix, ["-c", s.ConfigDir, step]);
            Assert.That(p.ExitCode, Is.EqualTo(0), $"postfix {step}: {p.Stdout} {p.Stderr}");
        }
        var up = Wait.UntilAsync(() =>
        {
            try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, s.Port); return true; }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30)).Result;
        Assert.That(up, Is.True, "postfix did not start listening");
        return s;
    }

    /// <summary>The smtp service on 127.0.0.1:PORT; every service out of chroot.</summary>
    private static string RewriteMasterCf(string text, int port)
    {
        var lines = new List<string>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#' || char.IsWhiteSpace(line[0])) { lines.Add(line); continue; }
            var f = Regex.Split(line.Trim(), @"\s+");
            if (f.Length < 8) { lines.Add(line); continue; }
            if (f[0] == "smtp" && f[1] == "inet") f[0] = $"127.0.0.1:{port}";
            else if (f[1] == "inet") continue; // no other network listeners
            f[4] = "n";
            lines.Add(string.Join(' ', f));
        }
        return string.Join('\n', lines);
    }

    public string Log() => File.Exists(MailLog) ? File.ReadAllText(MailLog) : "";


    public void Dispose()
    {
        var pidFile = Path.Combine(Dir["queue"], "pid", "master.pid");
        Run.Program(_postfix, ["-c", ConfigDir, "stop"]);
        if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                if (!p.WaitForExit(10_000)) p.Kill(entireProcessTree: true);
            }
            catch (ArgumentException) { }
        }
        Dir.Dispose();
    }
}
