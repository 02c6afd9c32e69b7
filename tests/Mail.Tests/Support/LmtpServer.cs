// A private lmtpd for a test, in-process, on a free loopback port and a Unix
// socket in the AuthD test folder, asking that AuthD about recipients.
using System.Net;
using System.Net.Sockets;
using Mail.Lmtp;
using Mail.Shared.Config;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Support;

internal sealed class LmtpServer : IAsyncDisposable
{
    public required WebApplication App { get; init; }
    public required int Port { get; init; }
    public required string Socket { get; init; }

    public static async Task<LmtpServer> StartAsync(AuthDServer authd, string extraConfig = "", string name = "lmtp", int port = 0)
    {
        if (port == 0) port = Ports.Free();
        var socket = authd.Dir["run/" + name];
        var conf = authd.Dir[name + "d.conf"];
        // The administrator's scripts in the test's own folder (never the system's), the spam rule among them.
        var sieveRoot = authd.Dir["sieve"];
        Mail.Sieve.SieveDefaults.InstallSpamToJunk(Path.Combine(sieveRoot, "before.d"));
        var sieveConfig = extraConfig.Contains("sieve_before", StringComparison.Ordinal) ? "" : $"""
            sieve_before = {sieveRoot}/before.d
            sieve_after = {sieveRoot}/after.d
            sieve_global_dir = {sieveRoot}/global
            """;
        if (!extraConfig.Contains("pickup_socket", StringComparison.Ordinal)) sieveConfig += $"\npickup_socket = {authd.Dir["run/pickup"]}";
        // Tests change users between messages: every recipient is asked of AuthD (a test of the cache sets it).
        if (!extraConfig.Contains("user_cache_ttl", StringComparison.Ordinal)) sieveConfig += "\nuser_cache_ttl = 0";
        File.WriteAllText(conf, $"""
            listen = 127.0.0.1:{port}
            socket = {socket}
            socket_mode = 0666
            authd_socket = {authd.Socket}
            hostname = mx.test
            {sieveConfig}
            {extraConfig}
            """);
        var config = MailConfig.Load("lmtpd", LmtpSettings.Settings, conf, new System.Collections.Hashtable());
        var app = LmtpHost.Build(config);
        await app.StartAsync();
        return new LmtpServer { App = app, Port = port, Socket = socket };
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
