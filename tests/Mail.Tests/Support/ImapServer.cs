// A private imappopd for a test, in-process, on a free loopback port (plain
// with STARTTLS) and another (implicit TLS), logging in through the test's AuthD.
using Mail.ImapPop;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Support;

internal sealed class ImapServer : IAsyncDisposable
{
    public required WebApplication App { get; init; }
    public required int Port { get; init; }
    public required int TlsPort { get; init; }
    public required int Pop3Port { get; init; }
    public required int SievePort { get; init; }

    public static async Task<ImapServer> StartAsync(AuthDServer authd, string extraConfig = "")
    {
        var (port, tlsPort, pop3Port, sievePort) = (Ports.Free(), Ports.Free(), Ports.Free(), Ports.Free());
        Certificates.EnsureSelfSigned(authd.Dir["cert.pem"], authd.Dir["key.pem"], "localhost");
        var conf = authd.Dir["imappopd.conf"];
        File.WriteAllText(conf, $"""
            imap_listen = 127.0.0.1:{port}
            imaps_listen = 127.0.0.1:{tlsPort}
            pop3_listen = 127.0.0.1:{pop3Port}
            pop3s_listen =
            managesieve_listen = 127.0.0.1:{sievePort}
            tls_cert = {authd.Dir["cert.pem"]}
            tls_key = {authd.Dir["key.pem"]}
            authd_socket = {authd.Socket}
            hostname = imap.test
            {extraConfig}
            """);
        var config = MailConfig.Load("imappopd", ImapSettings.Settings, conf, new System.Collections.Hashtable());
        var app = ImapHost.Build(config);
        await app.StartAsync();
        return new ImapServer { App = app, Port = port, TlsPort = tlsPort, Pop3Port = pop3Port, SievePort = sievePort };
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
