// Opens the directory that authd.conf names: the passwd-file trio or
// PostgreSQL in PostfixAdmin's schema. Used by AuthD and by mailctl.
using Mail.Shared.Config;

namespace Mail.Shared.UserDirectory;

public static class DirectoryFactory
{
    public static IMailDirectory Open(MailConfig authdConfig)
    {
        var scheme = authdConfig.Get("default_pass_scheme");
        if (!Passwords.PasswordScheme.IsKnown(scheme))
            throw new ConfigException($"{authdConfig.Program}: unknown default_pass_scheme '{scheme}'; known: {string.Join(' ', Passwords.PasswordScheme.Schemes)}");
        return Driver(authdConfig);
    }

    private static IMailDirectory Driver(MailConfig authdConfig) => authdConfig.Get("directory_driver") switch
    {
        "pgsql" => new PgsqlDirectory(authdConfig.Get("pgsql_connection"), authdConfig.Get("default_pass_scheme")),
        _ => new FileDirectory(new FileDirectoryOptions(
            authdConfig.GetPath("passwd_file"), authdConfig.GetPath("aliases_file"), authdConfig.GetPath("domains_file"),
            authdConfig.Get("default_pass_scheme"))),
    };
}
