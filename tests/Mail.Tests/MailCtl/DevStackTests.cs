using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Mail.Tests.Support;

namespace Mail.Tests.MailCtl;

/// <summary>
/// What a new administrator does: `mailctl up`, add a domain, a user and
/// aliases, then test a login and look-ups, all through the built programs.
/// </summary>
public sealed class DevStackTests
{
    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    // The dev stack's mtad checks mail from loopback on its MX (mynetworks is empty there) and
    // asks the system's DNS; in the tests it asks this private server instead.
    // sender.test is a domain that signs its mail (key made by python3-dkim's dknewkey).
    private static readonly TempDir Keys = new();
    private static readonly Lazy<ZoneServer> Dns = new(() =>
    {
        var made = Run.Program(Peers.Require("dknewkey"), ["--ktype", "rsa", Keys["s1"]]);
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        var key = string.Join(' ', File.ReadAllText(Keys["s1.dns"]).Trim().Chunk(200).Select(c => "\"" + new string(c) + "\""));
        return ZoneServer.Start(("test", ""), ("example.org", "@ TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\""),
            ("sender.test", $"@ TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\ns1._domainkey TXT {key}"),
            ("example.net", ""), ("127.in-addr.arpa", ""));
    });
    private static string DnsAddress => Dns.Value.Address;

    [OneTimeTearDown]
    public void StopDns()
    {
        if (Dns.IsValueCreated) Dns.Value.Dispose();
        Keys.Dispose();
    }

    private static RunResult Ctl(string config, string? stdin, params string[] args) =>
        Run.Program(Repo.Program("mailctl"), ["--config", config, .. args], stdin);

    [Test]
    public async Task Up_then_user_add_auth_test_and_lookup()
    {
        using var dir = new TempDir();
        var root = dir["dev"];
        var psi = new ProcessStartInfo(Repo.Program("mailctl"))
        {
            ArgumentList = { "up", "--dir", root },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            Environment = { ["MTAD_DNS_SERVERS"] = DnsAddress },
        };
        using var up = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        up.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        up.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        up.BeginOutputReadLine();
        up.BeginErrorReadLine();
        try
        {
            string Out() { lock (output) return output.ToString(); }
            Assert.That(await Wait.UntilAsync(() => Out().Contains("Ctrl-C stops the stack") || up.HasExited, TimeSpan.FromSeconds(60)), Is.True);
            Assert.That(up.HasExited, Is.False, Out());
            Assert.That(Out(), Does.Contain($"authd    gRPC          unix:{root}/run/authd.sock"));
            Assert.That(Out(), Does.Contain($"lmtpd    LMTP          127.0.0.1:2424 and unix:{root}/run/lmtp.sock"));
            Assert.That(File.Exists(Path.Combine(root, "tls", "cert.pem")), Is.True, "self-signed certificate made on first start");

            var conf = Path.Combine(root, "etc", "authd.conf");
            Assert.That(Ctl(conf, null, "domain", "add", "example.org").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl(conf, null, "domain", "add", "example.net").ExitCode, Is.EqualTo(0));
            var add = Ctl(conf, "s3cret pass\n", "user", "add", "bob@example.org", "--quota", "1G");
            Assert.That(add.ExitCode, Is.EqualTo(0), add.Stderr);
            Assert.That(Ctl(conf, null, "alias", "add", "info@example.org", "bob@example.org", "someone@remote.test").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl(conf, null, "alias", "add", "@example.net", "bob@example.org").ExitCode, Is.EqualTo(0));

            var ok = Ctl(conf, null, "auth", "test", "bob@example.org", "s3cret pass");
            Assert.That(ok.ExitCode, Is.EqualTo(0), ok.Stderr);
            Assert.That(ok.Stdout, Does.Contain("passdb: bob@example.org auth succeeded"));
            var okStdin = Ctl(conf, "s3cret pass\n", "auth", "test", "bob@example.org");
            Assert.That(okStdin.ExitCode, Is.EqualTo(0), okStdin.Stderr);
            var bad = Ctl(conf, null, "auth", "test", "bob@example.org", "wrong");
            Assert.That(bad.ExitCode, Is.EqualTo(77));
            Assert.That(bad.Stderr, Does.Contain("passdb: bob@example.org auth failed"));

            // Mail to the new user over the stack's LMTP lands in the dev Maildir.
            var lmtp = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", "127.0.0.1:2424", "--from", "a@remote.test",
                "--to", "bob@example.org", "--body", "hello from the dev stack", "--timeout", "30"]);
            Assert.That(lmtp.ExitCode, Is.EqualTo(0), lmtp.Stdout);
            var delivered = System.IO.Directory.GetFiles(Path.Combine(root, "mail", "example.org", "bob", "new"));
            Assert.That(delivered, Has.Length.EqualTo(1));
            Assert.That(File.ReadAllText(delivered[0]), Does.Contain("hello from the dev stack"));

            // And through the stack's MTA: submission with STARTTLS and AUTH, then LMTP to the Maildir,
            // signed with the two keys made for example.org (RSA and Ed25519), which python3-dkim accepts.
            var keygen = Run.Program(Repo.Program("mailctl"), ["dkim", "keygen", "example.org", "--mta-config", Path.Combine(root, "etc", "mtad.conf")]);
            Assert.That(keygen.ExitCode, Is.EqualTo(0), keygen.Stderr);
            var submit = Run.Program(Peers.Require("swaks"), ["--server", "127.0.0.1:2587", "--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                "--auth-password", "s3cret pass", "--from", "bob@example.org", "--to", "info@example.org", "--body", "through the MTA", "--timeout", "30"]);
            Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Stdout);
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(Path.Combine(root, "mail", "example.org", "bob", "new")).Length == 2,
                TimeSpan.FromSeconds(30)), Is.True, "delivered through the queue");
            var submitted = System.IO.Directory.GetFiles(Path.Combine(root, "mail", "example.org", "bob", "new")).Select(File.ReadAllText).Single(m => m.Contains("through the MTA"));
            Assert.That(System.Text.RegularExpressions.Regex.Matches(submitted, "^DKIM-Signature:", System.Text.RegularExpressions.RegexOptions.Multiline), Has.Count.EqualTo(2));
            File.WriteAllText(dir["keys"], string.Join('\n', keygen.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(r => r.Split(' ')[0] + " " + string.Concat(System.Text.RegularExpressions.Regex.Matches(r, "\"([^\"]*)\"").Select(m => m.Groups[1].Value)))));
            File.WriteAllText(dir["submitted.eml"], submitted.Replace("\n", "\r\n"));
            var dkimverify = Run.Program("/usr/bin/python3", ["-c", """
                import sys, dkim
                keys = dict(l.split(' ', 1) for l in open(sys.argv[2]).read().splitlines())
                d = dkim.DKIM(open(sys.argv[1], 'rb').read())
                txt = lambda name, timeout=5: keys.get(name.decode().rstrip('.') + '.', '').encode() or None
                print(' '.join(str(d.verify(idx=i, dnsfunc=txt)) for i in range(2)))
                """, dir["submitted.eml"], dir["keys"]]);
            Assert.That(dkimverify.Stdout.Trim(), Is.EqualTo("True True"), dkimverify.Stderr);
            var relay = Run.Program(Peers.Require("swaks"), ["--server", "127.0.0.1:2525", "--from", "x@remote.test", "--to", "y@remote.test", "--quit-after", "RCPT"]);
            Assert.That(relay.Stdout, Does.Contain("554 5.7.1"));
            // A stranger's message claiming to be from example.org, whose DMARC policy is p=reject.
            var forged = Run.Program(Peers.Require("swaks"), ["--server", "127.0.0.1:2525", "--local-interface", "127.0.0.2", "--from", "x@remote.test",
                "--to", "bob@example.org", "--header", "From: CEO <ceo@example.org>", "--body", "pay this invoice", "--timeout", "30"]);
            Assert.That(forged.Stdout, Does.Contain("550 5.7.1 Rejected by DMARC policy for example.org"), forged.Stdout);
            // A message signed by sender.test's server, from its address: delivered with every check passed.
            var signed = Run.Program(Peers.Require("dkimsign"), ["s1", "sender.test", Keys["s1.key"]],
                "From: Alice <alice@sender.test>\r\nTo: bob@example.org\r\nSubject: signed on the dev stack\r\nMessage-ID: <dev1@sender.test>\r\n\r\nHello.\r\n");
            Assert.That(signed.ExitCode, Is.Zero, signed.Stderr);
            var sent = Run.Program("/usr/bin/python3", ["-c", "import smtplib, sys; smtplib.SMTP('127.0.0.1', 2525, local_hostname='mail.sender.test', timeout=30)" +
                ".sendmail('alice@sender.test', ['bob@example.org'], sys.stdin.buffer.read())"], signed.Stdout);
            Assert.That(sent.ExitCode, Is.Zero, sent.Stderr);
            string? arrived = null;
            Assert.That(await Wait.UntilAsync(() => (arrived = System.IO.Directory.GetFiles(Path.Combine(root, "mail", "example.org", "bob", "new")).Select(File.ReadAllText)
                .FirstOrDefault(m => m.Contains("Subject: signed on the dev stack"))) != null, TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(arrived, Does.Contain("spf=pass smtp.mailfrom=alice@sender.test").And.Contain("dkim=pass header.d=sender.test header.s=s1")
                .And.Contain("dmarc=pass (p=reject dis=none) header.from=sender.test"));

            // What went through, as `mailctl status` reads it from the daemons' metrics endpoints.
            var status = Ctl(conf, null, "status");
            Assert.That(status.ExitCode, Is.EqualTo(0), status.Stdout + status.Stderr);
            var mtadStatus = status.Stdout[status.Stdout.IndexOf("mtad ", StringComparison.Ordinal)..];
            Assert.That(mtadStatus, Does.Match(@"messages: accepted 2\n"), status.Stdout);
            Assert.That(mtadStatus, Does.Contain("RCPT 5.7.1 1").And.Contain("DATA 5.7.1 1").And.Contain("lmtp sent 2"), status.Stdout);
            Assert.That(mtadStatus, Does.Match(@"connections: submission 1, mx \d|connections: mx \d+, submission 1"), status.Stdout);
            Assert.That(status.Stdout, Does.Match(@"lmtpd +running for .*\n +connections: lmtp \d+.*\n +deliveries: delivered 3\n"), status.Stdout);
            Assert.That(status.Stdout, Does.Match(@"authd +running for .*\n +logins: mailctl ok 2, (mailctl failed 1, smtp ok 1|smtp ok 1, mailctl failed 1)\n"), status.Stdout);
            Assert.That(status.Stdout, Does.Match(@"queue: incoming \d+, active \d+, deferred \d+, hold 0, corrupt 0"));

            var alias = Ctl(conf, null, "lookup", "info@example.org");
            Assert.That(alias.ExitCode, Is.EqualTo(0));
            Assert.That(alias.Stdout, Does.Contain("-> bob@example.org  mailbox=bob@example.org"));
            Assert.That(alias.Stdout, Does.Contain("-> someone@remote.test  (remote)"));
            var catchAll = Ctl(conf, null, "lookup", "whoever@example.net");
            Assert.That(catchAll.Stdout, Does.Contain("-> bob@example.org  mailbox=bob@example.org"));
            var unknown = Ctl(conf, null, "lookup", "nobody@example.org");
            Assert.That(unknown.ExitCode, Is.EqualTo(1));
            Assert.That(unknown.Stdout, Does.Contain("unknown user"));
            var foreign = Ctl(conf, null, "lookup", "x@elsewhere.test");
            Assert.That(foreign.Stdout, Does.Contain("not ours"));

            var users = Ctl(conf, null, "user", "list");
            Assert.That(users.Stdout, Does.Contain("bob@example.org  quota=1073741824"));
            Assert.That(Ctl(conf, null, "user", "remove", "bob@example.org").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl(conf, null, "auth", "test", "bob@example.org", "s3cret pass").ExitCode, Is.EqualTo(77));

            var log = File.ReadAllText(Path.Combine(root, "log", "authd.log"));
            Assert.That(log, Does.Match(@"(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ authd\[\d+\]: mailctl: auth: service=mailctl, rip=127\.0\.0\.1, mech=PLAIN, user=<bob@example\.org>, result=ok$"));
            Assert.That(log, Does.Not.Contain("s3cret"));
        }
        finally
        {
            if (!up.HasExited) Kill(up.Id, 15);
            var stopped = up.WaitForExit(30_000);
            if (!stopped) up.Kill(entireProcessTree: true);
            Assert.That(stopped, Is.True, "mailctl up stops on SIGTERM");
        }
        Assert.That(up.ExitCode, Is.EqualTo(0));
        Assert.That(File.Exists(Path.Combine(root, "run", "authd.sock")), Is.False, "authd stopped and removed its socket");
        var down = Ctl(Path.Combine(root, "etc", "authd.conf"), null, "status");
        Assert.That(down.ExitCode, Is.EqualTo(3), down.Stdout);
        Assert.That(down.Stdout, Does.Contain($"mtad      not running (no answer on unix:{root}/run/mtad.metrics"));
    }

    /// <summary>A running `mailctl up`, stopped by SIGTERM on dispose.</summary>
    private sealed class Stack : IDisposable
    {
        private readonly Process _up;
        private readonly System.Text.StringBuilder _output = new();
        public string Output { get { lock (_output) return _output.ToString(); } }

        private Stack(Process up) => _up = up;
        public int Pid => _up.Id;

        /// <summary>The daemons mailctl up started (its child processes, whichever thread started them).</summary>
        public List<int> Daemons() => System.IO.Directory.GetDirectories($"/proc/{_up.Id}/task")
            .SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse).ToList();

        public static Task<Stack> UpAsync(string root, params string[] args) => UpInAsync(root, null, args);

        /// <summary>`mailctl up` started in <paramref name="workingDirectory"/> (the test runner's by default).</summary>
        public static async Task<Stack> UpInAsync(string root, string? workingDirectory, params string[] args)
        {
            var psi = new ProcessStartInfo(Repo.Program("mailctl")) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
            foreach (var a in (string[])["up", "--dir", root, .. args]) psi.ArgumentList.Add(a);
            psi.Environment["MTAD_DNS_SERVERS"] = DnsAddress;
            var stack = new Stack(Process.Start(psi)!);
            stack._up.OutputDataReceived += (_, e) => { lock (stack._output) stack._output.AppendLine(e.Data); };
            stack._up.ErrorDataReceived += (_, e) => { lock (stack._output) stack._output.AppendLine(e.Data); };
            stack._up.BeginOutputReadLine();
            stack._up.BeginErrorReadLine();
            Assert.That(await Wait.UntilAsync(() => stack.Output.Contains("Ctrl-C stops the stack") || stack._up.HasExited, TimeSpan.FromSeconds(60)), Is.True);
            Assert.That(stack._up.HasExited, Is.False, stack.Output);
            return stack;
        }

        public void Dispose()
        {
            if (!_up.HasExited) Kill(_up.Id, 15);
            if (!_up.WaitForExit(30_000)) _up.Kill(entireProcessTree: true);
            _up.Dispose();
        }
    }

    [Test]
    public async Task Mail_waits_in_the_queue_while_lmtpd_is_down_and_arrives_once_it_is_up()
    {
        using var dir = new TempDir();
        var root = dir["dev"];
        var conf = Path.Combine(root, "etc", "authd.conf");
        var mtaConf = Path.Combine(root, "etc", "mtad.conf");
        using (var stack = await Stack.UpAsync(root, "--only", "authd,mtad"))
        {
            Assert.That(stack.Output, Does.Contain("(authd, mtad only)"));
            Assert.That(Ctl(conf, null, "domain", "add", "example.org").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl(conf, "bob pass\n", "user", "add", "bob@example.org").ExitCode, Is.EqualTo(0));
            Assert.That(Ctl(conf, "ann pass\n", "user", "add", "ann@example.org").ExitCode, Is.EqualTo(0));
            var script = dir["send.py"];
            File.WriteAllText(script, """
                import smtplib, ssl
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = smtplib.SMTP("127.0.0.1", 2587, timeout=30)
                s.starttls(context=ctx)
                s.login("bob@example.org", "bob pass")
                s.sendmail("bob@example.org", ["ann@example.org"], "Subject: while lmtpd is down\r\n\r\nI will wait.\r\n")
                s.quit()
                """);
            var sent = Run.Program(Peers.Require("python3"), [script]);
            Assert.That(sent.ExitCode, Is.EqualTo(0), sent.Stderr);
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(Path.Combine(root, "spool", "deferred")).Length == 1, TimeSpan.FromSeconds(30)),
                Is.True, "deferred while no LMTP server listens");
            var list = Run.Program(Repo.Program("mailctl"), ["queue", "list", "--mta-config", mtaConf]);
            Assert.That(list.Stdout, Does.Contain("bob@example.org").And.Contain("ann@example.org").And.Contain("in 1 Request."), list.Stdout + list.Stderr);

            using (var lmtp = await Stack.UpAsync(root, "--only", "lmtpd"))
            {
                Assert.That(Run.Program(Repo.Program("mailctl"), ["queue", "flush", "--mta-config", mtaConf]).ExitCode, Is.EqualTo(0));
                var inbox = Path.Combine(root, "mail", "example.org", "ann", "new");
                Assert.That(await Wait.UntilAsync(() => System.IO.Directory.Exists(inbox) && System.IO.Directory.GetFiles(inbox).Length == 1, TimeSpan.FromSeconds(30)),
                    Is.True, "delivered once lmtpd is up");
                Assert.That(File.ReadAllText(System.IO.Directory.GetFiles(inbox)[0]), Does.Contain("I will wait."));
                var empty = Run.Program(Repo.Program("mailctl"), ["queue", "list", "--mta-config", mtaConf]);
                Assert.That(empty.Stdout, Does.Contain("Mail queue is empty"));
            }
        }
    }

    [Test]
    public async Task Imaplib_reads_mail_sent_through_the_mta_and_moves_it_to_archive()
    {
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        var root = dir["dev"];
        var conf = Path.Combine(root, "etc", "authd.conf");
        // The mail belongs to a mail user (as in production), so that Dovecot may serve it too.
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        var authdConf = Mail.MailCtl.DevStack.Services(root).Single(x => x.Program == "authd").ConfigText;
        File.WriteAllText(conf, Regex.Replace(Regex.Replace(authdConf, @"mail_uid = \d+", "mail_uid = 5000"), @"mail_gid = \d+", "mail_gid = 5001") + "\n");
        using var stack = await Stack.UpAsync(root);
        Assert.That(stack.Output, Does.Contain("imappopd IMAP          127.0.0.1:2143"));
        Assert.That(Ctl(conf, null, "domain", "add", "example.org").ExitCode, Is.EqualTo(0));
        Assert.That(Ctl(conf, "bob pass\n", "user", "add", "bob@example.org").ExitCode, Is.EqualTo(0));
        var script = dir["imap.py"];
        File.WriteAllText(script, """
            import imaplib, smtplib, ssl, time
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = smtplib.SMTP("127.0.0.1", 2587, timeout=30)
            s.starttls(context=ctx)
            s.login("bob@example.org", "bob pass")
            s.sendmail("bob@example.org", ["bob@example.org"], "Subject: to myself\r\n\r\nnote to self\r\n")
            s.quit()
            m = imaplib.IMAP4("127.0.0.1", 2143)
            m.starttls(ssl_context=ctx)
            m.login("bob@example.org", "bob pass")
            for _ in range(300):
                typ, data = m.select("INBOX")
                if int(data[0]) >= 1:
                    break
                m.close()
                time.sleep(0.1)
            typ, data = m.uid("SEARCH", None, "SUBJECT", "myself")
            uid = data[0].split()[0].decode()
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[TEXT])")
            assert b"note to self" in data[0][1], data
            typ, data = m.uid("MOVE", uid, "Archive")
            assert typ == "OK", (typ, data)
            typ, data = m.select("Archive")
            assert int(data[0]) == 1, data
            typ, data = m.uid("SEARCH", None, "ALL")
            print("archive-uid", data[0].decode())
            m.logout()
            """);
        var r = Run.Program(Peers.Require("python3"), [script]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(r.Stdout, Does.Contain("archive-uid 1"));
        var archived = System.IO.Directory.GetFiles(Path.Combine(root, "mail", "example.org", "bob", ".Archive", "cur"));
        Assert.That(archived, Has.Length.EqualTo(1));
        // Dovecot run on the same Maildir shows it in Archive with the same UID.
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
        using (var dovecot = DovecotServer.Start(dir, Path.Combine(root, "mail"), imap: true))
        {
            var check = dir["dovecot.py"];
            File.WriteAllText(check, $$"""
                import imaplib
                m = imaplib.IMAP4("127.0.0.1", {{dovecot.ImapPort}})
                m.login("bob@example.org", "any")
                typ, data = m.select("Archive")
                assert typ == "OK" and data[0] == b"1", (typ, data)
                typ, data = m.uid("SEARCH", None, "ALL")
                print("dovecot-archive-uid", data[0].decode())
                typ, data = m.uid("FETCH", data[0].decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                print(data[0][1].decode().strip())
                m.logout()
                """);
            var d = Run.Program(Peers.Require("python3"), [check]);
            Assert.That(d.ExitCode, Is.EqualTo(0), d.Stdout + d.Stderr);
            Assert.That(d.Stdout, Does.Contain("dovecot-archive-uid 1").And.Contain("Subject: to myself"));
        }
        Assert.That(File.ReadAllText(Path.Combine(root, "mail", "example.org", "bob", ".Archive", "dovecot-uidlist")), Does.Match(@"^3 V\d+ N2 G\w+\n1 :"));
    }

    /// <summary>
    /// Dovecot and Postfix make no system calls while nobody talks to them; each of our
    /// daemons may wake for its own timers (the host's heartbeat, the memory trim, the
    /// log flush), a few times a second, each wake some twenty calls across its threads;
    /// before, the log writer polled and every daemon made some 20,000 calls a second.
    /// </summary>
    [Test]
    public async Task An_idle_daemon_makes_no_system_calls_beyond_its_timers()
    {
        var strace = Peers.Require("strace");
        using var dir = new TempDir();
        var root = dir["dev"];
        using var stack = await Stack.UpAsync(root);
        // Start-up work (first look-ups, the JIT's background compilation, and the one memory
        // trim that follows the last activity by IdleMemoryTrim.Quiet) is over when a daemon's
        // CPU time stops growing for longer than that quiet period.
        var children = stack.Daemons();
        Assert.That(children, Has.Count.EqualTo(4), "authd, lmtpd, mtad, imappopd");
        var window = Mail.Shared.Net.IdleMemoryTrim.Quiet + TimeSpan.FromSeconds(2);
        // All four are watched together (one window for all), so that a slow start on a busy
        // machine costs the test's time once rather than once per daemon.
        var unsettled = children.ToHashSet();
        for (int i = 0; i < 16 && unsettled.Count > 0; i++)
        {
            var before = unsettled.ToDictionary(p => p, CpuTicks);
            await Task.Delay(window);
            unsettled.RemoveWhere(p => CpuTicks(p) == before[p]);
        }
        Assert.That(unsettled.Select(p => File.ReadAllText($"/proc/{p}/comm").Trim()), Is.Empty,
            $"daemons that did not settle after start (no CPU time used for {window.TotalSeconds:0} s)");
        foreach (var pid in children)
        {
            var name = File.ReadAllText($"/proc/{pid}/comm").Trim();
            const int seconds = 3;
            var trace = dir[$"strace.{pid}"];
            Run.Program("/usr/bin/timeout", ["-s", "INT", seconds.ToString(), strace, "-f", "-c", "-o", trace, "-p", pid.ToString()]);
            var total = File.ReadAllLines(trace).Last(l => l.TrimEnd().EndsWith("total"));
            var calls = long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]);
            TestContext.Out.WriteLine($"{name}: {calls} system calls in {seconds} s");
            Assert.That(calls, Is.LessThan(seconds * 100), $"{name} idle: {File.ReadAllText(trace)}");
        }
    }

    /// <summary>
    /// A daemon watches no folder it has no business with: started from a folder with 50
    /// subfolders (as a unit without WorkingDirectory starts in /), an idle daemon holds no inotify
    /// watch. The web host's appsettings.json reload had watched the working folder and all below
    /// it, one watch per folder and a wake-up for every file written there.
    /// </summary>
    [Test]
    public async Task No_daemon_watches_the_folder_it_was_started_in()
    {
        using var dir = new TempDir();
        var cwd = dir["cwd"];
        for (int i = 0; i < 50; i++) System.IO.Directory.CreateDirectory(Path.Combine(cwd, $"sub{i}"));
        using var stack = await Stack.UpInAsync(dir["dev"], cwd);
        var children = stack.Daemons();
        Assert.That(children, Has.Count.EqualTo(4), "authd, lmtpd, mtad, imappopd");
        foreach (var pid in children)
        {
            var name = File.ReadAllText($"/proc/{pid}/comm").Trim();
            Assert.That(Path.GetFullPath(new DirectoryInfo($"/proc/{pid}/cwd").ResolveLinkTarget(false)!.FullName), Is.EqualTo(Path.GetFullPath(cwd)), name);
            var watches = System.IO.Directory.GetFiles($"/proc/{pid}/fdinfo")
                .Sum(f => { try { return File.ReadLines(f).Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal)); } catch (IOException) { return 0; } });
            Assert.That(watches, Is.EqualTo(0), $"{name}: inotify watches");
        }
    }

    /// <summary>
    /// "250" is said only after the message's file and its directory are on disk: the system
    /// calls of mtad and lmtpd, recorded by strace while one message goes through, show the
    /// fsync of the queue file and of incoming/ (mtad), of the tmp/ file and of new/ after the
    /// link (lmtpd), each finished before the write of the 250 begins. (A SIGKILL test cannot
    /// see a missing fsync: the page cache outlives the process.)
    /// </summary>
    [Test]
    public async Task The_250_of_mtad_and_lmtpd_follows_the_fsync_of_the_file_and_its_directory()
    {
        var strace = Peers.Require("strace");
        using var dir = new TempDir();
        var root = dir["dev"];
        var conf = Path.Combine(root, "etc", "authd.conf");
        using var stack = await Stack.UpAsync(root);
        Assert.That(Ctl(conf, null, "domain", "add", "example.org").ExitCode, Is.EqualTo(0));
        Assert.That(Ctl(conf, "bob pass\n", "user", "add", "bob@example.org").ExitCode, Is.EqualTo(0));
        var children = stack.Daemons();
        int PidOf(string name) => children.Single(p => File.ReadAllText($"/proc/{p}/comm").Trim() == name);
        var traces = new Dictionary<string, (Process Process, string File)>();
        foreach (var name in new[] { "mtad", "lmtpd" })
        {
            var file = dir[$"{name}.strace"];
            var psi = new ProcessStartInfo(strace) { UseShellExecute = false, RedirectStandardError = true };
            foreach (var a in (string[])["-f", "-y", "-s", "200", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,link,linkat,write,writev,sendto,sendmsg,pwrite64", "-o", file, "-p", PidOf(name).ToString()])
                psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            traces[name] = (p, file);
        }
        try
        {
            // strace says "Process N attached" for every thread once it is ready.
            foreach (var (_, (p, _)) in traces)
                Assert.That(await Wait.UntilAsync(() => p.StandardError.Peek() >= 0, TimeSpan.FromSeconds(10)), Is.True, "strace attached");
            var sent = Run.Program(Peers.Require("swaks"), ["--server", "127.0.0.1:2525", "--from", "ann@remote.test", "--to", "bob@example.org",
                "--body", "on disk before 250", "--timeout", "30"]);
            Assert.That(sent.ExitCode, Is.EqualTo(0), sent.Stdout);
            var inbox = Path.Combine(root, "mail", "example.org", "bob", "new");
            Assert.That(await Wait.UntilAsync(() => System.IO.Directory.Exists(inbox) && System.IO.Directory.GetFiles(inbox).Length == 1, TimeSpan.FromSeconds(30)), Is.True);
            // The file is in new/ before lmtpd writes its 250, and strace records a write only
            // after it returned: wait for both replies in the records before detaching.
            bool Recorded(string name, string reply) => File.Exists(traces[name].File) && ReadShared(traces[name].File).Contains(reply);
            Assert.That(await Wait.UntilAsync(() => Recorded("mtad", "250 2.0.0 Ok: queued as") && Recorded("lmtpd", "250 2.0.0 <bob@example.org> Saved"),
                TimeSpan.FromSeconds(30)), Is.True, "both 250 replies recorded by strace");
        }
        finally
        {
            foreach (var (_, (p, _)) in traces) { Kill(p.Id, 2); p.WaitForExit(10_000); }
        }
        var id = Regex.Match(File.ReadAllText(traces["mtad"].File), @"250 2\.0\.0 Ok: queued as (\w{12})").Groups[1].Value;
        Assert.That(id, Has.Length.EqualTo(12), "mtad said 250 with a queue id");
        var incoming = Path.Combine(root, "spool", "incoming");
        AssertDurableBefore(traces["mtad"].File, $"250 2.0.0 Ok: queued as {id}",
            $"fsync\\(\\d+<{Regex.Escape(Path.Combine(incoming, id))}>\\)", $"fsync\\(\\d+<{Regex.Escape(incoming)}>\\)");
        var maildir = Path.Combine(root, "mail", "example.org", "bob");
        AssertDurableBefore(traces["lmtpd"].File, "250 2.0.0 <bob@example.org> Saved",
            $"fsync\\(\\d+<{Regex.Escape(Path.Combine(maildir, "tmp"))}/[^>]+>\\)", $"(link|rename)\\w*\\(.*{Regex.Escape(Path.Combine(maildir, "new"))}/", $"fsync\\(\\d+<{Regex.Escape(Path.Combine(maildir, "new"))}>\\)");
    }

    /// <summary>
    /// In an strace -f record: each call matching <paramref name="before"/> (in this order) has
    /// returned 0 before the write of <paramref name="reply"/> began.
    /// </summary>
    private static void AssertDurableBefore(string traceFile, string reply, params string[] before)
    {
        var lines = File.ReadAllLines(traceFile);
        int replyAt = Array.FindIndex(lines, l => l.Contains(reply) && Regex.IsMatch(l, @"^\d+\s+(write|writev|sendto|sendmsg)\("));
        Assert.That(replyAt, Is.GreaterThanOrEqualTo(0), $"the write of '{reply}' in {traceFile}:\n{string.Join('\n', lines.TakeLast(40))}");
        int last = -1;
        foreach (var pattern in before)
        {
            // The call, and where it returned (a call interrupted by another thread's line ends in a "resumed" line).
            int at = Array.FindIndex(lines, last + 1, l => Regex.IsMatch(l, pattern));
            Assert.That(at, Is.GreaterThanOrEqualTo(0).And.LessThan(replyAt), $"/{pattern}/ before '{reply}':\n{string.Join('\n', lines.Take(replyAt + 1).TakeLast(40))}");
            int done = at;
            if (lines[at].Contains("<unfinished ...>"))
            {
                var pid = lines[at].Split(' ', 2)[0];
                var call = Regex.Match(lines[at], @"^\d+\s+(\w+)\(").Groups[1].Value;
                done = Array.FindIndex(lines, at + 1, l => l.StartsWith(pid + " ") && l.Contains($"<... {call} resumed>"));
            }
            Assert.That(done, Is.GreaterThan(-1).And.LessThan(replyAt), $"/{pattern}/ returned before '{reply}' was written");
            Assert.That(lines[done], Does.EndWith("= 0"), "and succeeded");
            last = at;
        }
    }

    /// <summary>The text of a file another process is still writing.</summary>
    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>User and system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15).</summary>
    private static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11]) + long.Parse(f[12]);
    }

    [Test]
    public void Password_is_never_taken_from_the_command_line_of_user_add()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["authd.conf"], $"passwd_file = {dir["passwd"]}\ndomains_file = {dir["domains"]}\naliases_file = {dir["virtual"]}\n");
        File.WriteAllText(dir["domains"], "example.org\n");
        var r = Ctl(dir["authd.conf"], "", "user", "add", "bob@example.org", "secretpw");
        Assert.That(r.ExitCode, Is.Not.EqualTo(0));
        Assert.That(File.Exists(dir["passwd"]) ? File.ReadAllText(dir["passwd"]) : "", Does.Not.Contain("bob@"));
    }
}
