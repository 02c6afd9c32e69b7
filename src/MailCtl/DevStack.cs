// mailctl up: the dev stack of DESIGN.md. Lays out one data folder (default
// ./var/dev) on first start: configuration, a passwd-file directory, the
// Maildir store, run/ sockets, logs and a self-signed certificate. Then starts
// every program of the suite on 127.0.0.1, prints where each listens, and
// stops them all on Ctrl-C or SIGTERM (or when one of them dies). With
// --only it starts some of them, so that one can be stopped and started alone.
using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Net;

namespace Mail.MailCtl;

internal static class DevStack
{
    /// <summary>One program of the stack: its executable, its configuration and what to print.</summary>
    internal sealed record Service(string Program, string ConfigText, Func<string, IEnumerable<string>> Listens, Func<string, CancellationToken, Task<bool>> Ready);

    public static Command Build()
    {
        var dir = new Option<string>("--dir", "-d") { Description = "Data folder of the dev stack", DefaultValueFactory = _ => Path.Combine("var", "dev") };
        var only = new Option<string[]>("--only")
        {
            Description = "Start only these programs (authd, lmtpd, mtad, imappopd), e.g. to stop and start one of them while the rest run in another `mailctl up --only`",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("up", "Run every program of the suite on the dev defaults until Ctrl-C") { dir, only };
        cmd.SetAction((parse, ct) => CtlContext.RunAsync(() => UpAsync(Path.GetFullPath(parse.GetValue(dir)!),
            parse.GetValue(only)?.SelectMany(o => o.Split(',', StringSplitOptions.RemoveEmptyEntries)).ToHashSet())));
        return cmd;
    }

    internal static IReadOnlyList<Service> Services(string root) =>
    [
        new("authd",
            $"""
            # AuthD on the dev stack; see `authd --print-reference` for every parameter.
            grpc_socket = {root}/run/authd.sock
            dovecot_auth_socket = {root}/run/auth-client
            dovecot_userdb_socket = {root}/run/auth-userdb
            socketmap_socket = {root}/run/socketmap
            passwd_file = {root}/data/passwd
            aliases_file = {root}/data/virtual
            domains_file = {root}/data/domains
            mail_root = {root}/mail
            mail_uid = {Geteuid()}
            mail_gid = {Getegid()}
            log_file = {root}/log/authd.log
            metrics_listen = unix:{root}/run/authd.metrics
            """,
            r => [$"gRPC          unix:{r}/run/authd.sock",
                  $"dovecot-auth  unix:{r}/run/auth-client   (Postfix: smtpd_sasl_type = dovecot)",
                  $"dovecot-userdb unix:{r}/run/auth-userdb  (Dovecot: auth_socket_path, for its lmtp, imap and doveadm)",
                  $"socketmap     unix:{r}/run/socketmap     (Postfix: socketmap:unix:...:domains|mailboxes|aliases)"],
            AuthReadyAsync),
        new("lmtpd",
            $"""
            # LMTP delivery on the dev stack; see `lmtpd --print-reference` for every parameter.
            listen = 127.0.0.1:2424
            socket = {root}/run/lmtp.sock
            authd_socket = {root}/run/authd.sock
            pickup_socket = {root}/run/pickup
            sieve_before = {root}/sieve/before.d
            sieve_after = {root}/sieve/after.d
            sieve_global_dir = {root}/sieve/global
            log_file = {root}/log/lmtpd.log
            metrics_listen = unix:{root}/run/lmtpd.metrics
            """,
            r => [$"LMTP          127.0.0.1:2424 and unix:{r}/run/lmtp.sock   (Postfix: virtual_transport = lmtp:unix:{r}/run/lmtp.sock)"],
            (_, ct) => GreetsAsync(2424, "220", ct)),
        new("mtad",
            $"""
            # The MTA on the dev stack; see `mtad --print-reference` for every parameter.
            mx_listen = 127.0.0.1:2525
            submission_listen = 127.0.0.1:2587
            submissions_listen = 127.0.0.1:2465
            tls_cert = {root}/tls/cert.pem
            tls_key = {root}/tls/key.pem
            mynetworks =
            authd_socket = {root}/run/authd.sock
            spool_dir = {root}/spool
            lmtp_destination = unix:{root}/run/lmtp.sock
            pickup_socket = {root}/run/pickup
            control_socket = {root}/run/mtad.ctl
            dkim_key_dir = {root}/dkim
            hostname = localhost
            log_file = {root}/log/mtad.log
            metrics_listen = unix:{root}/run/mtad.metrics
            # Mail for other domains stays queued on the dev stack; for a server that sends it,
            # remove this line and set hostname to the name its IP address resolves to.
            defer_transports = smtp
            """,
            r => ["SMTP (MX)     127.0.0.1:2525", "submission    127.0.0.1:2587   (STARTTLS, AUTH)", "submissions   127.0.0.1:2465   (implicit TLS, AUTH)",
                  $"pickup        unix:{r}/run/pickup   (sendmail: MAIL_PICKUP_SOCKET={r}/run/pickup)"],
            (_, ct) => GreetsAsync(2525, "220", ct)),
        new("imappopd",
            $"""
            # IMAP on the dev stack; see `imappopd --print-reference` for every parameter.
            imap_listen = 127.0.0.1:2143
            imaps_listen = 127.0.0.1:2993
            pop3_listen = 127.0.0.1:2110
            pop3s_listen = 127.0.0.1:2995
            managesieve_listen = 127.0.0.1:2419
            tls_cert = {root}/tls/cert.pem
            tls_key = {root}/tls/key.pem
            authd_socket = {root}/run/authd.sock
            hostname = localhost
            log_file = {root}/log/imappopd.log
            metrics_listen = unix:{root}/run/imappopd.metrics
            """,
            _ => ["IMAP          127.0.0.1:2143   (STARTTLS)", "IMAPS         127.0.0.1:2993", "POP3          127.0.0.1:2110   (STLS)", "POP3S         127.0.0.1:2995", "ManageSieve   127.0.0.1:2419   (STARTTLS)"],
            (_, ct) => GreetsAsync(2143, "* OK", ct)),
    ];

    /// <summary>True once a TCP service answers with its greeting.</summary>
    private static async Task<bool> GreetsAsync(int port, string code, CancellationToken ct)
    {
        try
        {
            using var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(System.Net.IPAddress.Loopback, port, ct);
            using var reader = new StreamReader(tcp.GetStream());
            var line = await reader.ReadLineAsync(ct);
            return line?.StartsWith(code, StringComparison.Ordinal) == true;
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<int> UpAsync(string root, HashSet<string>? only)
    {
        var unknown = only?.Where(o => Services(root).All(s => s.Program != o)).ToList();
        if (unknown is { Count: > 0 })
        {
            Console.Error.WriteLine($"mailctl: --only: no program named {string.Join(", ", unknown)} (authd, lmtpd, mtad, imappopd)");
            return CtlContext.ExitUsage;
        }
        foreach (var sub in new[] { "etc", "data", "mail", "run", "log", "tls" })
            Directory.CreateDirectory(Path.Combine(root, sub));
        foreach (var file in new[] { "passwd", "virtual", "domains" })
        {
            var path = Path.Combine(root, "data", file);
            if (!File.Exists(path)) File.WriteAllText(path, "");
        }
        File.SetUnixFileMode(Path.Combine(root, "data", "passwd"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Certificates.EnsureSelfSigned(Path.Combine(root, "tls", "cert.pem"), Path.Combine(root, "tls", "key.pem"), "localhost");
        Mail.Sieve.SieveDefaults.InstallSpamToJunk(Path.Combine(root, "sieve", "before.d"));

        var services = Services(root);
        foreach (var s in services)
        {
            var conf = Path.Combine(root, "etc", s.Program + ".conf");
            if (!File.Exists(conf)) File.WriteAllText(conf, s.ConfigText + "\n");
            // Fail early, with the program's own message, on a bad configuration.
            if (s.Program == "authd") MailConfig.Load("authd", AuthDSettings.Settings, conf);
        }

        using var stopping = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stopping.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopping.Cancel(); });

        var running = new List<(Service Service, Process Process)>();
        int exit = 0;
        try
        {
            foreach (var s in services.Where(s => only == null || only.Count == 0 || only.Contains(s.Program)))
            {
                var process = Start(s.Program, Path.Combine(root, "etc", s.Program + ".conf"));
                running.Add((s, process));
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
                wait.CancelAfter(TimeSpan.FromSeconds(30));
                while (!await s.Ready(root, wait.Token))
                {
                    if (process.HasExited)
                    {
                        Console.Error.WriteLine($"mailctl: {s.Program} exited with status {process.ExitCode}; see {root}/log/{s.Program}.log");
                        return CtlContext.ExitSoftware;
                    }
                    if (wait.IsCancellationRequested)
                    {
                        if (stopping.IsCancellationRequested) return 0;
                        Console.Error.WriteLine($"mailctl: {s.Program} did not become ready in 30 s");
                        return CtlContext.ExitSoftware;
                    }
                    await Task.Delay(100, CancellationToken.None);
                }
            }
            Console.WriteLine($"dev stack up in {root}{(only is { Count: > 0 } ? " (" + string.Join(", ", running.Select(r => r.Service.Program)) + " only)" : "")}");
            foreach (var (s, p) in running)
                foreach (var line in s.Listens(root))
                    Console.WriteLine($"  {s.Program,-8} {line}   (pid {p.Id})");
            Console.WriteLine($"  logs     {root}/log/\nmailctl: Ctrl-C stops the stack");

            var exited = Task.WhenAny(running.Select(r => r.Process.WaitForExitAsync()));
            await Task.WhenAny(exited, Task.Delay(Timeout.Infinite, stopping.Token).ContinueWith(_ => { }));
            foreach (var (s, p) in running)
                if (p.HasExited && !stopping.IsCancellationRequested)
                {
                    Console.Error.WriteLine($"mailctl: {s.Program} exited with status {p.ExitCode}; stopping the stack");
                    exit = CtlContext.ExitSoftware;
                }
        }
        finally
        {
            await StopAllAsync(running.Select(r => r.Process).ToList());
        }
        Console.WriteLine("mailctl: dev stack stopped");
        return exit;
    }

    private static Process Start(string program, string config)
    {
        var dir = AppContext.BaseDirectory;
        var apphost = Path.Combine(dir, program);
        var psi = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(dir, program + ".dll") } };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(config);
        psi.UseShellExecute = false;
        psi.RedirectStandardInput = true;
        return Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {program}");
    }

    private static async Task StopAllAsync(IReadOnlyList<Process> processes)
    {
        foreach (var p in processes.Reverse())
            if (!p.HasExited) Kill(p.Id, 15);
        var deadline = Task.Delay(TimeSpan.FromSeconds(15));
        foreach (var p in processes)
        {
            var done = await Task.WhenAny(p.WaitForExitAsync(), deadline);
            if (done == deadline && !p.HasExited) p.Kill(entireProcessTree: true);
        }
    }

    private static async Task<bool> AuthReadyAsync(string root, CancellationToken ct)
    {
        var socket = Path.Combine(root, "run", "authd.sock");
        if (!File.Exists(socket)) return false;
        try
        {
            using var client = AuthClient.Connect(socket);
            await client.Api.MechanismsAsync(new MechanismsRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct);
            return true;
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException or HttpRequestException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint Geteuid();

    [DllImport("libc", EntryPoint = "getegid")]
    private static extern uint Getegid();
}
