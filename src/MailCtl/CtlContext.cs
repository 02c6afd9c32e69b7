// What every mailctl command needs: AuthD's configuration (which names the
// directory files and the gRPC socket), found as --config, $MAIL_AUTHD_CONFIG,
// the dev stack's ./var/dev/etc/authd.conf, or /etc/mail/authd.conf.
using System.CommandLine;
using Mail.Shared.Auth;
using Mail.Shared.Config;
using Mail.Shared.UserDirectory;

namespace Mail.MailCtl;

internal static class CtlContext
{
    public static readonly Option<string?> ConfigOption = new("--config", "-c")
    {
        Description = "AuthD's configuration file (authd.conf)",
        Recursive = true,
    };

    public const int ExitUsage = 64, ExitDataErr = 65, ExitUnavailable = 69, ExitSoftware = 70,
        ExitCantCreate = 73, ExitTempFail = 75, ExitNoPerm = 77, ExitConfig = 78;

    public static string? FindConfigPath(ParseResult parse)
    {
        var given = parse.GetValue(ConfigOption) ?? Environment.GetEnvironmentVariable("MAIL_AUTHD_CONFIG");
        if (!string.IsNullOrEmpty(given)) return given;
        foreach (var candidate in new[] { Path.Combine("var", "dev", "etc", "authd.conf"), "/etc/mail/authd.conf" })
            if (File.Exists(candidate)) return Path.GetFullPath(candidate);
        return null;
    }

    /// <summary>mtad.conf: as given, or $MAIL_MTAD_CONFIG, the dev stack's, /etc/mail's; the defaults when there is none.</summary>
    public static MailConfig LoadMtaConfig(string? given)
    {
        var path = given ?? Environment.GetEnvironmentVariable("MAIL_MTAD_CONFIG");
        if (string.IsNullOrEmpty(path))
            path = new[] { Path.Combine("var", "dev", "etc", "mtad.conf"), "/etc/mail/mtad.conf" }.FirstOrDefault(File.Exists);
        return MailConfig.Load("mtad", Mail.Queue.MtaSettings.Settings, path == null ? null : Path.GetFullPath(path));
    }

    public static MailConfig LoadConfig(ParseResult parse) =>
        MailConfig.Load("authd", AuthDSettings.Settings, FindConfigPath(parse));

    public static IDirectoryAdmin OpenDirectory(MailConfig config) => (IDirectoryAdmin)DirectoryFactory.Open(config);

    public static AuthClient ConnectAuth(MailConfig config) => AuthClient.Connect(config.GetPath("grpc_socket"));

    /// <summary>Runs a command body, turning the expected failures into a message and an exit code.</summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine(e.Message);
            return ExitConfig;
        }
        catch (DirectoryAdminException e)
        {
            Console.Error.WriteLine("mailctl: " + e.Message);
            return ExitDataErr;
        }
        catch (DirectoryUnavailableException e)
        {
            Console.Error.WriteLine("mailctl: directory unavailable: " + e.Message);
            return ExitTempFail;
        }
        catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded)
        {
            Console.Error.WriteLine($"mailctl: cannot reach authd: {e.Status.Detail}");
            return ExitUnavailable;
        }
    }
}
