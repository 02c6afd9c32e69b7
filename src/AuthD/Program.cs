// AuthD: the only reader of the user directory. Serves SASL, user look-ups
// and recipient resolution over gRPC on a Unix socket (mode 0660).
using System.Globalization;
using Mail.AuthD;
using Mail.AuthD.Sasl;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.UserDirectory;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using NLog.Extensions.Logging;

var config = ProgramArgs.Load("authd", AuthDSettings.Settings, args, out var exit);
if (config == null) return exit;
MailLog.Configure("authd", config.GetPath("log_file"), config.Get("log_level"));
var log = MailLog.For("authd");

WebApplication app;
try
{
    app = AuthDHost.Build(config);
    await app.StartAsync();
}
catch (ConfigException e)
{
    Console.Error.WriteLine(e.Message);
    return 78;
}
log.Info($"started: directory={config.Get("directory_driver")}, grpc=unix:{config.GetPath("grpc_socket")}");
await app.WaitForShutdownAsync();
log.Info("stopped");
NLog.LogManager.Shutdown();
return 0;

namespace Mail.AuthD
{
    internal static class AuthDHost
    {
        /// <summary>Builds the AuthD web host from its configuration (tests start it in-process).</summary>
        public static WebApplication Build(MailConfig config)
        {
            var socket = config.GetPath("grpc_socket");
            var mode = ParseMode(config.Get("socket_mode"));
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.AddNLog();
            builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
            builder.Logging.AddFilter("Grpc", LogLevel.Warning);
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.AddServerHeader = false;
                LineListener.PrepareUnixSocket(socket);
                k.ListenUnixSocket(socket, lo => lo.Protocols = HttpProtocols.Http2);
            });
            builder.Services.AddGrpc(o =>
            {
                o.MaxReceiveMessageSize = 64 * 1024;
                o.MaxSendMessageSize = 1 << 20;
                o.EnableDetailedErrors = false;
            });

            IMailDirectory directory = new FileDirectory(new FileDirectoryOptions(
                config.GetPath("passwd_file"), config.GetPath("aliases_file"), config.GetPath("domains_file")));
            var accounts = new Accounts(directory, new AccountDefaults(
                config.GetPath("mail_root"), (uint)config.GetInt("mail_uid"), (uint)config.GetInt("mail_gid"),
                config.GetSize("default_quota"), config.Get("recipient_delimiter")));
            var throttle = new LoginThrottle(config.GetDuration("auth_failure_delay"),
                config.GetDuration("auth_failure_delay_max"), config.GetDuration("auth_failure_window"));
            var mechanisms = config.GetList("auth_mechanisms").Select(m => m.ToUpperInvariant()).ToList();
            foreach (var m in mechanisms)
                if (!SaslMechanism.Known.Contains(m))
                    throw new ConfigException($"authd: unknown SASL mechanism '{m}' in 'auth_mechanisms'");
            builder.Services.AddSingleton(accounts);
            builder.Services.AddSingleton(new SaslServer(new Credentials(directory), throttle, mechanisms, config.Get("hostname")));
            builder.Services.AddSingleton(new RecipientResolver(accounts,
                (int)config.GetInt("alias_recursion_limit"), (int)config.GetInt("alias_expansion_limit")));

            var app = builder.Build();
            app.MapGrpcService<AuthService>();
            app.Lifetime.ApplicationStarted.Register(() => LineListener.SetSocketMode(socket, mode));
            app.Lifetime.ApplicationStopped.Register(() => { try { File.Delete(socket); } catch (IOException) { } });
            return app;
        }

        private static UnixFileMode ParseMode(string text)
        {
            try
            {
                var mode = Convert.ToInt32(text, 8);
                if (mode is >= 0 and <= 0x1FF) return (UnixFileMode)mode;
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { }
            throw new ConfigException($"authd: bad value '{text}' for 'socket_mode': must be an octal mode such as 0660");
        }
    }
}
