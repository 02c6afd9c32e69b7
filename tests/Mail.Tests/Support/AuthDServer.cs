// A private AuthD for a test: its own folder with passwd-file, aliases,
// domains and gRPC socket, started in-process and stopped with the test.
using Mail.AuthD;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using Mail.Shared.UserDirectory;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Support;

internal sealed class AuthDServer : IAsyncDisposable
{
    public TempDir Dir { get; } = new();
    public WebApplication App { get; private set; } = null!;
    public AuthClient Client { get; private set; } = null!;
    public FileDirectory Admin { get; private set; } = null!;
    public string Socket => Dir["run/authd.sock"];
    public string DovecotAuthSocket => Dir["run/auth-client"];
    public string SocketmapSocket => Dir["run/socketmap"];
    public string LogFile => Dir["authd.log"];
    public string ConfigFile => Dir["authd.conf"];

    public static async Task<AuthDServer> StartAsync(string extraConfig = "", string directory = "")
    {
        var s = new AuthDServer();
        // Postfix's processes run as the postfix user and must reach the sockets.
        File.SetUnixFileMode(s.Dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        File.WriteAllText(s.ConfigFile, $"""
            grpc_socket = run/authd.sock
            dovecot_auth_socket = run/auth-client
            socketmap_socket = run/socketmap
            socket_mode = 0666
            passwd_file = passwd
            aliases_file = virtual
            domains_file = domains
            mail_root = mail
            mail_uid = 5000
            mail_gid = 5001
            auth_failure_delay = 50ms
            auth_failure_delay_max = 400ms
            auth_mechanisms = PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
            hostname = mx.test
            {directory}
            {extraConfig}
            """);
        File.WriteAllText(s.Dir["domains"], "example.org\n");
        File.WriteAllText(s.Dir["virtual"], "");
        File.WriteAllText(s.Dir["passwd"], "");
        MailLog.Configure("authd", s.LogFile, "Debug");
        var config = MailConfig.Load("authd", AuthDSettings.Settings, s.ConfigFile, new System.Collections.Hashtable());
        s.Admin = new FileDirectory(new FileDirectoryOptions(s.Dir["passwd"], s.Dir["virtual"], s.Dir["domains"]));
        s.App = AuthDHost.Build(config);
        await s.App.StartAsync();
        s.Client = AuthClient.Connect(s.Socket);
        return s;
    }

    public Task AddUserAsync(string address, string hash, long quota = 0, bool active = true) =>
        Admin.AddUserAsync(new DirectoryUser(address, hash, QuotaBytes: quota, Active: active));

    public string Log()
    {
        NLog.LogManager.Flush();
        return File.Exists(LogFile) ? File.ReadAllText(LogFile) : "";
    }

    public static ClientInfo Client_(string ip = "192.0.2.10", bool secured = true) =>
        new() { Service = "imap", RemoteIp = ip, Secured = secured, SessionId = "T" + Guid.NewGuid().ToString("N")[..8] };

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        if (App != null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
        Dir.Dispose();
    }
}
