using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Lmtp;

/// <summary>The built lmtpd as its own process: killed mid-burst, and fed a 1 GiB message.</summary>
[NonParallelizable]
public sealed class LmtpProcessTests
{
    private AuthDServer _authd = null!;
    private Process _lmtpd = null!;
    private int _port;

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        StartLmtpd();
        Assert.That(await Wait.UntilAsync(async () =>
        {
            try { using var t = new TcpClient(); await t.ConnectAsync(IPAddress.Loopback, _port); return true; }
            catch (SocketException) { return false; }
        }, TimeSpan.FromSeconds(30)), Is.True, "lmtpd did not start");
    }

    private void StartLmtpd()
    {
        _port = Ports.Free();
        File.WriteAllText(_authd.Dir["lmtpd.conf"], $"""
            listen = 127.0.0.1:{_port}
            socket =
            authd_socket = {_authd.Socket}
            max_message_size = 10M
            log_file = {_authd.Dir["lmtpd.log"]}
            sieve_before =
            sieve_after =
            """);
        _lmtpd = Process.Start(new ProcessStartInfo(Repo.Program("lmtpd")) { ArgumentList = { "--config", _authd.Dir["lmtpd.conf"] }, UseShellExecute = false })!;
    }

    [TearDown]
    public async Task Stop()
    {
        if (!_lmtpd.HasExited) { _lmtpd.Kill(); _lmtpd.WaitForExit(10_000); }
        _lmtpd.Dispose();
        await _authd.DisposeAsync();
    }

    private string Maildir => Path.Combine(_authd.Dir["mail"], "example.org", "bob");

    [Test]
    public async Task Sigkill_mid_burst_loses_no_acknowledged_message_and_shows_no_partial_one()
    {
        var acked = new System.Collections.Concurrent.ConcurrentBag<int>();
        var body = new string('x', 70) + "\r\n";
        var big = string.Concat(Enumerable.Repeat(body, 400)); // ~28 KiB per message
        using var stop = new CancellationTokenSource();
        async Task Client(int c)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, _port);
                var s = tcp.GetStream();
                var r = new StreamReader(s, Encoding.ASCII);
                await r.ReadLineAsync();
                await s.WriteAsync(Encoding.ASCII.GetBytes("LHLO burst\r\n"));
                while ((await r.ReadLineAsync())![3] == '-') { }
                for (int i = 0; i < 200 && !stop.IsCancellationRequested; i++)
                {
                    int n = c * 1000 + i;
                    await s.WriteAsync(Encoding.ASCII.GetBytes($"MAIL FROM:<a@b.c>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"));
                    await r.ReadLineAsync(); await r.ReadLineAsync(); await r.ReadLineAsync();
                    await s.WriteAsync(Encoding.ASCII.GetBytes($"Subject: msg-{n}\r\n\r\n{big}END-{n}\r\n.\r\n"));
                    var reply = await r.ReadLineAsync();
                    if (reply?.StartsWith("250") == true) acked.Add(n);
                    else return;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or NullReferenceException or ObjectDisposedException) { }
        }
        var clients = Enumerable.Range(0, 4).Select(Client).ToList();
        Assert.That(await Wait.UntilAsync(() => acked.Count >= 40, TimeSpan.FromSeconds(60)), Is.True, "the burst did not get going");
        _lmtpd.Kill(); // SIGKILL, in the middle of the burst
        stop.Cancel();
        await Task.WhenAll(clients);

        var files = System.IO.Directory.GetFiles(Path.Combine(Maildir, "new")).Concat(System.IO.Directory.GetFiles(Path.Combine(Maildir, "cur"))).ToList();
        var byNumber = new Dictionary<int, string>();
        foreach (var f in files)
        {
            var text = File.ReadAllText(f);
            var m = System.Text.RegularExpressions.Regex.Match(text, @"Subject: msg-(\d+)\n");
            Assert.That(m.Success, Is.True, $"{f} has no subject: partial file visible");
            var n = int.Parse(m.Groups[1].Value);
            Assert.That(text, Does.EndWith($"END-{n}\n"), $"{f} is not whole");
            Assert.That(new FileInfo(f).Length.ToString(), Is.EqualTo(System.Text.RegularExpressions.Regex.Match(f, @",S=(\d+)").Groups[1].Value));
            byNumber[n] = f;
        }
        foreach (var n in acked)
            Assert.That(byNumber.ContainsKey(n), Is.True, $"message {n} was acknowledged with 250 but is not in the Maildir");
        TestContext.Out.WriteLine($"{acked.Count} acknowledged, {files.Count} in new/");
    }

    [Test]
    public async Task One_gib_message_is_refused_with_bounded_memory()
    {
        long PeakKb() => long.Parse(File.ReadLines($"/proc/{_lmtpd.Id}/status").First(l => l.StartsWith("VmHWM:"))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _port);
        var s = tcp.GetStream();
        var r = new StreamReader(s, Encoding.ASCII);
        await r.ReadLineAsync();
        await s.WriteAsync(Encoding.ASCII.GetBytes("LHLO big\r\n"));
        while ((await r.ReadLineAsync())![3] == '-') { }
        await s.WriteAsync(Encoding.ASCII.GetBytes("MAIL FROM:<a@b.c>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"));
        Assert.That(await r.ReadLineAsync(), Does.StartWith("250"));
        Assert.That(await r.ReadLineAsync(), Does.StartWith("250"));
        Assert.That(await r.ReadLineAsync(), Does.StartWith("354"));
        var before = PeakKb();
        var line = Encoding.ASCII.GetBytes(new string('m', 1022) + "\r\n");
        var chunk = new byte[line.Length * 1024]; // 1 MiB of lines
        for (int i = 0; i < 1024; i++) line.CopyTo(chunk, i * line.Length);
        for (int i = 0; i < 1024; i++) await s.WriteAsync(chunk);
        // And one line of 64 MiB without a line end, which must not be buffered whole either.
        var noEol = new byte[1 << 20];
        Array.Fill(noEol, (byte)'n');
        for (int i = 0; i < 64; i++) await s.WriteAsync(noEol);
        await s.WriteAsync(Encoding.ASCII.GetBytes("\r\n.\r\n"));
        Assert.That(await r.ReadLineAsync(), Does.StartWith("552 5.3.4"));
        var growth = PeakKb() - before;
        TestContext.Out.WriteLine($"lmtpd peak memory grew by {growth} KiB while receiving 1 GiB");
        Assert.That(growth, Is.LessThan(64 * 1024), "memory must not grow with the message");
        Assert.That(System.IO.Directory.GetFiles(Path.Combine(Maildir, "new")), Is.Empty);
        Assert.That(System.IO.Directory.GetFiles(Path.Combine(Maildir, "tmp")), Is.Empty);
        await s.WriteAsync(Encoding.ASCII.GetBytes("NOOP\r\n"));
        Assert.That(await r.ReadLineAsync(), Does.StartWith("250"));
    }
}
