// The start and stop of every daemon of the suite: load and check the
// configuration (or handle --print-config / --print-reference), set up the
// log, build the host, run it until SIGTERM. A configuration fault found
// while building is reported and exits 78 (EX_CONFIG).
using Mail.Shared.Logging;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Mail.Shared.Config;

public static class Daemon
{
    public static async Task<int> RunAsync(string program, IReadOnlyList<Setting> settings, string[] args,
        Func<MailConfig, WebApplication> build, Func<MailConfig, string> describe)
    {
        var config = ProgramArgs.Load(program, settings, args, out var exit);
        if (config == null) return exit;
        MailLog.Configure(program, config.Get("log_file") == MailLog.Syslog ? MailLog.Syslog : config.GetPath("log_file"), config.Get("log_level"));
        var log = MailLog.For(program);
        WebApplication app;
        try
        {
            app = build(config);
            await app.StartAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is ConfigException or FormatException)
        {
            Console.Error.WriteLine(e.Message);
            return 78;
        }
        log.Info("started: " + describe(config));
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        log.Info("stopped");
        NLog.LogManager.Shutdown();
        return 0;
    }
}
