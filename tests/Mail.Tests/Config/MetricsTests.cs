using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;
using Mail.Tests.Support;

namespace Mail.Tests.Config;

/// <summary>
/// The metrics endpoint as an administrator uses it: a real Prometheus, given the scrape jobs
/// of deploy/prometheus/mail-suite.yml, scrapes lmtpd and authd while mail goes through, and
/// its query API returns what happened; and the endpoint refuses to listen beyond loopback.
/// </summary>
public sealed class MetricsTests
{
    [Test]
    public async Task Prometheus_scrapes_the_documented_jobs_and_sees_deliveries_refusals_and_logins()
    {
        var prometheus = Peers.Require("prometheus");
        using var dir = new TempDir();
        var (lmtpPort, authdMetrics, lmtpdMetrics, web) = (Ports.Free(), Ports.Free(), Ports.Free(), Ports.Free());
        var files = Daemon.WriteAuthdConfig(dir, $"metrics_listen = 127.0.0.1:{authdMetrics}");
        await files.AddUserAsync(new DirectoryUser("bob@example.org", PasswordScheme.Hash("bob's pass", "SSHA")));
        Daemon.WriteLmtpdConfig(dir, lmtpPort, $"metrics_listen = 127.0.0.1:{lmtpdMetrics}");
        using var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/authd.sock"]));
        using var lmtpd = new Daemon("lmtpd", dir["lmtpd.conf"], new IPEndPoint(IPAddress.Loopback, lmtpPort));
        await authd.StartAsync();
        await lmtpd.StartAsync();

        // One message delivered, one recipient refused, one login that works and one that does not.
        var swaks = Peers.Require("swaks");
        var sent = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtpPort}", "--from", "a@remote.test",
            "--to", "bob@example.org", "--body", "counted", "--timeout", "30"]);
        Assert.That(sent.ExitCode, Is.Zero, sent.Stdout);
        var refused = Run.Program(swaks, ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtpPort}", "--from", "a@remote.test",
            "--to", "nobody@example.org", "--quit-after", "RCPT", "--timeout", "30"]);
        Assert.That(refused.Stdout, Does.Contain("550 5.1.1"));
        var mailctl = Repo.Program("mailctl");
        Assert.That(Run.Program(mailctl, ["--config", dir["authd.conf"], "auth", "test", "bob@example.org", "bob's pass"]).ExitCode, Is.Zero);
        Assert.That(Run.Program(mailctl, ["--config", dir["authd.conf"], "auth", "test", "bob@example.org", "wrong"]).ExitCode, Is.EqualTo(77));

        // Prometheus with the documented jobs, pointed at this test's ports, scraping every second.
        var jobs = File.ReadAllText(Path.Combine(Repo.Root, "deploy", "prometheus", "mail-suite.yml"))
            .Replace("127.0.0.1:9151", $"127.0.0.1:{authdMetrics}").Replace("127.0.0.1:9152", $"127.0.0.1:{lmtpdMetrics}");
        File.WriteAllText(dir["prometheus.yml"], "global:\n  scrape_interval: 1s\n" + jobs);
        using var server = Process.Start(new ProcessStartInfo(prometheus)
        {
            ArgumentList = { $"--config.file={dir["prometheus.yml"]}", $"--storage.tsdb.path={dir["tsdb"]}", $"--web.listen-address=127.0.0.1:{web}" },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        var log = new System.Text.StringBuilder();
        server.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        server.OutputDataReceived += (_, e) => { };
        server.BeginErrorReadLine();
        server.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{web}"), Timeout = TimeSpan.FromSeconds(10) };
            async Task<double?> Query(string promql)
            {
                try
                {
                    using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql)));
                    var result = doc.RootElement.GetProperty("data").GetProperty("result");
                    return result.GetArrayLength() == 0 ? null : double.Parse(result[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
                }
                catch (HttpRequestException) { return null; }
            }
            string Log() { lock (log) return log.ToString(); }
            Assert.That(await Wait.UntilAsync(async () => server.HasExited || await Query("sum(up{job=~\"mail-.*\"})") == 2, TimeSpan.FromSeconds(60)), Is.True,
                "both targets up: " + Log());
            Assert.That(server.HasExited, Is.False, Log());

            // Every scrape parsed (OpenMetrics, which Prometheus asks for): no target reports an error.
            using (var targets = JsonDocument.Parse(await http.GetStringAsync("/api/v1/targets")))
                foreach (var t in targets.RootElement.GetProperty("data").GetProperty("activeTargets").EnumerateArray()
                             .Where(t => t.GetProperty("labels").GetProperty("job").GetString() is "mail-authd" or "mail-lmtpd"))
                    Assert.That(t.GetProperty("lastError").GetString(), Is.Empty, t.GetProperty("scrapeUrl").GetString());

            Assert.That(await Query("mail_deliveries_total{job=\"mail-lmtpd\",outcome=\"delivered\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_refusals_total{job=\"mail-lmtpd\",command=\"RCPT\",status=\"5.1.1\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_delivery_seconds_count{job=\"mail-lmtpd\",outcome=\"delivered\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_delivery_seconds_bucket{job=\"mail-lmtpd\",outcome=\"delivered\",le=\"+Inf\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_connections_total{job=\"mail-lmtpd\",listener=\"lmtp\"}"), Is.GreaterThanOrEqualTo(2));
            Assert.That(await Query("mail_logins_total{job=\"mail-authd\",service=\"mailctl\",outcome=\"ok\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_logins_total{job=\"mail-authd\",service=\"mailctl\",outcome=\"failed\"}"), Is.EqualTo(1));
            Assert.That(await Query("mail_resident_memory_bytes{job=\"mail-lmtpd\"}"), Is.GreaterThan(1 << 20));
            Assert.That(await Query("mail_daemon_info{job=\"mail-authd\",daemon=\"authd\"}"), Is.EqualTo(1));
        }
        finally
        {
            if (!server.HasExited) server.Kill();
            server.WaitForExit(10_000);
        }
    }

    [Test]
    public void An_endpoint_beyond_loopback_is_refused_at_start()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["lmtpd.conf"], $"""
            listen = 127.0.0.1:{Ports.Free()}
            socket =
            authd_socket = {dir["run/authd.sock"]}
            metrics_listen = 0.0.0.0:{Ports.Free()}
            """);
        var run = Run.Program(Repo.Program("lmtpd"), ["--config", dir["lmtpd.conf"]], timeoutMs: 30_000);
        Assert.That(run.ExitCode, Is.EqualTo(78), run.Stdout + run.Stderr);
        Assert.That(run.Stderr, Does.Contain("'metrics_listen' must be a loopback address or a Unix socket"));
    }
}
