using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;
using Mail.Tests.Support;

namespace Mail.Tests.Faults;

/// <summary>
/// The whole path as separate processes (authd, mtad, lmtpd), one of them killed with SIGKILL
/// again and again while 20 senders deliver a burst through the MX. Every message that got a
/// 250 must reach the Maildir; the counts go to the test log and to build/test-results/faults.txt.
/// </summary>
[NonParallelizable]
public sealed class SigkillTests
{
    private const int Senders = 20;

    [TestCase("lmtpd", 5, 5000)]
    [TestCase("mtad", 10, 5000)]
    [TestCase("authd", 5, 3000)]
    public async Task Sigkill_loop_during_a_burst_loses_no_acknowledged_message(string victim, int kills, int total)
    {
        using var dir = new TempDir();
        var (mx, lmtpPort) = (Ports.Free(), Ports.Free());
        var files = Daemon.WriteAuthdConfig(dir);
        await files.AddUserAsync(new DirectoryUser("bob@example.org", PasswordScheme.Hash("x", "SSHA")));
        Daemon.WriteLmtpdConfig(dir, lmtpPort);
        File.WriteAllText(dir["mtad.conf"], $"""
            mx_listen = 127.0.0.1:{mx}
            submission_listen =
            submissions_listen =
            pickup_socket =
            authd_socket = {dir["run/authd.sock"]}
            spool_dir = {dir["spool"]}
            control_socket = {dir["run/mtad.ctl"]}
            lmtp_destination = 127.0.0.1:{lmtpPort}
            defer_transports = smtp
            retry_min = 1s
            retry_max = 2s
            max_connections_per_ip = {Senders * 2}
            log_file = {dir["mtad.log"]}
            """);
        using var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/authd.sock"]));
        using var lmtpd = new Daemon("lmtpd", dir["lmtpd.conf"], new IPEndPoint(IPAddress.Loopback, lmtpPort));
        using var mtad = new Daemon("mtad", dir["mtad.conf"], new IPEndPoint(IPAddress.Loopback, mx));
        await authd.StartAsync();
        await lmtpd.StartAsync();
        await mtad.StartAsync();
        var target = new[] { authd, lmtpd, mtad }.Single(d => d.Name == victim);

        var pending = new ConcurrentQueue<int>(Enumerable.Range(0, total));
        var acked = new ConcurrentBag<int>();
        var unanswered = new ConcurrentBag<int>(); // sent in full, then the connection broke: either outcome is right
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        var senders = Enumerable.Range(0, Senders).Select(_ => Task.Run(() => SendAsync(mx, pending, acked, unanswered, deadline))).ToList();
        for (int k = 1; k <= kills; k++)
        {
            var at = k * total / (kills + 1);
            Assert.That(await Wait.UntilAsync(() => acked.Count >= at || senders.All(s => s.IsCompleted), TimeSpan.FromMinutes(3)), Is.True, $"the burst stalled before kill {k}");
            target.Kill();
            await target.StartAsync();
        }
        await Task.WhenAll(senders);
        Assert.That(pending, Is.Empty, "every message was sent within the time");

        string Spool(string d) => Path.Combine(dir["spool"], d);
        int Queued() => new[] { "incoming", "active", "deferred" }.Sum(d => System.IO.Directory.Exists(Spool(d)) ? System.IO.Directory.GetFiles(Spool(d)).Length : 0);
        var maildir = Path.Combine(dir["mail"], "example.org", "bob");
        var drained = await Wait.UntilAsync(() => Queued() == 0, TimeSpan.FromMinutes(3));
        var copies = new Dictionary<int, int>();
        foreach (var f in System.IO.Directory.GetFiles(Path.Combine(maildir, "new")))
        {
            var text = File.ReadAllText(f);
            var m = Regex.Match(text, @"\nSubject: m-(\d+)\n");
            Assert.That(m.Success && text.EndsWith($"end-{m.Groups[1].Value}\n"), Is.True, $"{f} is not a whole message");
            var n = int.Parse(m.Groups[1].Value);
            copies[n] = copies.GetValueOrDefault(n) + 1;
        }
        var lost = acked.Where(n => !copies.ContainsKey(n)).Order().ToList();
        var duplicates = copies.Values.Sum(c => c - 1);
        var line = $"SIGKILL of {victim} x{kills} during a burst of {total} from {Senders} senders: {acked.Count} acknowledged, " +
                   $"{unanswered.Count} unanswered, {copies.Count} delivered, {duplicates} duplicates, {Queued()} queued, {lost.Count} lost";
        TestContext.Out.WriteLine(line);
        FaultReport.Add(line);

        Assert.That(lost, Is.Empty, "every message that got 250 is in the Maildir");
        Assert.That(acked.Count + unanswered.Count, Is.EqualTo(total));
        Assert.That(drained, Is.True, "the queue drains");
        Assert.That(copies.Keys.Except(acked).Except(unanswered), Is.Empty, "nothing delivered that was refused");
        Assert.That(System.IO.Directory.GetFiles(Spool("incoming")), Is.Empty, "nothing left in incoming/");
        Assert.That(System.IO.Directory.GetFiles(Path.Combine(maildir, "tmp")), Is.Empty, "nothing left in the Maildir's tmp/");
    }

    /// <summary>
    /// One sender: a session through the MX taking numbers off <paramref name="pending"/>. A message
    /// refused with 4xx, or cut off before its final dot, goes back on the queue; one whose dot was
    /// sent but got no answer is neither retried nor expected.
    /// </summary>
    private static async Task SendAsync(int port, ConcurrentQueue<int> pending, ConcurrentBag<int> acked, ConcurrentBag<int> unanswered, DateTime deadline)
    {
        while (!pending.IsEmpty && DateTime.UtcNow < deadline)
        {
            int n = -1;
            bool dotSent = false;
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, port);
                var s = tcp.GetStream();
                var r = new StreamReader(s, Encoding.ASCII);
                async Task<string> Reply()
                {
                    string? line;
                    do line = await r.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) ?? throw new IOException("closed");
                    while (line.Length > 3 && line[3] == '-');
                    return line;
                }
                async Task<string> Command(string c) { await s.WriteAsync(Encoding.ASCII.GetBytes(c + "\r\n")); return await Reply(); }
                if (!(await Reply()).StartsWith("220")) throw new IOException("no greeting");
                if (!(await Command("EHLO sender.test")).StartsWith("250")) throw new IOException("EHLO refused");
                while (DateTime.UtcNow < deadline && pending.TryDequeue(out n))
                {
                    dotSent = false;
                    if (!(await Command("MAIL FROM:<a@remote.test>")).StartsWith("250")
                        || !(await Command("RCPT TO:<bob@example.org>")).StartsWith("250")
                        || !(await Command("DATA")).StartsWith("354"))
                    {
                        pending.Enqueue(n);
                        n = -1;
                        await Command("RSET");
                        await Task.Delay(20); // a temporary refusal (authd away): back off a little
                        continue;
                    }
                    await s.WriteAsync(Encoding.ASCII.GetBytes($"Subject: m-{n}\r\n\r\nbody of {n}\r\nend-{n}\r\n.\r\n"));
                    dotSent = true;
                    if ((await Reply()).StartsWith("250")) acked.Add(n);
                    else pending.Enqueue(n);
                    n = -1;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or TimeoutException or ObjectDisposedException)
            {
                if (n >= 0)
                {
                    if (dotSent) unanswered.Add(n);
                    else pending.Enqueue(n);
                }
                await Task.Delay(20); // the daemon is being restarted: try again shortly
            }
        }
    }
}

/// <summary>Lines of the fault suite's counts, gathered in build/test-results/faults.txt for test.sh to print.</summary>
internal static class FaultReport
{
    private static readonly Lock Gate = new();

    public static void Add(string line)
    {
        var dir = Path.Combine(Repo.Root, "build", "test-results");
        System.IO.Directory.CreateDirectory(dir);
        lock (Gate) File.AppendAllText(Path.Combine(dir, "faults.txt"), line + "\n");
    }
}
