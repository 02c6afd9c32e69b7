// The command line every daemon of the suite shares:
//   PROGRAM [--config FILE] [--print-config] [--print-reference]
// The configuration file defaults to /etc/mail/PROGRAM.conf when it exists.
namespace Mail.Shared.Config;

public static class ProgramArgs
{
    /// <summary>
    /// Loads the configuration, or handles a printing option. Returns null with
    /// <paramref name="exitCode"/> set when the program should exit at once.
    /// </summary>
    public static MailConfig? Load(string program, IReadOnlyList<Setting> settings, string[] args, out int exitCode)
    {
        exitCode = 0;
        string? path = null;
        bool printConfig = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-c" or "--config" when i + 1 < args.Length: path = args[++i]; break;
                case "--print-config": printConfig = true; break;
                case "--print-reference":
                    Console.Write(MailConfig.Reference(program, settings));
                    return null;
                case "-h" or "--help":
                    Console.WriteLine($"usage: {program} [--config FILE] [--print-config] [--print-reference]");
                    return null;
                default:
                    Console.Error.WriteLine($"{program}: unknown argument '{args[i]}'");
                    exitCode = 64;
                    return null;
            }
        }
        var fallback = $"/etc/mail/{program}.conf";
        if (path == null && File.Exists(fallback)) path = fallback;
        MailConfig config;
        try
        {
            config = MailConfig.Load(program, settings, path);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine(e.Message);
            exitCode = 78; // EX_CONFIG
            return null;
        }
        if (printConfig)
        {
            Console.Write(config.NonDefaults());
            return null;
        }
        return config;
    }
}
