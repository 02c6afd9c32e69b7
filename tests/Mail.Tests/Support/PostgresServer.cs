// A private PostgreSQL for a test: its own data folder and socket folder,
// 127.0.0.1 on a free port, run as the postgres user (it refuses root), and
// stopped by pg_ctl (which signals the postmaster's process id).
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Mail.Tests.Support;

internal sealed class PostgresServer : IAsyncDisposable
{
    public TempDir Dir { get; } = new();
    public int Port { get; }
    private readonly string _bin;
    private string DataDir => Dir["data"];

    public string ConnectionString(string database = "postfix") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Timeout=3;Command Timeout=5";

    private PostgresServer(string bin, int port)
    {
        _bin = bin;
        Port = port;
    }

    /// <summary>A new server with database postfix, loaded with PostfixAdmin 3.3's schema unless <paramref name="withSchema"/> is false (PostfixAdmin's setup.php makes it).</summary>
    public static async Task<PostgresServer> StartAsync(bool withSchema = true)
    {
        var versions = Directory.Exists("/usr/lib/postgresql") ? Directory.GetDirectories("/usr/lib/postgresql") : [];
        var bin = versions.Select(v => Path.Combine(v, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb"))).OrderDescending().FirstOrDefault();
        if (bin == null)
        {
            var msg = "PostgreSQL server is not installed (the test script installs it)";
            if (Peers.InCi) Assert.Fail(msg); else Assert.Ignore(msg);
        }
        var s = new PostgresServer(bin!, Ports.Free());
        File.SetUnixFileMode(s.Dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        Run.Program("chown", ["postgres:postgres", s.Dir.Path]);
        var init = s.AsPostgres("initdb", "-D", s.DataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
        Assert.That(init.ExitCode, Is.EqualTo(0), init.Stdout + init.Stderr);
        s.Start();
        await using var conn = new NpgsqlConnection(s.ConnectionString("postgres"));
        await conn.OpenAsync();
        await using (var cmd = new NpgsqlCommand("CREATE DATABASE postfix", conn)) await cmd.ExecuteNonQueryAsync();
        if (!withSchema) return s;
        await using var db = new NpgsqlConnection(s.ConnectionString());
        await db.OpenAsync();
        var schema = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Resources", "postfixadmin-3.3-pgsql.sql"));
        await using (var cmd = new NpgsqlCommand(schema, db)) await cmd.ExecuteNonQueryAsync();
        return s;
    }

    public void Start()
    {
        var r = AsPostgres("pg_ctl", "-D", DataDir, "-l", Path.Combine(Dir.Path, "postgres.log"), "-w", "-t", "60",
            "-o", $"-k {Dir.Path} -c listen_addresses=127.0.0.1 -p {Port} -c fsync=off", "start");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
    }

    public void Stop()
    {
        var r = AsPostgres("pg_ctl", "-D", DataDir, "-m", "immediate", "-w", "stop");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
    }

    public async Task ExecAsync(string sql, params object[] args)
    {
        await using var db = new NpgsqlConnection(ConnectionString());
        await db.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, db);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task<T?> ScalarAsync<T>(string sql, params object[] args)
    {
        await using var db = new NpgsqlConnection(ConnectionString());
        await db.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, db);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        return (T?)await cmd.ExecuteScalarAsync();
    }

    private RunResult AsPostgres(string program, params string[] args)
    {
        var path = Path.Combine(_bin, program);
        return Environment.UserName == "root"
            ? Run.Program("runuser", ["-u", "postgres", "--", path, .. args])
            : Run.Program(path, args);
    }


    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        var pid = Path.Combine(DataDir, "postmaster.pid");
        if (File.Exists(pid)) AsPostgres("pg_ctl", "-D", DataDir, "-m", "immediate", "-w", "stop");
        await Task.CompletedTask;
        Dir.Dispose();
    }
}
