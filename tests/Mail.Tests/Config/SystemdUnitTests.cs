using System.Globalization;
using System.Text.RegularExpressions;
using Mail.Tests.Support;

namespace Mail.Tests.Config;

/// <summary>
/// The units of deploy/systemd as systemd reads them: `systemd-analyze verify` finds nothing
/// to say with the programs where the units expect them, and `systemd-analyze security` rates
/// each sandbox OK (exposure 2.0 or less).
/// </summary>
public sealed class SystemdUnitTests
{
    private static readonly string[] Daemons = ["authd", "lmtpd", "imappopd", "mtad"];

    private static string Unit(string daemon) => Path.Combine(Repo.Root, "deploy", "systemd", daemon + ".service");

    [TestCaseSource(nameof(Daemons))]
    public void Sandbox_is_rated_ok(string daemon)
    {
        var r = Run.Program(Peers.Require("systemd-analyze"), ["security", "--offline=true", "--no-pager", Unit(daemon)]);
        var m = Regex.Match(r.Stdout + r.Stderr, @"Overall exposure level for \S+: (\d+\.\d+) (\w+)");
        Assert.That(m.Success, Is.True, r.Stdout + r.Stderr);
        TestContext.Out.WriteLine($"{daemon}: exposure {m.Groups[1].Value} {m.Groups[2].Value}");
        Assert.That(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Is.LessThanOrEqualTo(2.0), r.Stdout);
    }

    [Test]
    public void Units_verify_clean_with_the_programs_installed()
    {
        // A root with systemd's own units, the programs at /usr/lib/mail-suite and ours in /etc/systemd/system.
        var root = Directory.CreateTempSubdirectory("units-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "usr/lib/mail-suite"));
            Directory.CreateDirectory(Path.Combine(root, "etc/systemd/system"));
            Directory.CreateDirectory(Path.Combine(root, "bin"));
            Directory.CreateDirectory(Path.Combine(root, "lib/systemd"));
            Assert.That(Run.Program("/bin/cp", ["-a", "/lib/systemd/system", Path.Combine(root, "lib/systemd/system")]).ExitCode, Is.EqualTo(0));
            File.Copy("/bin/kill", Path.Combine(root, "bin/kill"));
            foreach (var d in Daemons)
            {
                File.Copy(Repo.Program(d), Path.Combine(root, "usr/lib/mail-suite", d));
                File.Copy(Unit(d), Path.Combine(root, "etc/systemd/system", d + ".service"));
            }
            var r = Run.Program(Peers.Require("systemd-analyze"), ["verify", "--root=" + root, "--man=no", .. Daemons.Select(d => d + ".service")]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
            Assert.That((r.Stdout + r.Stderr).Trim(), Is.Empty);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [TestCaseSource(nameof(Daemons))]
    public void Unit_waits_for_readiness_has_a_watchdog_and_reloads_by_sighup(string daemon)
    {
        var text = File.ReadAllText(Unit(daemon));
        Assert.That(text, Does.Contain("\nType=notify\n"));
        Assert.That(text, Does.Match(@"\nWatchdogSec=\d+s\n"));
        Assert.That(text, Does.Contain("\nExecReload=/bin/kill -HUP $MAINPID\n"));
        Assert.That(text, Does.Contain($"\nExecStart=/usr/lib/mail-suite/{daemon} --config /etc/mail/{daemon}.conf\n"));
    }
}
