using System.Text.RegularExpressions;
using Mail.Mta;
using Mail.Shared.Passwords;
using Mail.Queue;
using Mail.Shared.Config;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Lmtp;

/// <summary>
/// Sieve at delivery through lmtpd, with mtad behind its pickup socket and a Postfix as the
/// far end: each user's ~/.dovecot.sieve decides where mail goes, redirects and vacation replies
/// leave through mtad, and a broken script never loses a message.
/// </summary>
[NonParallelizable]
public sealed class SieveDeliveryTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private TempDir _vmail = null!;
    private PostfixServer _remote = null!;
    private WebApplication? _mta;
    private ImapServer? _imap;

    private string Home(string user) => Path.Combine(_authd.Dir["mail"], "example.org", user);
    private string RemoteInbox => Path.Combine(_vmail.Path, "mailbox", "new");

    [OneTimeSetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        foreach (var user in new[] { "bob", "carol", "dave", "frank" })
            await _authd.AddUserAsync(user + "@example.org", PasswordScheme.Hash("pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd, "sieve_vacation_min_period = 1h");
        _vmail = new TempDir();
        _remote = PostfixServer.StartMailbox(_vmail, "mx.remote.test", "remote.test");
        var conf = _authd.Dir["mtad.conf"];
        File.WriteAllText(conf, $"""
            mx_listen =
            submission_listen =
            submissions_listen =
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            pickup_socket = {_authd.Dir["run/pickup"]}
            lmtp_destination = 127.0.0.1:{_lmtp.Port}
            hostname = mx.example.org
            relayhost = [127.0.0.1]:{_remote.Port}
            srs_domain = example.org
            srs_secret_file = {_authd.Dir["srs.secret"]}
            retry_min = 1h
            """);
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, conf, new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        if (_imap != null) await _imap.DisposeAsync();
        _remote?.Dispose();
        _vmail?.Dispose();
        if (_lmtp != null) await _lmtp.DisposeAsync();
        if (_authd != null) await _authd.DisposeAsync();
    }

    /// <summary>Makes <paramref name="script"/> the user's active script as ManageSieve would: ~/sieve/NAME.sieve and the ~/.dovecot.sieve link.</summary>
    private void Activate(string user, string script, string name = "filters")
    {
        var home = Home(user);
        Directory.CreateDirectory(Path.Combine(home, "sieve"));
        var file = Path.Combine(home, "sieve", name + ".sieve");
        File.WriteAllText(file, script);
        var link = Path.Combine(home, ".dovecot.sieve");
        if (File.Exists(link) || new FileInfo(link).LinkTarget != null) File.Delete(link);
        File.CreateSymbolicLink(link, Path.Combine("sieve", name + ".sieve"));
    }

    private static string Message(string subject, string from = "sender@remote.test", string to = "bob@example.org", string extra = "") =>
        $"From: Sender <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{Guid.NewGuid():N}@remote.test>\r\n{extra}\r\nBody of {subject}.\r\n";

    /// <summary>Python's smtplib.LMTP: the reply for each recipient ("250 ..." or the refusal).</summary>
    private Dictionary<string, string> Deliver(string message, string from, params string[] rcpts)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["m.eml"], message);
        var script = """
            import smtplib, sys
            port, sender, path = sys.argv[1:4]
            rcpts = sys.argv[4:]
            s = smtplib.LMTP('127.0.0.1', int(port))
            s.ehlo_or_helo_if_needed = lambda: None
            s.docmd('LHLO', 'test')
            s.mail(sender)
            for r in rcpts: s.rcpt(r)
            code, msg = s.docmd('DATA')
            s.send(open(path, 'rb').read().replace(b'\r\n.', b'\r\n..') + b'.\r\n')
            for r in rcpts:
                code, msg = s.getreply()
                print(r, code, msg.decode().replace('\n', ' '))
            s.quit()
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, _lmtp.Port.ToString(), from, dir["m.eml"], .. rcpts]);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1]);
    }

    private static List<string> Files(string folder, string sub = "*") =>
        !Directory.Exists(folder) ? [] : Directory.GetDirectories(folder, sub).Where(d => Path.GetFileName(d) is "new" or "cur")
            .SelectMany(Directory.GetFiles).ToList();

    private List<string> Stored(string user, string subject, string folder = "") =>
        Files(Path.Combine(Home(user), folder)).Where(f => File.ReadAllText(f).Contains("Subject: " + subject + "\n")).ToList();

    [Test]
    public void Fileinto_with_create_and_flags_files_the_message_flagged_and_subscribes_the_folder()
    {
        Activate("bob", """
            require ["fileinto", "mailbox", "imap4flags"];
            if header :contains "subject" "report" { fileinto :create :flags ["\\Seen", "$Reports"] "Work/Reports"; stop; }
            """);
        var replies = Deliver(Message("weekly report"), "sender@remote.test", "bob@example.org");
        Assert.That(replies["bob@example.org"], Does.StartWith("250 2.0.0"));
        var stored = Stored("bob", "weekly report", ".Work.Reports");
        Assert.That(stored, Has.Count.EqualTo(1), _authd.Log());
        Assert.That(stored[0], Does.Match(@"/cur/[^/]+:2,Sa$"), "\\Seen as S, $Reports as the folder's first keyword");
        Assert.That(File.ReadAllText(Path.Combine(Home("bob"), ".Work.Reports", "dovecot-keywords")), Is.EqualTo("0 $Reports\n"));
        Assert.That(Mail.Shared.Maildir.Subscriptions.Read(Home("bob")), Does.Contain("Work/Reports"));
        Assert.That(Stored("bob", "weekly report"), Is.Empty, "not in INBOX as well");
    }

    [Test]
    public void A_script_fault_or_a_missing_folder_keeps_the_message_in_inbox_and_tells_the_user()
    {
        Activate("carol", """
            require ["fileinto", "variables"];
            if header :contains "subject" "missing" { fileinto "No Such Folder"; }
            if header :contains "subject" "fault" { set "to" "not an address"; fileinto "Elsewhere"; redirect "${to}"; }
            """);
        var replies = Deliver(Message("to a missing folder", to: "carol@example.org"), "sender@remote.test", "carol@example.org");
        Assert.That(replies["carol@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(Stored("carol", "to a missing folder"), Has.Count.EqualTo(1));
        replies = Deliver(Message("a fault", to: "carol@example.org"), "sender@remote.test", "carol@example.org");
        Assert.That(replies["carol@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(Stored("carol", "a fault"), Has.Count.EqualTo(1), "kept in INBOX; the fileinto before the fault is dropped");
        Assert.That(Directory.Exists(Path.Combine(Home("carol"), ".Elsewhere")), Is.False);
        var log = File.ReadAllText(Path.Combine(Home("carol"), ".dovecot.sieve.log"));
        Assert.That(log, Does.Contain("fileinto \"No Such Folder\": no such folder; kept in INBOX"));
        Assert.That(log, Does.Contain("line 3: redirect: invalid address 'not an address'; the message is kept in INBOX"));
    }

    [Test]
    public void Reject_refuses_that_recipient_in_the_dialogue_and_discard_stores_nothing()
    {
        Activate("dave", """
            require ["reject"];
            if header :contains "subject" "offer" { reject "No offers, thank you."; }
            if header :contains "subject" "noise" { discard; }
            """);
        var replies = Deliver(Message("special offer", to: "dave@example.org, bob@example.org"), "sender@remote.test", "dave@example.org", "bob@example.org");
        Assert.That(replies["dave@example.org"], Is.EqualTo("550 5.7.1 <dave@example.org> No offers, thank you."));
        Assert.That(replies["bob@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(Stored("dave", "special offer"), Is.Empty);
        replies = Deliver(Message("noise", to: "dave@example.org"), "sender@remote.test", "dave@example.org");
        Assert.That(replies["dave@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(Files(Home("dave")).Where(f => File.ReadAllText(f).Contains("Subject: noise")), Is.Empty);
        Assert.That(_authd.Log(), Does.Contain("to=<dave@example.org>, relay=local").And.Contain("status=sent (discarded by sieve)"));
    }

    private async Task<string> ArrivedAsync(string marker)
    {
        string? found = null;
        Assert.That(await Wait.UntilAsync(() => Directory.Exists(RemoteInbox) &&
            (found = Directory.GetFiles(RemoteInbox).Select(File.ReadAllText).FirstOrDefault(m => m.Contains(marker))) != null, TimeSpan.FromSeconds(30)),
            Is.True, $"'{marker}' did not arrive at the far end: {_authd.Log()}\n--- far end:\n{_remote.Log()}");
        return found!;
    }

    [Test]
    public async Task A_redirect_leaves_through_mtad_with_an_srs_sender_and_copy_keeps_it_too()
    {
        Activate("bob", """
            require ["copy"];
            if header :contains "subject" "pass on" { redirect :copy "someone@remote.test"; }
            """);
        // Two recipients: the stored copy has no Delivered-To, so the redirected one gains bob's.
        var replies = Deliver(Message("please pass on", from: "alice@sender.test", to: "bob@example.org, dave@example.org"), "alice@sender.test",
            "bob@example.org", "dave@example.org");
        Assert.That(replies["bob@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(File.ReadAllText(Stored("bob", "please pass on").Single()), Does.Not.Contain("Delivered-To:"));
        Assert.That(Stored("bob", "please pass on"), Has.Count.EqualTo(1), ":copy keeps it");
        var arrived = await ArrivedAsync("Subject: please pass on");
        var returnPath = Regex.Match(arrived, @"^Return-Path: <([^>]*)>", RegexOptions.Multiline).Groups[1].Value;
        Assert.That(returnPath, Does.Match(@"^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=sender\.test=alice@example\.org$"), "the sender, rewritten by SRS");
        Assert.That(Regex.Matches(arrived, "(?m)^Delivered-To: bob@example\\.org").Count, Is.EqualTo(1), "one Delivered-To naming bob, for loop checks");
    }

    [Test]
    public async Task A_vacation_reply_goes_once_per_sender_and_never_to_a_list()
    {
        Activate("carol", """
            require ["vacation"];
            vacation :days 1 :subject "Away" "I am away until Monday.";
            """);
        var first = Message("question one", from: "asker@remote.test", to: "carol@example.org");
        Assert.That(Deliver(first, "asker@remote.test", "carol@example.org")["carol@example.org"], Does.StartWith("250 2.0.0"));
        var reply = await ArrivedAsync("I am away until Monday.");
        Assert.That(reply, Does.Contain("Subject: Away"));
        Assert.That(reply, Does.Contain("Auto-Submitted: auto-replied"));
        Assert.That(reply, Does.Match(@"(?m)^Return-Path: <>"), "sent from the null sender (RFC 5230 5.1)");
        Assert.That(reply, Does.Match(@"(?m)^To: asker@remote\.test"));
        Assert.That(reply, Does.Contain("In-Reply-To: <" + Regex.Match(first, "Message-ID: <([^>]+)>").Groups[1].Value + ">"));
        Assert.That(Stored("carol", "question one"), Has.Count.EqualTo(1), "vacation keeps the message");

        // The same sender again within the period, and a list message: no reply.
        Deliver(Message("question two", from: "asker@remote.test", to: "carol@example.org"), "asker@remote.test", "carol@example.org");
        Deliver(Message("list post", from: "list@remote.test", to: "carol@example.org", extra: "List-Id: <l.remote.test>\r\n"), "list-bounces@remote.test", "carol@example.org");
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("no vacation reply to <list-bounces@remote.test>"), TimeSpan.FromSeconds(10)), Is.True, _authd.Log());
        Assert.That(_authd.Log(), Does.Contain("no vacation reply to <asker@remote.test>: already replied"));
        Assert.That(Directory.GetFiles(RemoteInbox).Count(f => File.ReadAllText(f).Contains("I am away until Monday.")), Is.EqualTo(1));
    }

    [Test]
    public void Editheader_changes_only_that_recipients_copy_and_a_changed_script_is_used_at_once()
    {
        Activate("dave", """
            require ["editheader"];
            addheader "X-Filtered" "by dave's script";
            deleteheader "X-Tracking";
            """);
        var message = Message("edited", to: "dave@example.org, bob@example.org", extra: "X-Tracking: 1234\r\n");
        Activate("bob", "keep;");
        Deliver(message, "sender@remote.test", "dave@example.org", "bob@example.org");
        var daves = File.ReadAllText(Stored("dave", "edited").Single());
        Assert.That(daves, Does.StartWith("X-Filtered: by dave's script\n"));
        Assert.That(daves, Does.Not.Contain("X-Tracking"));
        Assert.That(daves, Does.EndWith("\nBody of edited.\n"));
        var bobs = File.ReadAllText(Stored("bob", "edited").Single());
        Assert.That(bobs, Does.Contain("X-Tracking: 1234").And.Not.Contain("X-Filtered"));

        Activate("dave", """
            require ["fileinto", "mailbox"];
            fileinto :create "Changed";
            """);
        Deliver(Message("after the change", to: "dave@example.org"), "sender@remote.test", "dave@example.org");
        Assert.That(Stored("dave", "after the change", ".Changed"), Has.Count.EqualTo(1));
    }

    [Test]
    public void Duplicate_discards_a_message_id_seen_before_and_spam_goes_to_junk_by_the_before_script()
    {
        Activate("bob", """
            require ["duplicate"];
            if duplicate { discard; stop; }
            """);
        var message = Message("twice");
        Deliver(message, "sender@remote.test", "bob@example.org");
        Deliver(message, "sender@remote.test", "bob@example.org");
        Assert.That(Stored("bob", "twice"), Has.Count.EqualTo(1));
        Deliver(Message("spammy", extra: "X-Spam-Flag: YES\r\n"), "sender@remote.test", "bob@example.org");
        Assert.That(Stored("bob", "spammy", ".Junk"), Has.Count.EqualTo(1));
        Assert.That(Stored("bob", "spammy"), Is.Empty);
    }

    [Test]
    public async Task Roundcube_sets_up_a_filter_and_a_vacation_reply_through_managesieve_and_delivery_obeys_both()
    {
        _imap ??= await ImapServer.StartAsync(_authd);
        // The folder the filter files into, made and subscribed as a user would in the mail view.
        using (var client = new MailKit.Net.Imap.ImapClient())
        {
            await client.ConnectAsync("127.0.0.1", _imap.Port, MailKit.Security.SecureSocketOptions.None);
            await client.AuthenticateAsync("frank@example.org", "pass");
            var folder = await client.GetFolder(client.PersonalNamespaces[0]).CreateAsync("Projects", true);
            await folder.SubscribeAsync();
            await client.DisconnectAsync(true);
        }
        using var roundcube = RoundcubeServer.Start(_imap.Port, _imap.SievePort);
        Peers.Require("chromium");
        Peers.Require("chromedriver");
        var browser = Run.Program("/usr/bin/python3", [Path.Combine(Repo.Root, "tests", "Mail.Tests", "Resources", "roundcube_filters.py"),
            roundcube.Url, "frank@example.org", "pass", "Xylophone", "Projects", "Away", "Frank is away until Tuesday."], timeoutMs: 180_000);
        Assert.That(browser.ExitCode, Is.Zero, browser.Stdout + browser.Stderr + roundcube.Log());
        Assert.That(browser.Stdout, Does.Contain("saved: ok\n"));
        Assert.That(browser.Stdout, Does.Contain("vacation: Out-of-office data saved successfully."));
        Assert.That(browser.Stdout, Does.Contain("listed: Out of Office | Xylophone to Projects"));
        Assert.That(new FileInfo(Path.Combine(Home("frank"), ".dovecot.sieve")).LinkTarget, Is.EqualTo("sieve/roundcube.sieve"), "Roundcube's script is active");

        var replies = Deliver(Message("Xylophone lessons", from: "teacher@remote.test", to: "frank@example.org"), "teacher@remote.test", "frank@example.org");
        Assert.That(replies["frank@example.org"], Does.StartWith("250 2.0.0"));
        Assert.That(Stored("frank", "Xylophone lessons", ".Projects"), Has.Count.EqualTo(1), _authd.Log());
        Assert.That(Stored("frank", "Xylophone lessons"), Is.Empty);
        var reply = await ArrivedAsync("Frank is away until Tuesday.");
        Assert.That(reply, Does.Contain("Subject: Away").And.Match(@"(?m)^To: teacher@remote\.test"));
    }
}
