using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Mail.Tests.Support;
using MailKit.Net.Imap;
using MailKit.Net.Smtp;
using MimeKit;

namespace Mail.Tests.Deploy;

/// <summary>
/// The Debian package on this machine, as an administrator meets it: built from the checkout
/// (deploy/debian/build, NativeAOT), installed with apt, its daemons started as their users
/// with the command lines of its units, a message in through SMTP and out through IMAP,
/// then removed (configuration and mail kept) and purged (configuration gone, mail kept).
/// Listeners are moved to loopback ports by the daemons' environment overrides.
/// </summary>
[NonParallelizable]
public sealed class DebianPackageTests
{
    private static readonly string[] Daemons = ["authd", "lmtpd", "imappopd", "mtad"];
    private readonly List<Process> _running = [];
    private string _scratch = null!;
    /// <summary>A domain of this run only, taken out of the directory files again at the end.</summary>
    private readonly string _domain = $"p{Guid.NewGuid():N}"[..9] + ".test";
    private string Bob => "bob@" + _domain;

    [SetUp]
    public void RequireRoot()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/apt-get"))
        {
            if (Peers.InCi) Assert.Fail("the package test needs root and apt-get");
            Assert.Ignore("the package test needs root and apt-get");
        }
        _scratch = Directory.CreateTempSubdirectory("deb-").FullName;
        File.SetUnixFileMode(_scratch, (UnixFileMode)Convert.ToInt32("777", 8));
    }

    [TearDown]
    public void Stop()
    {
        foreach (var p in _running)
        {
            if (!p.HasExited) { p.Kill(); p.WaitForExit(); }
            p.Dispose();
        }
        Apt("purge", "mail-suite");
        Directory.Delete(_scratch, recursive: true);
        foreach (var file in new[] { "/etc/mail/passwd", "/etc/mail/domains", "/etc/mail/virtual" })
            if (File.Exists(file)) File.WriteAllLines(file, File.ReadAllLines(file).Where(l => !l.Contains(_domain)));
        if (Directory.Exists("/var/mail/vmail/" + _domain)) Directory.Delete("/var/mail/vmail/" + _domain, recursive: true);
    }

    private static RunResult Apt(params string[] args) =>
        Run.Program("/usr/bin/apt-get", ["-y", "-q", .. args], timeoutMs: 600_000, env: new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" });

    private static string Sh(string command)
    {
        var r = Run.Program("/bin/sh", ["-c", command]);
        Assert.That(r.ExitCode, Is.EqualTo(0), $"{command}: {r.Stdout}{r.Stderr}");
        return r.Stdout.Trim();
    }

    /// <summary>KEY=VALUE of the installed unit's [Service] section.</summary>
    private static string UnitValue(string daemon, string key) =>
        Regex.Match(File.ReadAllText($"/lib/systemd/system/{daemon}.service"), $@"^{key}=(.*)$", RegexOptions.Multiline).Groups[1].Value;

    /// <summary>The daemon as its unit runs it: ExecStart as User and Group, with the environment given.</summary>
    private Process StartAsUnit(string daemon, Dictionary<string, string> env)
    {
        var exec = UnitValue(daemon, "ExecStart").Split(' ');
        var psi = new ProcessStartInfo("/usr/bin/setpriv") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "--reuid=" + UnitValue(daemon, "User"), "--regid=" + UnitValue(daemon, "Group"), "--init-groups", "--" }.Concat(exec)) psi.ArgumentList.Add(a);
        // The capability the unit grants (binding ports below 1024) is not needed on the test's ports.
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        _running.Add(p);
        return p;
    }

    private static async Task WaitForUnixSocket(string path, Process p)
    {
        var up = await Wait.UntilAsync(async () =>
        {
            if (p.HasExited) return true;
            try
            {
                using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(path));
                return true;
            }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30));
        Assert.That(up && !p.HasExited, Is.True, $"{path}: {(p.HasExited ? await p.StandardError.ReadToEndAsync() : "not listening")}");
    }

    private static async Task WaitForPort(int port, Process p)
    {
        var up = await Wait.UntilAsync(async () =>
        {
            if (p.HasExited) return true;
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync("127.0.0.1", port);
                return true;
            }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30));
        Assert.That(up && !p.HasExited, Is.True, $"port {port}: {(p.HasExited ? await p.StandardError.ReadToEndAsync() : "not listening")}");
    }

    [Test]
    [Timeout(2_400_000)] // the NativeAOT build of six programs takes minutes
    public async Task Package_installs_carries_mail_in_and_out_and_removes_cleanly()
    {
        var build = Run.Program(Path.Combine(Repo.Root, "deploy", "debian", "build"), [], timeoutMs: 1_800_000);
        Assert.That(build.ExitCode, Is.EqualTo(0), build.Stderr);
        var deb = build.Stdout.Trim().Split('\n')[^1];
        Assert.That(deb, Does.EndWith("_amd64.deb"));
        Apt("purge", "mail-suite"); // a run before may have left it
        var install = Apt("install", deb);
        Assert.That(install.ExitCode, Is.EqualTo(0), install.Stdout + install.Stderr);

        // Users, folders, conffiles, units.
        foreach (var user in new[] { "mail-authd", "mail-mta", "vmail" })
            Assert.That(Sh($"id -gn {user}"), Is.EqualTo("mail"), user);
        Assert.That(Sh("stat -c '%U:%G %a' /var/spool/mail-suite"), Is.EqualTo("mail-mta:mail 750"));
        Assert.That(Sh("stat -c '%U:%G %a' /var/mail/vmail"), Does.Match("^vmail:mail 2?750$"), "setgid from /var/mail is fine");
        Assert.That(Sh("stat -c '%U:%G %a' /etc/mail/tls/key.pem"), Is.EqualTo("root:mail 640"));
        Assert.That(Sh("stat -c '%U:%G %a' /etc/mail/passwd"), Is.EqualTo("root:mail 640"));
        var conffiles = Sh("dpkg-query -W -f='${Conffiles}' mail-suite");
        foreach (var d in Daemons) Assert.That(conffiles, Does.Contain($"/etc/mail/{d}.conf"));
        Assert.That(conffiles, Does.Contain("/etc/fail2ban/jail.d/mail-authd.conf"));
        var verify = Run.Program(Peers.Require("systemd-analyze"), ["verify", "--man=no", .. Daemons.Select(d => $"/lib/systemd/system/{d}.service")]);
        Assert.That(verify.ExitCode, Is.EqualTo(0), verify.Stdout + verify.Stderr);
        Assert.That(File.Exists("/usr/lib/mail-suite/mtad") && File.Exists("/usr/bin/mailctl"), Is.True);
        Assert.That(Sh("/usr/bin/mailctl --help"), Does.Contain("Administer the mail suite"));

        // A domain and a mailbox, as root with mailctl.
        Sh($"mailctl domain add {_domain}");
        var add = Run.Program("/usr/bin/mailctl", ["user", "add", Bob], stdin: "bob's pass\nbob's pass\n");
        Assert.That(add.ExitCode, Is.EqualTo(0), add.Stdout + add.Stderr);

        // The daemons as their units start them; /run/mail as the units' RuntimeDirectory makes it.
        Sh("install -d -o root -g mail -m 0770 /run/mail");
        var (mx, submission, imap) = (Ports.Free(), Ports.Free(), Ports.Free());
        Dictionary<string, string> Env(string daemon, params (string Key, string Value)[] more)
        {
            var env = new Dictionary<string, string> { [$"{daemon.ToUpperInvariant()}_LOG_FILE"] = Path.Combine(_scratch, daemon + ".log") };
            foreach (var (k, v) in more) env[$"{daemon.ToUpperInvariant()}_{k}"] = v;
            return env;
        }
        var authd = StartAsUnit("authd", Env("authd"));
        await WaitForUnixSocket("/run/mail/authd.sock", authd);
        var lmtpd = StartAsUnit("lmtpd", Env("lmtpd"));
        await WaitForUnixSocket("/run/mail/lmtp", lmtpd);
        var imappopd = StartAsUnit("imappopd", Env("imappopd", ("IMAP_LISTEN", $"127.0.0.1:{imap}"), ("IMAPS_LISTEN", ""), ("POP3_LISTEN", ""),
            ("POP3S_LISTEN", ""), ("MANAGESIEVE_LISTEN", "")));
        await WaitForPort(imap, imappopd);
        var mtad = StartAsUnit("mtad", Env("mtad", ("MX_LISTEN", $"127.0.0.1:{mx}"), ("SUBMISSION_LISTEN", $"127.0.0.1:{submission}"),
            ("SUBMISSIONS_LISTEN", ""), ("HOSTNAME", "mx.example.org")));
        await WaitForPort(mx, mtad);
        // Resident memory once each has settled (its start-up trim, a few seconds after it listens): printed, not asserted.
        long Rss(Process p) => long.Parse(Sh($"grep VmRSS /proc/{p.Id}/status").Split(' ', '\t').Where(w => w.Length > 0).ElementAt(1));
        foreach (var (daemon, process) in new[] { ("authd", authd), ("lmtpd", lmtpd), ("imappopd", imappopd), ("mtad", mtad) })
        {
            var started = Rss(process);
            await Wait.UntilAsync(() => Rss(process) < started * 3 / 4, TimeSpan.FromSeconds(15));
            TestContext.Out.WriteLine($"{daemon} (NativeAOT) resident: {started} kB after start, {Rss(process)} kB settled");
        }

        // In through SMTP with AUTH on submission, out through IMAP, the same bytes.
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(Bob));
        message.To.Add(MailboxAddress.Parse(Bob));
        message.Subject = "through the package";
        message.Body = new TextPart("plain") { Text = "installed with apt\n" };
        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync("127.0.0.1", submission, MailKit.Security.SecureSocketOptions.None);
            await smtp.AuthenticateAsync(Bob, "bob's pass");
            await smtp.SendAsync(message);
            await smtp.DisconnectAsync(true);
        }
        using var client = new ImapClient();
        await client.ConnectAsync("127.0.0.1", imap, MailKit.Security.SecureSocketOptions.None);
        await client.AuthenticateAsync(Bob, "bob's pass");
        await client.Inbox.OpenAsync(MailKit.FolderAccess.ReadOnly);
        Assert.That(await Wait.UntilAsync(async () => { await client.NoOpAsync(); return client.Inbox.Count == 1; }, TimeSpan.FromSeconds(30)), Is.True,
            File.ReadAllText(Path.Combine(_scratch, "mtad.log")));
        var got = await client.Inbox.GetMessageAsync(0);
        Assert.That(got.Subject, Is.EqualTo("through the package"));
        Assert.That(got.TextBody, Is.EqualTo("installed with apt\n"));
        await client.DisconnectAsync(true);
        Assert.That(Sh($"stat -c '%U' /var/mail/vmail/{_domain}/bob/cur /var/mail/vmail/{_domain}/bob/new | sort -u"), Is.EqualTo("vmail"));

        // `mailctl status` as the administrator runs it: every daemon through its metrics socket.
        Assert.That(Sh("stat -c '%U:%G %a' /run/mail/mtad.metrics"), Is.EqualTo("mail-mta:mail 660"));
        var status = Run.Program("/usr/bin/mailctl", ["status"]);
        Assert.That(status.ExitCode, Is.EqualTo(0), status.Stdout + status.Stderr);
        foreach (var d in Daemons) Assert.That(status.Stdout, Does.Match($"(?m)^{d} +running for "), status.Stdout);
        Assert.That(status.Stdout, Does.Contain("messages: accepted 1").And.Contain("deliveries: delivered 1").And.Contain("lmtp sent 1"), status.Stdout);
        Assert.That(status.Stdout, Does.Match("logins: .*smtp ok 1").And.Match("logins: .*imap ok 1"), status.Stdout);

        foreach (var p in _running) { Sh($"kill -TERM {p.Id}"); Assert.That(p.WaitForExit(30_000), Is.True); }

        // Upgrade (the package installed over itself runs the same maintainer scripts): the
        // administrator's change to a conffile, the directory and the mail stay.
        File.AppendAllText("/etc/mail/mtad.conf", "\n# changed by the administrator\nmax_message_size = 20M\n");
        var upgrade = Apt("install", "--reinstall", deb);
        Assert.That(upgrade.ExitCode, Is.EqualTo(0), upgrade.Stdout + upgrade.Stderr);
        Assert.That(File.ReadAllText("/etc/mail/mtad.conf"), Does.Contain("max_message_size = 20M"));
        Assert.That(File.ReadAllText("/etc/mail/passwd"), Does.Contain(Bob));
        Assert.That(Directory.GetFiles($"/var/mail/vmail/{_domain}/bob/cur").Concat(Directory.GetFiles($"/var/mail/vmail/{_domain}/bob/new")).ToList(), Has.Count.EqualTo(1));

        // Remove: the programs go, configuration and mail stay.
        var remove = Apt("remove", "mail-suite");
        Assert.That(remove.ExitCode, Is.EqualTo(0), remove.Stdout + remove.Stderr);
        Assert.That(File.Exists("/usr/lib/mail-suite/mtad"), Is.False);
        Assert.That(File.Exists("/etc/mail/mtad.conf"), Is.True);
        Assert.That(Directory.Exists($"/var/mail/vmail/{_domain}/bob/cur"), Is.True);
        // Purge: the configuration goes too; mail, the directory and the queue stay.
        var purge = Apt("purge", "mail-suite");
        Assert.That(purge.ExitCode, Is.EqualTo(0), purge.Stdout + purge.Stderr);
        Assert.That(File.Exists("/etc/mail/mtad.conf") || File.Exists("/etc/mail/tls/key.pem"), Is.False);
        Assert.That(Directory.Exists($"/var/mail/vmail/{_domain}/bob/cur"), Is.True);
        Assert.That(File.ReadAllText("/etc/mail/passwd"), Does.Contain(Bob));
    }
}
