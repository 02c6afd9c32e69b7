using Mail.Tests.Support;

namespace Mail.Tests.Mta;

/// <summary>Every protocol error path of smtpd answers with its code, and bad input harms nothing else.</summary>
public sealed partial class MtaTests
{
    private async Task<Raw> GreetedAsync(bool ehlo = true)
    {
        var c = await Raw.ConnectAsync(_mx);
        await c.Expect("220");
        if (ehlo)
        {
            await c.Send("EHLO client.test\r\n");
            await c.ExpectLast("250 SMTPUTF8");
        }
        return c;
    }

    [Test]
    public async Task Each_error_path_has_its_reply_code_and_the_session_goes_on()
    {
        await Transcript.ReplayAsync("smtp/protocol-errors.txt", _mx);
        await Transcript.ReplayAsync("smtp/protocol-errors-transaction.txt", _mx);
    }

    [Test]
    public async Task Control_characters_in_a_command_are_refused_and_never_reach_a_header()
    {
        await Transcript.ReplayAsync("smtp/control-characters.txt", _mx, new Dictionary<string, string> { ["NUL"] = "\0", ["CR"] = "\r", ["BEL"] = "\a" },
            new Dictionary<string, Func<Task>>
            {
                ["received-names-the-clean-ehlo"] = async () =>
                {
                    Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
                    var text = File.ReadAllText(Inbox("bob")[0]);
                    Assert.That(text, Does.Contain("Received: from client.test ("));
                    Assert.That(text, Does.Not.Contain("\0").And.Not.Contain("evil"));
                },
            });
        Assert.That(_authd.Log(), Does.Contain("reject: command with control characters from [127.0.0.1]"));
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("errors=6"), TimeSpan.FromSeconds(10)), Is.True, "each refusal is counted in the disconnect line");
    }

    [Test]
    public async Task The_size_limit_counts_the_headers_mtad_adds_so_lmtpd_with_the_same_limit_never_refuses_after_250()
    {
        await _lmtp!.DisposeAsync();
        _lmtp = await LmtpServer.StartAsync(_authd, "max_message_size = 4k", port: _lmtpPort);
        await RestartMtaAsync("max_message_size = 4k");
        string Body(int dataBytes) => "Subject: size\r\n\r\n" + new string('s', dataBytes - 21) + "\r\n.\r\n"; // 21: the header, blank line and last CRLF
        using var c = await GreetedAsync();
        foreach (var (bytes, reply) in new[] { (4096 - 40, "552 5.3.4 Message size exceeds fixed limit"), (3000, "250 2.0.0 Ok: queued as") })
        {
            await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
            await c.Send(Body(bytes));
            await c.Expect(reply);
        }
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True, "the one mtad took, lmtpd took too");
        Assert.That(_authd.Log(), Does.Not.Contain("non-delivery notification"));
    }

    [Test]
    public async Task An_unparsable_bdat_count_ends_the_session()
    {
        using var c = await GreetedAsync();
        await c.Send("BDAT lots\r\n");
        await c.Expect("501 5.5.4");
        Assert.That(await c.Read(), Is.Null, "nothing after it could be read in step");
    }

    [Test]
    public async Task Lines_recipients_errors_and_junk_commands_are_limited()
    {
        await RestartMtaAsync("max_recipients = 3");
        using (var c = await GreetedAsync())
        {
            await c.Send(new string('A', 5000) + "\r\nNOOP\r\n");
            await c.Expect("500 5.5.2");
            await c.Expect("250");
            await c.Send("MAIL FROM:<x@remote.test>\r\n");
            await c.Expect("250");
            foreach (var u in new[] { "bob", "ann", "sales" })
            {
                await c.Send($"RCPT TO:<{u}@example.org>\r\n");
                await c.Expect("250");
            }
            await c.Send("RCPT TO:<bob.alias@example.org>\r\n");
            await c.Expect("452 4.5.3");
        }
        using (var c = await GreetedAsync())
        {
            string? line;
            int errors = 0;
            do
            {
                await c.Send("BOGUS\r\n");
                line = await c.Read();
                errors++;
            } while (line != null && line.StartsWith("502") && errors < 100);
            Assert.That(line, Does.StartWith("421 4.7.0"));
            Assert.That(errors, Is.EqualTo(21));
            Assert.That(await c.Read(), Is.Null, "closed after too many errors");
        }
        using (var c = await GreetedAsync())
        {
            string? line;
            int n = 0;
            do
            {
                await c.Send("NOOP\r\n");
                line = await c.Read();
                n++;
            } while (line != null && line.StartsWith("250") && n < 1000);
            Assert.That(line, Does.StartWith("421 4.7.0"));
            Assert.That(n, Is.EqualTo(120), "100 junk commands free (the EHLO among them), then each counts as an error; the 21st error closes");
        }
        Assert.That(_authd.Log(), Does.Contain("too many errors from").And.Contain("too many junk commands from"));
    }

    [Test]
    public async Task A_silent_client_is_disconnected_at_the_idle_timeout()
    {
        await RestartMtaAsync("idle_timeout = 1s");
        using var c = await GreetedAsync();
        await c.Send("MAIL FROM:<x@remote.test>\r\n");
        await c.Expect("250");
        await c.Expect("421 4.4.2");
        Assert.That(await c.Read(), Is.Null);
    }

    [Test]
    public async Task A_command_line_or_data_trickled_a_byte_at_a_time_runs_out_of_time()
    {
        // A byte every 300 ms would keep an idle timer of 2 s alive for ever; a line must come
        // whole within the timeout, and DATA earns time only at min_data_rate.
        await RestartMtaAsync("idle_timeout = 2s\nmin_data_rate = 500");
        var pace = TimeSpan.FromMilliseconds(300);
        var slow = new string('x', 100);
        using (var c = await GreetedAsync())
        {
            var (reply, sent) = await c.Trickle("NOOP " + slow, pace);
            Assert.That(reply, Is.EqualTo("421 4.4.2 Idle timeout, closing connection"));
            Assert.That(sent, Is.LessThan(30), "cut off near the timeout, not at the end of the text");
        }
        using (var c = await GreetedAsync())
        {
            await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
            var (reply, sent) = await c.Trickle("Subject: slow\r\n\r\n" + slow, pace);
            Assert.That(reply, Is.EqualTo("421 4.4.2 Idle timeout, closing connection"));
            Assert.That(sent, Is.LessThan(30));
        }
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("timeout after EHLO from") && _authd.Log().Contains("timeout after DATA from"), TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]).Length == 0, TimeSpan.FromSeconds(10)), Is.True,
            "the cut-off message leaves nothing behind");
    }

    [Test]
    public async Task Under_stress_silent_sessions_get_the_short_timeout()
    {
        // Three of four slots taken: the idle timeout of ten minutes becomes stress_timeout, also
        // for reads that began before the stress did. Cutting one session ends the stress, so
        // exactly which of the three goes first depends on timing: one of them must.
        await RestartMtaAsync("idle_timeout = 10m\nstress_timeout = 1s\nmax_connections = 4");
        using var first = await GreetedAsync();
        using var second = await GreetedAsync();
        using var third = await GreetedAsync();
        var cut = await Task.WhenAny(first.Read(), second.Read(), third.Read());
        Assert.That(await cut, Is.EqualTo("421 4.4.2 Idle timeout, closing connection"));
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("timeout after EHLO from"), TimeSpan.FromSeconds(10)), Is.True);
    }

    [Test]
    public async Task A_client_that_drops_mid_data_leaves_nothing_in_the_queue()
    {
        foreach (var bdat in new[] { false, true })
        {
            var c = await GreetedAsync();
            await c.Send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\n");
            await c.Expect("250"); await c.Expect("250");
            if (bdat) await c.Send("BDAT 100000 LAST\r\nSubject: cut\r\n\r\npart of it\r\n");
            else
            {
                await c.Send("DATA\r\n");
                await c.Expect("354");
                await c.Send("Subject: cut\r\n\r\npart of it\r\n");
            }
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]).Length == 1, TimeSpan.FromSeconds(10)), Is.True,
                "the queue file is being written");
            c.Dispose();
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(_authd.Dir["spool/incoming"]).Length == 0, TimeSpan.FromSeconds(10)), Is.True,
                "the unfinished file is removed when the client goes");
            Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains($"client went away during {(bdat ? "BDAT" : "DATA")}"), TimeSpan.FromSeconds(10)), Is.True);
        }
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/active"]), Is.Empty);
        Assert.That(System.IO.Directory.GetFiles(_authd.Dir["spool/deferred"]), Is.Empty);
        Assert.That(Inbox("bob"), Is.Empty);
    }

    [Test]
    public async Task A_corrupt_queue_file_goes_to_corrupt_and_the_queue_goes_on()
    {
        const string id = "0123456789AB";
        File.WriteAllBytes(Path.Combine(_authd.Dir["spool/deferred"], id), "MQF\u0001garbage that is no queue file"u8.ToArray());
        // A file put there by hand is seen at the next queue run (at most a minute), or at once on a flush.
        Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "flush", "--mta-config", _authd.Dir["mtad.conf"]]).ExitCode, Is.EqualTo(0));
        Assert.That(await Wait.UntilAsync(() => File.Exists(Path.Combine(_authd.Dir["spool/corrupt"], id)), TimeSpan.FromSeconds(30)), Is.True);
        // The log line follows the move.
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains($"{id}: queue file is corrupt; moved to corrupt/"), TimeSpan.FromSeconds(10)), Is.True, _authd.Log());
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "bob@example.org", "--body", "still working"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
    }

    [TestCase("space")]
    [TestCase("inodes")]
    public async Task A_full_spool_refuses_with_452_4_3_1_after_the_data_and_the_session_goes_on(string outOf)
    {
        using var disk = Tmpfs.Mount(_authd.Dir["spool/incoming"], inodes: 200);
        disk.Fill(outOf);
        await Transcript.ReplayAsync(outOf == "space" ? "smtp/full-spool.txt" : "smtp/spool-out-of-inodes.txt", _mx);
        Assert.That(_authd.Log(), Does.Contain("queue file write failed (NoSpace)").And.Contain("from=<ann@remote.test>"));
        Assert.That(System.IO.Directory.GetFiles(disk.Path).Select(Path.GetFileName), Is.EquivalentTo(outOf == "space" ? new[] { ".filler" } : []), "no partial queue file left");
    }

    [Test]
    public async Task A_read_only_spool_is_a_temporary_451_and_the_session_goes_on_once_writable()
    {
        using var disk = Tmpfs.Mount(_authd.Dir["spool/incoming"], "2m");
        await Transcript.ReplayAsync("smtp/read-only-spool.txt", _mx, actions: new Dictionary<string, Func<Task>>
        {
            ["read-only"] = () => { disk.SetReadOnly(true); return Task.CompletedTask; },
            ["read-write"] = () => { disk.SetReadOnly(false); return Task.CompletedTask; },
        });
        Assert.That(_authd.Log(), Does.Contain("(NoPermission)"), "logged as the error it is");
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 1, TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(File.ReadAllText(Inbox("bob")[0]), Does.Contain("Subject: writable again"));
        await _mta.StopAsync(); // before the tmpfs goes
    }

    [Test]
    public async Task A_full_spool_during_retries_defers_and_the_queue_recovers_without_a_restart()
    {
        // Mail waits in the queue (lmtpd is down); then the spool's disk fills, so no retry can
        // write its state file. Each message waits in deferred/, none stays in active/, and once
        // there is room and lmtpd is back, all are delivered by the same mtad.
        await _lmtp!.DisposeAsync();
        _lmtp = null;
        Tmpfs? mounted = null;
        await RestartMtaAsync("", () => mounted = Tmpfs.Mount(_authd.Dir["spool"], "2m"));
        using var disk = mounted!;
        for (int i = 0; i < 5; i++)
        {
            var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{_mx}", "--from", "x@remote.test", "--to", "bob@example.org", "--body", $"waiting {i}"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        }
        string Dir(string d) => Path.Combine(_authd.Dir["spool"], d);
        int Count(string d) => System.IO.Directory.Exists(Dir(d)) ? System.IO.Directory.GetFiles(Dir(d)).Length : 0;
        Assert.That(await Wait.UntilAsync(() => Count("deferred") == 5, TimeSpan.FromSeconds(30)), Is.True, "deferred while lmtpd is down");
        disk.Fill();
        Assert.That(await Wait.UntilAsync(() => System.Text.RegularExpressions.Regex.Matches(_authd.Log(), "cannot record the retry state").Count >= 5, TimeSpan.FromSeconds(30)), Is.True,
            "retries go on with the state kept in memory");
        Assert.That(await Wait.UntilAsync(() => Count("deferred") == 5 && Count("active") == 0, TimeSpan.FromSeconds(30)), Is.True, "nothing stuck in active/");
        disk.Empty();
        _lmtp = await LmtpServer.StartAsync(_authd, port: _lmtpPort);
        Assert.That(await Wait.UntilAsync(() => Inbox("bob").Length == 5, TimeSpan.FromSeconds(60)), Is.True, "delivered by the same mtad once the fault is gone");
        Assert.That(await Wait.UntilAsync(() => Count("deferred") + Count("active") + Count("incoming") + Count("state") == 0, TimeSpan.FromSeconds(10)), Is.True, "nothing left behind");
        await _mta.StopAsync(); // before the tmpfs goes
    }

    [Test]
    public async Task Web_requests_and_header_lines_as_commands_end_the_session_at_once()
    {
        await Transcript.ReplayAsync("smtp/forbidden-commands.txt", _mx);
        await Transcript.ReplayAsync("smtp/header-as-command.txt", _mx);
        await Transcript.ReplayAsync("lmtp/forbidden-commands.txt", _lmtpPort);
        Assert.That(_authd.Log(), Does.Contain("non-SMTP command from [127.0.0.1]").And.Contain("GET / HTTP/1.1").And.Contain("From: someone"));
        Assert.That(_authd.Log(), Does.Contain("non-LMTP command from [127.0.0.1]"));
    }

    [Test]
    public async Task Every_end_of_an_AUTH_exchange_gets_its_reply()
    {
        await Transcript.ReplayAsync("smtp/auth.txt", _submission);
        Assert.That(_authd.Log(), Does.Contain("sasl_method=LOGIN, sasl_username=bob@example.org"));
        Assert.That(_authd.Log(), Does.Not.Contain("Ym9iIHBhc3M=").And.Not.Contain("bob pass"), "no AUTH payload in the log");
    }
}
