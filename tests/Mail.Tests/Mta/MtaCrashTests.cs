using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Mta;

/// <summary>mtad killed with SIGKILL at random moments of an ingest, restarted, and the mail counted.</summary>
[NonParallelizable]
public sealed class MtaCrashTests
{
    [Test]
    public async Task Sigkill_during_ingest_loses_no_acknowledged_message()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        await using var lmtp = await LmtpServer.StartAsync(authd);
        var port = Ports.Free();
        File.WriteAllText(authd.Dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{port}
            submission_listen =
            submissions_listen =
            pickup_socket =
            authd_socket = {authd.Socket}
            spool_dir = {authd.Dir["spool"]}
            control_socket = {authd.Dir["run/mtad.ctl"]}
            lmtp_destination = 127.0.0.1:{lmtp.Port}
            defer_transports = smtp
            retry_min = 1s
            retry_max = 1s
            log_file = {authd.Dir["mtad.log"]}
            """);
        Process StartMta() => Process.Start(new ProcessStartInfo(Repo.Program("mtad")) { ArgumentList = { "--config", authd.Dir["mtad.conf"] }, UseShellExecute = false })!;
        async Task<bool> Up() => await Wait.UntilAsync(async () =>
        {
            try { using var t = new TcpClient(); await t.ConnectAsync(IPAddress.Loopback, port); return true; }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30));

        var mta = StartMta();
        Assert.That(await Up(), Is.True);
        var acked = new System.Collections.Concurrent.ConcurrentBag<int>();
        int next = -1;
        const int total = 2000;
        var random = new Random(12345);
        async Task Client()
        {
            while (Volatile.Read(ref next) < total)
            {
                try
                {
                    using var tcp = new TcpClient();
                    await tcp.ConnectAsync(IPAddress.Loopback, port);
                    var s = tcp.GetStream();
                    var r = new StreamReader(s, Encoding.ASCII);
                    if ((await r.ReadLineAsync())?.StartsWith("220") != true) continue;
                    await s.WriteAsync(Encoding.ASCII.GetBytes("EHLO crash.test\r\n"));
                    while ((await r.ReadLineAsync())?[3] == '-') { }
                    while (true)
                    {
                        int n = Interlocked.Increment(ref next);
                        if (n >= total) return;
                        await s.WriteAsync(Encoding.ASCII.GetBytes($"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"));
                        if ((await r.ReadLineAsync())?.StartsWith("250") != true) break;
                        if ((await r.ReadLineAsync())?.StartsWith("250") != true) break;
                        if ((await r.ReadLineAsync())?.StartsWith("354") != true) break;
                        await s.WriteAsync(Encoding.ASCII.GetBytes($"Subject: m-{n}\r\n\r\nbody of {n}\r\n.\r\n"));
                        if ((await r.ReadLineAsync())?.StartsWith("250") == true) acked.Add(n);
                        else break;
                    }
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { await Task.Delay(20); }
            }
        }
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(Client)).ToList();
        for (int kill = 0; kill < 3; kill++)
        {
            await Task.Delay(random.Next(200, 700));
            mta.Kill(); // SIGKILL
            mta.WaitForExit();
            mta.Dispose();
            mta = StartMta();
            Assert.That(await Up(), Is.True, "mtad restarts after SIGKILL");
        }
        await Task.WhenAll(clients);
        try
        {
            string[] Delivered() => System.IO.Directory.GetFiles(Path.Combine(authd.Dir["mail"], "example.org", "bob", "new"));
            bool QueueEmpty() => new[] { "incoming", "active", "deferred" }.All(d => System.IO.Directory.GetFiles(authd.Dir["spool/" + d]).Length == 0);
            Assert.That(await Wait.UntilAsync(QueueEmpty, TimeSpan.FromSeconds(120)), Is.True, "the queue drains");
            var counts = new Dictionary<int, int>();
            foreach (var f in Delivered())
            {
                var m = Regex.Match(File.ReadAllText(f), @"Subject: m-(\d+)\n");
                Assert.That(m.Success, Is.True, $"{f}: not a whole message");
                var n = int.Parse(m.Groups[1].Value);
                counts[n] = counts.GetValueOrDefault(n) + 1;
            }
            var lost = acked.Where(n => !counts.ContainsKey(n)).ToList();
            var duplicates = counts.Count(kv => kv.Value > 1);
            TestContext.Out.WriteLine($"{acked.Count} acknowledged, {counts.Count} distinct delivered, {duplicates} delivered more than once, {lost.Count} lost");
            Assert.That(acked.Count, Is.GreaterThan(total / 2), "the ingest ran");
            Assert.That(lost, Is.Empty, "every message that got 250 is delivered");
        }
        finally
        {
            mta.Kill();
            mta.WaitForExit();
            mta.Dispose();
        }
    }
}
