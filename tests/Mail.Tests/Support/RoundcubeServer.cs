// A private Roundcube 1.6 (Debian's package) for a test: PHP's built-in web
// server on a free loopback port, its configuration, SQLite database, temp
// and log folders in a folder of its own (ROUNDCUBE_CONFIG_DIR), pointed at
// the test's IMAP and ManageSieve ports, with the managesieve plugin and its
// out-of-office page. Stopped by its process id.
using System.Diagnostics;

namespace Mail.Tests.Support;

internal sealed class RoundcubeServer : IDisposable
{
    private const string Home = "/var/lib/roundcube/public_html";
    private readonly Process _php;
    private readonly TempDir _dir;
    public string Url { get; }

    private RoundcubeServer(Process php, TempDir dir, int port) => (_php, _dir, Url) = (php, dir, $"http://127.0.0.1:{port}/");

    public string Log() => string.Join('\n', new[] { "errors.log", "php.log" }.Select(f => _dir["logs/" + f]).Where(File.Exists).Select(File.ReadAllText));

    /// <summary>Roundcube's record of its IMAP dialogue (imap_debug): what it asked of the server.</summary>
    public string ImapLog() => File.Exists(_dir["logs/imap.log"]) ? File.ReadAllText(_dir["logs/imap.log"]) : "";

    public static RoundcubeServer Start(int imapPort, int sievePort)
    {
        var php = Peers.Require("php");
        if (!File.Exists(Path.Combine(Home, "index.php")) || !Directory.Exists("/usr/share/roundcube/plugins/managesieve"))
            Peers.Require("roundcube (roundcube-core, roundcube-plugins)");
        var dir = new TempDir();
        foreach (var sub in new[] { "config", "temp", "logs" }) Directory.CreateDirectory(dir[sub]);
        foreach (var f in new[] { "defaults.inc.php", "mimetypes.php" }) File.Copy(Path.Combine("/etc/roundcube", f), dir["config/" + f]);
        File.WriteAllText(dir["config/config.inc.php"], $"""
            <?php
            $config = [];
            $config['db_dsnw'] = 'sqlite:///{dir["roundcube.db"]}?mode=0646';
            $config['imap_host'] = '127.0.0.1:{imapPort}';
            $config['plugins'] = ['managesieve'];
            $config['managesieve_host'] = '127.0.0.1:{sievePort}';
            $config['managesieve_vacation'] = 1;
            $config['des_key'] = '{Guid.NewGuid().ToString("N")[..24]}';
            $config['temp_dir'] = '{dir["temp"]}/';
            $config['log_dir'] = '{dir["logs"]}/';
            $config['enable_installer'] = false;
            $config['skin'] = 'elastic';
            $config['imap_debug'] = true;
            """);
        var schema = Run.Program(php, ["-r", $"$db = new PDO('sqlite:{dir["roundcube.db"]}'); $db->exec(file_get_contents('/usr/share/roundcube/SQL/sqlite.initial.sql'));"]);
        Assert.That(schema.ExitCode, Is.Zero, schema.Stderr);
        var port = Ports.Free();
        var psi = new ProcessStartInfo(php) { ArgumentList = { "-S", $"127.0.0.1:{port}", "-t", Home }, UseShellExecute = false, WorkingDirectory = Home,
            RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["ROUNDCUBE_CONFIG_DIR"] = dir["config"];
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data != null) File.AppendAllText(dir["logs/php.log"], e.Data + "\n"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) File.AppendAllText(dir["logs/php.log"], e.Data + "\n"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Assert.That(PeerProcess.Listening(process, port), Is.True, "php -S did not start");
        return new RoundcubeServer(process, dir, port);
    }

    public void Dispose()
    {
        PeerProcess.Stop(_php);
        _dir.Dispose();
    }
}
