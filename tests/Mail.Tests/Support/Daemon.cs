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

    /// <summary>
    /// authd.conf in <paramref name="dir"/> for authd as a process: passwd-file users (the files made,
    /// example.org ours), Maildirs under mail/ owned by 5000:5001, the gRPC socket run/authd.sock, the
    /// other sockets off unless <paramref name="extra"/> sets them; the directory, to add users.
    /// </summary>
    public static Mail.Shared.UserDirectory.FileDirectory WriteAuthdConfig(TempDir dir, string extra = "")
    {
        File.WriteAllText(dir["authd.conf"], $"""
            grpc_socket = {dir["run/authd.sock"]}
            dovecot_auth_socket =
            socketmap_socket =
            passwd_file = {dir["passwd"]}
            aliases_file = {dir["virtual"]}
            domains_file = {dir["domains"]}
            mail_root = {dir["mail"]}
            mail_uid = 5000
            mail_gid = 5001
            log_file = {dir["authd.log"]}
            {extra}
            """);
        File.WriteAllText(dir["domains"], "example.org\n");
        File.WriteAllText(dir["virtual"], "");
        File.WriteAllText(dir["passwd"], "");
        return new Mail.Shared.UserDirectory.FileDirectory(new Mail.Shared.UserDirectory.FileDirectoryOptions(dir["passwd"], dir["virtual"], dir["domains"]));
    }

    /// <summary>lmtpd.conf in <paramref name="dir"/> for lmtpd as a process: TCP on <paramref name="port"/>, AuthD's run/authd.sock, no Sieve folders.</summary>
    public static void WriteLmtpdConfig(TempDir dir, int port, string extra = "") => File.WriteAllText(dir["lmtpd.conf"], $"""
        listen = 127.0.0.1:{port}
        socket =
        authd_socket = {dir["run/authd.sock"]}
        log_file = {dir["lmtpd.log"]}
        sieve_before =
        sieve_after =
        {extra}
        """);
}
