// A private PostfixAdmin 3.3 (Debian's package) for a test: a copy of its tree
// in a folder of its own (PostfixAdmin reads config.local.php beside its
// config.inc.php), pointed at the test's PostgreSQL, with a setup password of
// the test's, its mail (the welcome message) sent to the test's MTA, and no
// DNS check of new domains. Served by PHP's built-in web server on a free
// loopback port; stopped by its process id.
using System.Diagnostics;

namespace Mail.Tests.Support;

internal sealed class PostfixAdminServer : IDisposable
{
    private const string Home = "/usr/share/postfixadmin";
    private readonly Process _php;
    private readonly TempDir _dir;
    public string Url { get; }

    private PostfixAdminServer(Process php, TempDir dir, int port) => (_php, _dir, Url) = (php, dir, $"http://127.0.0.1:{port}/");

    public string Log() => File.Exists(_dir["php.log"]) ? File.ReadAllText(_dir["php.log"]) : "";

    public static PostfixAdminServer Start(PostgresServer pg, int smtpPort, string setupPassword)
    {
        var php = Peers.Require("php");
        if (!File.Exists(Path.Combine(Home, "public", "setup.php"))) Peers.Require("postfixadmin");
        var dir = new TempDir();
        var root = dir["pfa"];
        var copy = Run.Program("cp", ["-r", Home + "/.", root]);
        Assert.That(copy.ExitCode, Is.Zero, copy.Stderr);
        foreach (var link in new[] { "config.inc.php", "config.local.php", "templates_c" }) File.Delete(Path.Combine(root, link));
        Directory.CreateDirectory(Path.Combine(root, "templates_c"));
        // Debian's config.inc.php, without its dbconfig-common credentials: the database is the test's.
        File.WriteAllText(Path.Combine(root, "config.inc.php"),
            File.ReadAllText("/etc/postfixadmin/config.inc.php").Replace("require_once('dbconfig.inc.php');", ""));
        var hash = Run.Program(php, ["-r", "echo password_hash($argv[1], PASSWORD_DEFAULT);", setupPassword]);
        Assert.That(hash.ExitCode, Is.Zero, hash.Stderr);
        File.WriteAllText(Path.Combine(root, "config.local.php"), $"""
            <?php
            $CONF['database_type'] = 'pgsql';
            $CONF['database_host'] = '127.0.0.1';
            $CONF['database_port'] = '{pg.Port}';
            $CONF['database_user'] = 'postgres';
            $CONF['database_password'] = '';
            $CONF['database_name'] = 'postfix';
            $CONF['setup_password'] = '{hash.Stdout.Trim()}';
            $CONF['admin_email'] = 'postmaster@example.org';
            $CONF['smtp_server'] = '127.0.0.1';
            $CONF['smtp_port'] = '{smtpPort}';
            $CONF['emailcheck_resolve_domain'] = 'NO';
            """);
        var port = Ports.Free();
        var psi = new ProcessStartInfo(php) { ArgumentList = { "-S", $"127.0.0.1:{port}", "-t", Path.Combine(root, "public") }, UseShellExecute = false,
            WorkingDirectory = Path.Combine(root, "public"), RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (dir) File.AppendAllText(dir["php.log"], e.Data + "\n"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (dir) File.AppendAllText(dir["php.log"], e.Data + "\n"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Assert.That(PeerProcess.Listening(process, port), Is.True, "php -S did not start");
        return new PostfixAdminServer(process, dir, port);
    }

    /// <summary>Runs a step of postfixadmin_browser.py in headless Chromium; its output, asserted to end well.</summary>
    public string Browse(params string[] args)
    {
        var run = Run.Program("/usr/bin/python3", [Path.Combine(Repo.Root, "tests", "Mail.Tests", "Resources", "postfixadmin_browser.py"), args[0], Url, .. args[1..]],
            timeoutMs: 120_000);
        Assert.That(run.ExitCode, Is.Zero, run.Stdout + run.Stderr + "\n--- php:\n" + Log());
        return run.Stdout;
    }

    public void Dispose()
    {
        if (!_php.HasExited) _php.Kill();
        _php.WaitForExit(10_000);
        _php.Dispose();
        _dir.Dispose();
    }
}
