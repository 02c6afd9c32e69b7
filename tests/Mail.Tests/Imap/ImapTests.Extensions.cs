using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailKit;
using MailKit.Net.Imap;
using Mail.Tests.Support;
using MailKit.Search;
using MimeKit;

namespace Mail.Tests.Imap;

/// <summary>The IMAP extensions a client uses, driven by MailKit: COMPRESS=DEFLATE, SORT, THREAD.</summary>
public sealed partial class ImapTests
{
    [Test]
    public async Task A_compressed_session_reads_sorts_threads_and_appends()
    {
        Deliver("bob@example.org", "Re: plans", "second");
        Deliver("bob@example.org", "agenda", "first");
        using var client = await LoginAsync();
        Assert.That(client.Capabilities.HasFlag(ImapCapabilities.Compress), Is.True);
        await client.CompressAsync();
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var sorted = await inbox.SortAsync(SearchQuery.All, [OrderBy.Subject]);
        var summaries = await inbox.FetchAsync(sorted, MessageSummaryItems.Envelope);
        Assert.That(summaries.OrderBy(s => sorted.IndexOf(s.UniqueId)).Select(s => s.Envelope.Subject), Is.EqualTo(new[] { "agenda", "Re: plans" }));
        var threads = await inbox.ThreadAsync(ThreadingAlgorithm.OrderedSubject, SearchQuery.All);
        Assert.That(threads, Has.Count.EqualTo(2));
        var message = new MimeMessage { Subject = "appended compressed", Body = new TextPart("plain") { Text = new string('x', 100_000) } };
        message.From.Add(MailboxAddress.Parse("bob@example.org"));
        await inbox.AppendAsync(message);
        await inbox.CheckAsync();
        Assert.That(inbox.Count, Is.EqualTo(3));
        var stored = await inbox.GetMessageAsync(2);
        Assert.That(stored.TextBody.TrimEnd(), Is.EqualTo(new string('x', 100_000)));
    }

    [Test]
    public void Roundcube_sorts_and_threads_on_the_server()
    {
        // Three messages: a question, its reply (In-Reply-To), and another thread; the subjects
        // sort the other way round from their arrival.
        foreach (var (subject, id, reply) in new[] { ("Zebra crossing", "<q@remote.test>", ""), ("Re: Zebra crossing", "<r@remote.test>", "<q@remote.test>"), ("Apples", "<a@remote.test>", "") })
        {
            var args = new List<string> { "--protocol", "LMTP", "--server", $"127.0.0.1:{_lmtp.Port}", "--from", "ann@remote.test", "--to", "bob@example.org",
                "--header", $"Subject: {subject}", "--header", $"Message-ID: {id}", "--body", "text", "--timeout", "30" };
            if (reply.Length > 0) args.AddRange(["--header", $"In-Reply-To: {reply}"]);
            var r = Run.Program(Peers.Require("swaks"), args);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        }
        using var roundcube = RoundcubeServer.Start(_imap.Port, _imap.SievePort);
        Peers.Require("chromium");
        Peers.Require("chromedriver");
        var browser = Run.Program("/usr/bin/python3", [Path.Combine(Repo.Root, "tests", "Mail.Tests", "Resources", "roundcube_threads.py"),
            roundcube.Url, "bob@example.org", "bob pass"], timeoutMs: 180_000);
        Assert.That(browser.ExitCode, Is.Zero, browser.Stdout + browser.Stderr + roundcube.Log());
        // By subject: Apples, then the two about zebras (Roundcube sorts on the base subject too).
        Assert.That(browser.Stdout, Does.Contain("sorted: 3/0 1/0 2/0\n"), browser.Stdout);
        // As threads: the question with its reply one level under it, then Apples.
        Assert.That(browser.Stdout, Does.Contain("threads: 1/0 2/1 3/0\n"), browser.Stdout);
        // Both orders came from the server: Roundcube asked for them with SORT and THREAD.
        var log = roundcube.ImapLog();
        Assert.That(log, Does.Match(@"UID SORT \(SUBJECT\)").And.Match(@"UID THREAD (REFERENCES|REFS)").And.Match(@"\* THREAD \(1 2\)\(3\)"), log);
    }

    [Test]
    public async Task A_deflate_bomb_ends_only_its_own_session()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, _imap.Port);
        var stream = tcp.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        async Task<string> Until(string prefix)
        {
            while (true)
            {
                var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.That(line, Is.Not.Null);
                if (line!.StartsWith(prefix, StringComparison.Ordinal)) return line;
            }
        }
        await Until("* OK");
        await stream.WriteAsync("a LOGIN bob@example.org \"bob pass\"\r\nb COMPRESS DEFLATE\r\n"u8.ToArray());
        await Until("a OK");
        Assert.That(await Until("b "), Is.EqualTo("b OK DEFLATE active"));
        // 1 GiB of zeros as about 1 MiB of deflate: the session ends well before it is all inflated.
        var zeros = new byte[1 << 20];
        long sent = 0;
        bool cut = false;
        try
        {
            await using var deflate = new DeflateStream(stream, CompressionLevel.SmallestSize, leaveOpen: true);
            await deflate.WriteAsync("c NOOP "u8.ToArray());
            for (int i = 0; i < 1024; i++)
            {
                await deflate.WriteAsync(zeros);
                sent += zeros.Length;
            }
            await deflate.FlushAsync();
            // Whatever the server answered meanwhile, the connection ends.
            stream.ReadTimeout = 30_000;
            var buffer = new byte[4096];
            while (stream.Read(buffer) > 0) { }
            cut = true;
        }
        catch (IOException e) when (e.InnerException is not SocketException { SocketErrorCode: SocketError.TimedOut }) { cut = true; } // reset while sending
        Assert.That(cut, Is.True, $"the connection was not ended after {sent} inflated bytes");
        // The server is unharmed: another session logs in and reads.
        using var client = await LoginAsync();
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.That(_authd.Log(), Does.Contain("inflates beyond its limit"));
    }
}
