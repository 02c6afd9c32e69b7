using System.Text.RegularExpressions;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Lmtp;

/// <summary>
/// Our lmtpd between real peers: a private Postfix delivering to it as its
/// virtual_transport, and Dovecot (doveadm) reading the Maildir it wrote.
/// </summary>
[NonParallelizable]
public sealed class LmtpInteropTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        _lmtp = await LmtpServer.StartAsync(_authd);
    }

    [TearDown]
    public async Task Stop()
    {
        await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    private string Maildir => Path.Combine(_authd.Dir["mail"], "example.org", "bob");

    private RunResult Doveadm(params string[] args)
    {
        using var dovecot = DovecotServer.Start(_authd);
        return dovecot.Doveadm(args);
    }

    [Test]
    public void Postfix_delivers_through_our_lmtp_into_the_maildir()
    {
        var map = $"socketmap:unix:{_authd.SocketmapSocket}:";
        using var postfix = PostfixServer.Start(new Dictionary<string, string>
        {
            ["virtual_mailbox_domains"] = map + "domains",
            ["virtual_mailbox_maps"] = map + "mailboxes",
            ["virtual_alias_maps"] = map + "aliases",
            ["virtual_transport"] = $"lmtp:unix:{_lmtp.Socket}",
        });
        var r = Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{postfix.Port}", "--from", "alice@remote.test",
            "--to", "bob@example.org", "--header", "Subject: via postfix", "--body", "through Postfix and our LMTP", "--timeout", "30"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        Assert.That(Wait.UntilAsync(() => postfix.Log().Contains("status=sent"), TimeSpan.FromSeconds(60)).Result, Is.True, postfix.Log());
        Assert.That(postfix.Log(), Does.Match(@"to=<bob@example\.org>, relay=.*lmtp.*dsn=2\.0\.0, status=sent \(250 2\.0\.0 <bob@example\.org> Saved\)"));
        var files = System.IO.Directory.GetFiles(Path.Combine(Maildir, "new"));
        Assert.That(files, Has.Length.EqualTo(1));
        var text = File.ReadAllText(files[0]);
        Assert.That(text, Does.Contain("Subject: via postfix").And.Contain("through Postfix and our LMTP"));
        Assert.That(text, Does.StartWith("Return-Path: <alice@remote.test>\nDelivered-To: bob@example.org\n"));
    }

    [Test]
    public void Dovecot_reads_our_maildir_with_the_right_sizes_and_folders()
    {
        foreach (var sub in new[] { "cur", "new", "tmp" })
            System.IO.Directory.CreateDirectory(Path.Combine(Maildir, ".Lists", sub));
        Run.Program("chown", ["-R", "5000:5001", _authd.Dir["mail"]]);
        string Send(string to, string subject)
        {
            var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{_lmtp.Port}", "--from", "a@remote.test",
                "--to", to, "--header", "Subject: " + subject, "--body", "line one\nline two\n", "--timeout", "30"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
            return subject;
        }
        Send("bob@example.org", "first");
        Send("bob@example.org", "second");
        Send("bob+Lists@example.org", "to the folder");
        var fetch = Doveadm("fetch", "-u", "bob@example.org", "mailbox size.physical size.virtual hdr.subject", "all");
        Assert.That(fetch.ExitCode, Is.EqualTo(0), fetch.Stderr);
        var records = fetch.Stdout.Split('\f', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.That(records, Has.Length.EqualTo(3), fetch.Stdout);
        var files = System.IO.Directory.GetFiles(Path.Combine(Maildir, "new")).Concat(System.IO.Directory.GetFiles(Path.Combine(Maildir, "cur")))
            .Concat(System.IO.Directory.GetFiles(Path.Combine(Maildir, ".Lists", "new"))).Concat(System.IO.Directory.GetFiles(Path.Combine(Maildir, ".Lists", "cur")))
            .ToList();
        foreach (var rec in records)
        {
            var physical = long.Parse(Regex.Match(rec, @"size\.physical: (\d+)").Groups[1].Value);
            var virt = long.Parse(Regex.Match(rec, @"size\.virtual: (\d+)").Groups[1].Value);
            var mailbox = Regex.Match(rec, @"mailbox: (\S+)").Groups[1].Value;
            var subject = Regex.Match(rec, @"hdr\.subject: (.*)").Groups[1].Value.Trim();
            Assert.That(mailbox, Is.EqualTo(subject == "to the folder" ? "Lists" : "INBOX"), rec);
            Assert.That(files.Any(f => Path.GetFileName(f).Contains($",S={physical},W={virt}") && new FileInfo(f).Length == physical), Is.True,
                $"a file named with Dovecot's own sizes S={physical} W={virt}");
        }
    }

    [Test]
    public void Dovecot_lmtp_and_ours_deliver_alternately_into_one_maildir()
    {
        using var dovecot = DovecotServer.Start(_authd, lmtp: true);
        var port = dovecot.LmtpPort;
        var subjects = new List<string>();
        for (int i = 0; i < 10; i++)
        {
            var target = i % 2 == 0 ? _lmtp.Port : port;
            var subject = $"alternate-{i}-{(i % 2 == 0 ? "ours" : "dovecot")}";
            var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{target}", "--from", "a@remote.test",
                "--to", "bob@example.org", "--header", "Subject: " + subject, "--body", "body " + i, "--timeout", "30"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
            subjects.Add(subject);
        }
        var fetch = dovecot.Doveadm("fetch", "-u", "bob@example.org", "uid hdr.subject", "mailbox", "INBOX", "all");
        Assert.That(fetch.ExitCode, Is.EqualTo(0), fetch.Stderr);
        var dovecotSubjects = Regex.Matches(fetch.Stdout, @"hdr\.subject: (\S+)").Select(m => m.Groups[1].Value).ToList();
        Assert.That(dovecotSubjects, Is.EquivalentTo(subjects), "Dovecot lists every message once");
        var uids = Regex.Matches(fetch.Stdout, @"uid: (\d+)").Select(m => m.Groups[1].Value).ToList();
        Assert.That(uids.Distinct().Count(), Is.EqualTo(10));
        var ours = Mail.Shared.Maildir.MaildirReader.List(Maildir);
        Assert.That(ours, Has.Count.EqualTo(10), "our Maildir library lists every message once");
        var ourSubjects = ours.Select(m => Regex.Match(File.ReadAllText(m.Path), @"Subject: (\S+)").Groups[1].Value).ToList();
        Assert.That(ourSubjects, Is.EquivalentTo(subjects));
        Assert.That(File.Exists(Path.Combine(Maildir, "dovecot-uidlist")), Is.True);
    }

}
