// The start and stop of every daemon of the suite: load and check the
// configuration (or handle --print-config / --print-reference), set up the
// log, build the host, run it until SIGTERM. A configuration fault found
// while building is reported and exits 78 (EX_CONFIG).
//
// Under systemd (Type=notify) the daemon says READY=1 once it listens,
// STOPPING=1 when it begins to stop, and, with WatchdogSec=, WATCHDOG=1 from
// the thread pool at half the interval: a daemon whose pool is stuck is
// restarted. SIGHUP re-reads the configuration file: a file that does not
// load is refused with a log line and the running configuration stays; what
// the daemon can apply live (the TLS certificate, the log level) is applied,
// and the other changed settings are named as waiting for a restart.
using System.Runtime.InteropServices;
using Mail.Shared.Logging;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;

namespace Mail.Shared.Config;

public static partial class Daemon
{
    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint SetSignalHandler(int signal, nint handler);

    private const int SigHup = 1;
    private const nint SigDfl = 0;

    private static readonly List<(IReadOnlyCollection<string> Keys, Action<MailConfig> Apply)> Reloaders = [];

    /// <summary>
    /// What the daemon applies of a new configuration at SIGHUP: <paramref name="keys"/> are the
    /// settings it takes live; <paramref name="apply"/> may throw ConfigException to refuse the
    /// whole reload (a certificate that does not load).
    /// </summary>
    public static IDisposable OnReload(IReadOnlyCollection<string> keys, Action<MailConfig> apply)
    {
        var entry = (keys, apply);
        lock (Reloaders) Reloaders.Add(entry);
        return new Registration(() => { lock (Reloaders) Reloaders.Remove(entry); });
    }

    private sealed class Registration(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }

    public static async Task<int> RunAsync(string program, IReadOnlyList<Setting> settings, string[] args,
        Func<MailConfig, WebApplication> build, Func<MailConfig, string> describe)
    {
        var config = ProgramArgs.Load(program, settings, args, out var exit);
        if (config == null) return exit;
        MailLog.Configure(program, LogTarget(config), config.Get("log_level"));
        var log = MailLog.For(program);
        Mail.Shared.Metrics.MailMetrics.Start(program);
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
        var systemd = new SystemdNotifier();
        if (systemd.IsEnabled)
        {
            systemd.Notify(ServiceState.Ready);
            app.Lifetime.ApplicationStopping.Register(() => systemd.Notify(ServiceState.Stopping));
        }
        using var watchdog = Watchdog(systemd);
        var running = config;
        var reloading = new SemaphoreSlim(1, 1);
        // Started under nohup (a shell's background job), SIGHUP is ignored and the runtime would
        // leave it so: the daemon takes it back, to reload.
        SetSignalHandler(SigHup, SigDfl);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, signal =>
        {
            signal.Cancel = true; // SIGHUP would end the process otherwise
            _ = Task.Run(async () =>
            {
                await reloading.WaitAsync().ConfigureAwait(false);
                try { running = Reload(program, settings, running, systemd); }
                finally { reloading.Release(); }
            });
        });
        log.Info("started: " + describe(config));
        // Once the start is over, its garbage and the pages of code only the start ran are given back.
        _ = Task.Delay(Mail.Shared.Net.IdleMemoryTrim.Quiet, app.Lifetime.ApplicationStopping)
            .ContinueWith(t => { if (!t.IsCanceled) Mail.Shared.Net.IdleMemoryTrim.Trim(); }, TaskScheduler.Default);
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        log.Info("stopped");
        NLog.LogManager.Shutdown();
        return 0;
    }

    /// <summary>log_file as MailLog takes it: "syslog", a path (relative to the configuration's folder), or empty.</summary>
    private static string LogTarget(MailConfig config) =>
        config.Get("log_file") == MailLog.Syslog ? MailLog.Syslog : config.GetPath("log_file");

    /// <summary>WATCHDOG=1 at half of systemd's WatchdogSec (WATCHDOG_USEC), from a timer on the thread pool.</summary>
    private static Timer? Watchdog(SystemdNotifier systemd)
    {
        if (!systemd.IsEnabled || !long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out var usec) || usec <= 0) return null;
        if (int.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_PID"), out var pid) && pid != Environment.ProcessId) return null;
        var period = TimeSpan.FromMicroseconds(usec / 2);
        var alive = new ServiceState("WATCHDOG=1");
        return new Timer(_ => systemd.Notify(alive), null, TimeSpan.Zero, period);
    }

    /// <summary>The configuration file read again and applied where it can be; the configuration now running.</summary>
    private static MailConfig Reload(string program, IReadOnlyList<Setting> settings, MailConfig running, SystemdNotifier systemd)
    {
        var log = MailLog.For(program);
        if (systemd.IsEnabled) systemd.Notify(new ServiceState("RELOADING=1"));
        try
        {
            var next = MailConfig.Load(program, settings, running.FilePath);
            List<(IReadOnlyCollection<string> Keys, Action<MailConfig> Apply)> reloaders;
            lock (Reloaders) reloaders = [.. Reloaders];
            foreach (var (_, apply) in reloaders) apply(next);
            if (next.Get("log_level") != running.Get("log_level") || LogTarget(next) != LogTarget(running))
                MailLog.Configure(program, LogTarget(next), next.Get("log_level"));
            var live = reloaders.SelectMany(r => r.Keys).Concat(["log_level", "log_file"]).ToHashSet();
            var waiting = settings.Select(s => s.Key).Where(k => !live.Contains(k) && next.Get(k) != running.Get(k)).ToList();
            log.Info($"reloaded {running.FilePath}" + (waiting.Count > 0 ? $"; changed, in force at the next restart: {string.Join(", ", waiting)}" : ""));
            return next;
        }
        catch (Exception e) when (e is ConfigException or FormatException or IOException or System.Security.Cryptography.CryptographicException)
        {
            log.Error($"reload refused, the running configuration stays: {MailLog.Safe(e.Message, 500)}");
            return running;
        }
        finally
        {
            if (systemd.IsEnabled) systemd.Notify(ServiceState.Ready);
        }
    }
}
