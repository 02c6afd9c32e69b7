using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using MimeKit;

namespace Mail.Tests.Imap;

/// <summary>imappopd driven by MailKit's ImapClient, over mail that lmtpd delivered.</summary>
[NonParallelizable]
public sealed partial class ImapTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private ImapServer _imap = null!;

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        _imap = await ImapServer.StartAsync(_authd);
    }

    [TearDown]
    public async Task Stop()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine(string.Join('\n', _authd.Log().Split('\n').TakeLast(40)));
        await _imap.DisposeAsync();
        await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    private void Deliver(string to, string subject, string body, string from = "ann@remote.test")
    {
        var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{_lmtp.Port}", "--from", from, "--to", to,
            "--header", $"Subject: {subject}", "--body", body, "--timeout", "30"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
    }

    private async Task<ImapClient> LoginAsync(string user = "bob@example.org", string password = "bob pass")
    {
        var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync("127.0.0.1", _imap.Port, SecureSocketOptions.StartTls);
        await client.AuthenticateAsync(user, password);
        return client;
    }

    [Test]
    public async Task Login_lists_the_special_use_folders_and_reads_delivered_mail()
    {
        Deliver("bob@example.org", "first", "Hello Bob, line one.");
        Deliver("bob@example.org", "second", "Second message.");
        using var client = await LoginAsync();
        Assert.That(client.Capabilities.HasFlag(ImapCapabilities.UidPlus) && client.Capabilities.HasFlag(ImapCapabilities.Move) && client.Capabilities.HasFlag(ImapCapabilities.Idle), Is.True);
        var personal = client.GetFolder(client.PersonalNamespaces[0]);
        var folders = (await personal.GetSubfoldersAsync(false)).Select(f => f.FullName).ToList();
        Assert.That(folders, Is.SupersetOf(new[] { "Drafts", "Sent", "Trash", "Junk", "Archive" }));
        Assert.That(client.GetFolder(SpecialFolder.Sent)?.FullName, Is.EqualTo("Sent"));
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.That(inbox.Count, Is.EqualTo(2));
        Assert.That(inbox.Recent, Is.EqualTo(2));
        var summaries = await inbox.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Envelope | MessageSummaryItems.Flags |
                                                      MessageSummaryItems.Size | MessageSummaryItems.BodyStructure | MessageSummaryItems.InternalDate);
        Assert.That(summaries.Select(s => s.Envelope.Subject), Is.EqualTo(new[] { "first", "second" }));
        Assert.That(summaries.Select(s => s.UniqueId.Id), Is.EqualTo(new uint[] { 1, 2 }));
        Assert.That(summaries.All(s => !s.Flags!.Value.HasFlag(MessageFlags.Seen)), Is.True);
        var message = await inbox.GetMessageAsync(summaries[0].UniqueId);
        Assert.That(message.TextBody, Does.Contain("Hello Bob, line one."));
        // RFC 3501 2.3.4: RFC822.SIZE is the number of octets of BODY[], exactly.
        using (var raw = await inbox.GetStreamAsync(summaries[0].UniqueId, ""))
        {
            var bytes = new MemoryStream();
            await raw.CopyToAsync(bytes);
            Assert.That(summaries[0].Size, Is.EqualTo(bytes.Length));
        }
        // MailKit reads with BODY.PEEK[]: still unseen. Marking it seen is seen by a second session.
        Assert.That((await inbox.FetchAsync([summaries[0].UniqueId], MessageSummaryItems.Flags))[0].Flags!.Value.HasFlag(MessageFlags.Seen), Is.False);
        await inbox.AddFlagsAsync(summaries[0].UniqueId, MessageFlags.Seen, true);
        using var other = await LoginAsync();
        await other.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var flags = await other.Inbox.FetchAsync(0, -1, MessageSummaryItems.Flags);
        Assert.That(flags[0].Flags!.Value.HasFlag(MessageFlags.Seen), Is.True);
        Assert.That(flags[1].Flags!.Value.HasFlag(MessageFlags.Seen), Is.False);
    }

    [Test]
    public async Task Store_search_copy_move_expunge_and_append_with_uidplus()
    {
        for (int i = 0; i < 5; i++) Deliver("bob@example.org", $"msg {i}", i % 2 == 0 ? "even body" : "odd body");
        using var client = await LoginAsync();
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var all = await inbox.SearchAsync(SearchQuery.All);
        Assert.That(all, Has.Count.EqualTo(5));
        await inbox.AddFlagsAsync(all[0], MessageFlags.Flagged, true);
        await inbox.AddFlagsAsync(all[1], MessageFlags.Seen, true);
        await inbox.StoreAsync(all[2], new StoreFlagsRequest(StoreAction.Add, MessageFlags.None) { Keywords = { "$Important" }, Silent = true });
        Assert.That(await inbox.SearchAsync(SearchQuery.Flagged), Is.EqualTo(new[] { all[0] }));
        Assert.That(await inbox.SearchAsync(SearchQuery.NotSeen), Has.Count.EqualTo(4));
        Assert.That(await inbox.SearchAsync(SearchQuery.HasKeyword("$Important")), Is.EqualTo(new[] { all[2] }));
        Assert.That(await inbox.SearchAsync(SearchQuery.BodyContains("odd")), Has.Count.EqualTo(2));
        Assert.That(await inbox.SearchAsync(SearchQuery.SubjectContains("MSG 3")), Has.Count.EqualTo(1));
        Assert.That(await inbox.SearchAsync(SearchQuery.Or(SearchQuery.Flagged, SearchQuery.Seen)), Has.Count.EqualTo(2));

        var archive = client.GetFolder("Archive");
        var moved = await inbox.MoveToAsync(all[3], archive);
        Assert.That(moved, Is.Not.Null, "COPYUID from MOVE");
        Assert.That(inbox.Count, Is.EqualTo(4));
        var copied = await inbox.CopyToAsync(all[2], archive);
        Assert.That(copied, Is.Not.Null);
        await archive.OpenAsync(FolderAccess.ReadOnly);
        var inArchive = await archive.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Envelope | MessageSummaryItems.Flags);
        Assert.That(inArchive.Select(s => s.Envelope.Subject), Is.EquivalentTo(new[] { "msg 3", "msg 2" }));
        Assert.That(inArchive.Single(s => s.Envelope.Subject == "msg 2").Keywords, Does.Contain("$Important"), "keywords travel with COPY");

        await inbox.OpenAsync(FolderAccess.ReadWrite);
        await inbox.AddFlagsAsync(all[0], MessageFlags.Deleted, true);
        await inbox.ExpungeAsync();
        Assert.That(inbox.Count, Is.EqualTo(3));

        var sent = client.GetFolder("Sent");
        var appended = await sent.AppendAsync(new MimeMessage(new[] { MailboxAddress.Parse("bob@example.org") }, new[] { MailboxAddress.Parse("x@remote.test") },
            "appended", new TextPart("plain") { Text = "kept in Sent\r\n.leading dot\r\n" }), MessageFlags.Seen);
        Assert.That(appended, Is.Not.Null, "APPENDUID");
        await sent.OpenAsync(FolderAccess.ReadOnly);
        var back = await sent.GetMessageAsync(appended!.Value);
        Assert.That(back.Subject, Is.EqualTo("appended"));
        Assert.That(back.TextBody, Does.Contain(".leading dot"));
    }

    [Test]
    public async Task Create_rename_delete_subscribe_and_status()
    {
        using var client = await LoginAsync();
        var personal = client.GetFolder(client.PersonalNamespaces[0]);
        var projects = await personal.CreateAsync("Projects", true);
        var y2024 = await projects.CreateAsync("2024", true);
        Assert.That(y2024.FullName, Is.EqualTo("Projects/2024"));
        Assert.That(Directory.Exists(Path.Combine(_authd.Dir["mail"], "example.org", "bob", ".Projects.2024", "cur")), Is.True, "Maildir++ layout");
        await y2024.SubscribeAsync();
        await projects.RenameAsync(personal, "Work");
        var names = (await personal.GetSubfoldersAsync(false)).Select(f => f.FullName).ToList();
        Assert.That(names, Does.Contain("Work").And.Not.Contain("Projects"));
        var work2024 = client.GetFolder("Work/2024");
        await work2024.StatusAsync(StatusItems.Count | StatusItems.UidNext | StatusItems.UidValidity);
        Assert.That(work2024.Count, Is.EqualTo(0));
        await work2024.DeleteAsync();
        Assert.That(Directory.Exists(Path.Combine(_authd.Dir["mail"], "example.org", "bob", ".Work.2024")), Is.False);
        var umlaut = await personal.CreateAsync("Entwürfe", true);
        Assert.That(Directory.Exists(Path.Combine(_authd.Dir["mail"], "example.org", "bob", ".Entw&APw-rfe")), Is.True, "modified UTF-7 on disk");
        Assert.That((await personal.GetSubfoldersAsync(false)).Select(f => f.FullName), Does.Contain("Entwürfe"));
    }

    [Test]
    public async Task A_large_append_goes_through_disk_and_comes_back_whole()
    {
        using var client = await LoginAsync();
        var body = string.Concat(Enumerable.Range(0, 200_000).Select(i => $"line {i} of a large message\r\n"));
        var message = new MimeMessage(new[] { MailboxAddress.Parse("bob@example.org") }, new[] { MailboxAddress.Parse("bob@example.org") }, "large",
            new TextPart("plain") { Text = body });
        var uid = await client.Inbox.AppendAsync(message);
        Assert.That(uid, Is.Not.Null);
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var back = await client.Inbox.GetMessageAsync(uid!.Value);
        Assert.That(back.TextBody.Replace("\r\n", "\n"), Is.EqualTo(body.Replace("\r\n", "\n")));
        Assert.That(Directory.GetFiles(Path.Combine(_authd.Dir["mail"], "example.org", "bob", "tmp")), Is.Empty, "the spilled literal is gone");
    }

    [Test]
    public async Task Quota_comes_from_the_directory_and_append_beyond_it_is_refused()
    {
        await _authd.AddUserAsync("tiny@example.org", PasswordScheme.Hash("tiny pass", "SHA512-CRYPT"), quota: 4096);
        Deliver("tiny@example.org", "small", new string('a', 1000));
        using var client = await LoginAsync("tiny@example.org", "tiny pass");
        Assert.That(client.Capabilities.HasFlag(ImapCapabilities.Quota), Is.True);
        var quota = await client.Inbox.GetQuotaAsync();
        Assert.That(quota.StorageLimit, Is.EqualTo(4));
        Assert.That(quota.CurrentStorageSize, Is.GreaterThanOrEqualTo(1));
        var big = new MimeMessage(new[] { MailboxAddress.Parse("tiny@example.org") }, new[] { MailboxAddress.Parse("tiny@example.org") }, "big",
            new TextPart("plain") { Text = new string('b', 8000) });
        var e = Assert.ThrowsAsync<ImapCommandException>(async () => await client.Inbox.AppendAsync(big));
        Assert.That(e!.ResponseText, Does.Contain("Quota exceeded"));
        var smallOne = new MimeMessage(new[] { MailboxAddress.Parse("tiny@example.org") }, new[] { MailboxAddress.Parse("tiny@example.org") }, "fits",
            new TextPart("plain") { Text = "ok" });
        Assert.That(await client.Inbox.AppendAsync(smallOne), Is.Not.Null);
        var after = await client.Inbox.GetQuotaAsync();
        Assert.That(after.CurrentStorageSize, Is.GreaterThanOrEqualTo(quota.CurrentStorageSize), "APPEND counts in maildirsize");
    }

    [Test]
    public async Task Without_tls_there_is_no_plaintext_login_unless_loopback_is_trusted()
    {
        await _imap.DisposeAsync();
        _imap = await ImapServer.StartAsync(_authd, "trust_loopback = no");
        using (var plain = new ImapClient())
        {
            await plain.ConnectAsync("127.0.0.1", _imap.Port, SecureSocketOptions.None);
            Assert.That(plain.Capabilities.HasFlag(ImapCapabilities.LoginDisabled), Is.True, "LOGINDISABLED");
            Assert.That(plain.Capabilities.HasFlag(ImapCapabilities.StartTLS), Is.True);
            Assert.That(plain.AuthenticationMechanisms, Is.Empty, "no AUTH= before TLS");
            Assert.ThrowsAsync<AuthenticationException>(async () => await plain.AuthenticateAsync("bob@example.org", "bob pass"));
        }
        using var raw = await Raw.ConnectAsync(_imap.Port);
        await raw.Read();
        await raw.Send("a LOGIN bob@example.org \"bob pass\"\r\nb AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLm9yZwBib2IgcGFzcw==\r\n");
        Assert.That(await raw.Read(), Does.StartWith("a NO [PRIVACYREQUIRED]"));
        Assert.That(await raw.Read(), Does.StartWith("b NO [PRIVACYREQUIRED]"));
        Assert.That(_authd.Log(), Does.Not.Contain("user=<bob@example.org>, result=ok"), "the password never reached AuthD");
        using var tls = await LoginAsync();
        Assert.That(tls.IsAuthenticated && tls.IsSecure, Is.True, "after STARTTLS the login works");
    }

    [Test]
    public async Task Sessions_per_user_are_limited()
    {
        await _imap.DisposeAsync();
        _imap = await ImapServer.StartAsync(_authd, "max_sessions_per_user = 2");
        using var a = await LoginAsync();
        using var b = await LoginAsync();
        var e = Assert.ThrowsAsync<AuthenticationException>(async () => { using var c = await LoginAsync(); });
        Assert.That(e!.Message, Does.Contain("Too many simultaneous connections"));
        await a.DisconnectAsync(true);
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("disconnect from"), TimeSpan.FromSeconds(10)), Is.True);
        using var d = await LoginAsync();
        Assert.That(d.IsAuthenticated, Is.True, "a session freed is a session for the next login");
    }

    [Test]
    public async Task Condstore_and_qresync_tell_a_returning_client_only_what_changed()
    {
        for (int i = 1; i <= 4; i++) Deliver("bob@example.org", $"q{i}", "text");
        ulong highest;
        uint validity;
        UniqueIdSet known;
        using (var first = await LoginAsync())
        {
            Assert.That(first.Capabilities.HasFlag(ImapCapabilities.CondStore) && first.Capabilities.HasFlag(ImapCapabilities.QuickResync), Is.True);
            await first.Inbox.OpenAsync(FolderAccess.ReadOnly);
            highest = first.Inbox.HighestModSeq;
            validity = first.Inbox.UidValidity;
            known = new UniqueIdSet((await first.Inbox.SearchAsync(MailKit.Search.SearchQuery.All)).ToList(), SortOrder.Ascending);
            Assert.That(highest, Is.GreaterThan(0UL));
        }
        using (var other = await LoginAsync())
        {
            await other.Inbox.OpenAsync(FolderAccess.ReadWrite);
            var uids = await other.Inbox.SearchAsync(MailKit.Search.SearchQuery.All);
            await other.Inbox.AddFlagsAsync(uids[1], MessageFlags.Flagged, true);
            await other.Inbox.AddFlagsAsync(uids[2], MessageFlags.Deleted, true);
            await other.Inbox.ExpungeAsync();
        }
        using var back = await LoginAsync();
        await back.EnableQuickResyncAsync();
        var vanished = new List<UniqueId>();
        var changed = new List<(UniqueId? Uid, ulong? ModSeq, MessageFlags Flags)>();
        back.Inbox.MessagesVanished += (_, e) => vanished.AddRange(e.UniqueIds);
        back.Inbox.MessageFlagsChanged += (_, e) => changed.Add((e.UniqueId, e.ModSeq, e.Flags));
        await back.Inbox.OpenAsync(FolderAccess.ReadWrite, validity, highest, known);
        Assert.That(vanished, Is.EqualTo(new[] { known[2] }), "VANISHED (EARLIER) names the expunged UID");
        Assert.That(changed.Select(c => c.Uid), Is.EqualTo(new UniqueId?[] { known[1] }), "only the changed message is reported");
        Assert.That(changed[0].Flags.HasFlag(MessageFlags.Flagged) && changed[0].ModSeq > highest, Is.True);
        Assert.That(back.Inbox.HighestModSeq, Is.GreaterThan(highest));
        var since = await back.Inbox.FetchAsync(UniqueIdRange.All, highest, MessageSummaryItems.Flags | MessageSummaryItems.ModSeq);
        Assert.That(since.Select(m => m.UniqueId), Is.EqualTo(new[] { known[1] }), "FETCH CHANGEDSINCE");
        // A conditional STORE against an old mod-sequence is refused for the message that changed since.
        var refused = await back.Inbox.StoreAsync(new[] { known[0], known[1] }, new StoreFlagsRequest(StoreAction.Add, MessageFlags.Seen) { UnchangedSince = highest, Silent = true });
        Assert.That(refused, Is.EqualTo(new[] { known[1] }), "[MODIFIED]");
        var flags = await back.Inbox.FetchAsync(new[] { known[0], known[1] }, MessageSummaryItems.Flags);
        Assert.That(flags[0].Flags!.Value.HasFlag(MessageFlags.Seen), Is.True);
        Assert.That(flags[1].Flags!.Value.HasFlag(MessageFlags.Seen), Is.False);
        Assert.That(await back.Inbox.SearchAsync(MailKit.Search.SearchQuery.ChangedSince(highest)), Does.Contain(known[0]).And.Contain(known[1]));
    }

    [Test]
    public async Task Concurrent_sessions_appending_flagging_and_expunging_stay_consistent()
    {
        for (int i = 0; i < 20; i++) Deliver("bob@example.org", $"start {i}", "x");
        async Task Appender()
        {
            using var c = await LoginAsync();
            for (int i = 0; i < 30; i++)
                await c.Inbox.AppendAsync(new MimeMessage(new[] { MailboxAddress.Parse("a@remote.test") }, new[] { MailboxAddress.Parse("bob@example.org") },
                    $"appended {i}", new TextPart("plain") { Text = "y" }));
        }
        async Task Flagger()
        {
            using var c = await LoginAsync();
            await c.Inbox.OpenAsync(FolderAccess.ReadWrite);
            for (int i = 0; i < 30; i++)
            {
                await c.NoOpAsync();
                if (c.Inbox.Count == 0) continue;
                var uids = await c.Inbox.SearchAsync(MailKit.Search.SearchQuery.All);
                await c.Inbox.AddFlagsAsync(uids[i % uids.Count], i % 2 == 0 ? MessageFlags.Flagged : MessageFlags.Seen, true);
            }
        }
        async Task Expunger()
        {
            using var c = await LoginAsync();
            await c.Inbox.OpenAsync(FolderAccess.ReadWrite);
            for (int i = 0; i < 15; i++)
            {
                var uids = await c.Inbox.SearchAsync(MailKit.Search.SearchQuery.All);
                if (uids.Count > 0) await c.Inbox.AddFlagsAsync(uids[0], MessageFlags.Deleted, true);
                await c.Inbox.ExpungeAsync();
            }
        }
        await Task.WhenAll(Appender(), Flagger(), Expunger());
        Assert.That(_authd.Log(), Does.Not.Contain("failed for"), "no command failed on the server");
        // Two fresh sessions and the files agree.
        using var a = await LoginAsync();
        using var b = await LoginAsync();
        await a.Inbox.OpenAsync(FolderAccess.ReadOnly);
        await b.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var va = await a.Inbox.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Flags);
        var vb = await b.Inbox.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Flags);
        Assert.That(va.Select(m => (m.UniqueId.Id, m.Flags & ~MessageFlags.Recent)), Is.EqualTo(vb.Select(m => (m.UniqueId.Id, m.Flags & ~MessageFlags.Recent))));
        var files = Directory.GetFiles(Path.Combine(_authd.Dir["mail"], "example.org", "bob", "cur")).Length +
                    Directory.GetFiles(Path.Combine(_authd.Dir["mail"], "example.org", "bob", "new")).Length;
        Assert.That(va, Has.Count.EqualTo(files));
        Assert.That(va.Count, Is.EqualTo(20 + 30 - 15));
        Assert.That(va.Select(m => m.UniqueId.Id).Distinct().Count(), Is.EqualTo(va.Count), "UIDs unique");
    }

    [Test]
    public async Task Idle_reports_a_new_delivery()
    {
        using var client = await LoginAsync();
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var arrived = new TaskCompletionSource();
        inbox.CountChanged += (_, _) => { if (inbox.Count == 1) arrived.TrySetResult(); };
        using var done = new CancellationTokenSource();
        var idle = client.IdleAsync(done.Token);
        Deliver("bob@example.org", "while idle", "ping");
        var first = await Task.WhenAny(arrived.Task, Task.Delay(TimeSpan.FromSeconds(10)));
        done.Cancel();
        await idle;
        Assert.That(first, Is.SameAs(arrived.Task), "EXISTS arrived during IDLE");
    }
}

/// <summary>The FETCH listing of a large mailbox comes from the index after the first time, and stays right.</summary>
[NonParallelizable]
public sealed class ImapIndexTests
{
    [Test]
    public async Task Listing_10000_messages_parses_each_once_and_follows_changes_behind_its_back()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await using var imap = await ImapServer.StartAsync(authd);
        var maildir = Path.Combine(authd.Dir["mail"], "example.org", "bob");
        foreach (var d in new[] { "cur", "new", "tmp" }) Directory.CreateDirectory(Path.Combine(maildir, d));
        const int n = 10_000;
        for (int i = 0; i < n; i++)
        {
            var text = $"From: Sender {i} <s{i}@remote.test>\nTo: bob@example.org\nSubject: number {i}\nMessage-ID: <{i}@remote.test>\n\nbody {i}\n";
            var name = $"{1700000000 + i}.M{i}P1.test,S={text.Length},W={text.Length + 6}";
            File.WriteAllText(Path.Combine(maildir, "cur", name + ":2,S"), text);
        }
        using var client = new ImapClient();
        await client.ConnectAsync("127.0.0.1", imap.Port, SecureSocketOptions.None);
        await client.AuthenticateAsync("bob@example.org", "bob pass");
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.That(inbox.Count, Is.EqualTo(n));
        const MessageSummaryItems listing = MessageSummaryItems.UniqueId | MessageSummaryItems.Flags | MessageSummaryItems.Envelope |
                                            MessageSummaryItems.Size | MessageSummaryItems.InternalDate | MessageSummaryItems.BodyStructure;
        var before = Mail.ImapPop.Imap.MessageView.Loads;
        var first = await inbox.FetchAsync(UniqueIdRange.All, listing);
        Assert.That(first, Has.Count.EqualTo(n));
        Assert.That(Mail.ImapPop.Imap.MessageView.Loads - before, Is.EqualTo(n), "each message parsed once");
        // Written after the answer, in the background.
        Assert.That(await Wait.UntilAsync(() => File.Exists(Path.Combine(maildir, "imappop.index")), TimeSpan.FromSeconds(10)), Is.True);
        before = Mail.ImapPop.Imap.MessageView.Loads;
        var second = await inbox.FetchAsync(UniqueIdRange.All, listing);
        Assert.That(Mail.ImapPop.Imap.MessageView.Loads - before, Is.EqualTo(0), "the second listing reads no message");
        Assert.That(second.Select(s => s.Envelope.Subject), Is.EqualTo(first.Select(s => s.Envelope.Subject)));
        // The first SEARCH TEXT reads every message and leaves a filter of each in the index;
        // the next reads only the messages whose filter may hold the needle.
        var found = await inbox.SearchAsync(MailKit.Search.SearchQuery.MessageContains("s4242@remote"));
        Assert.That(found.Select(u => u.Id), Is.EqualTo(new[] { first[4242].UniqueId.Id }));
        before = Mail.ImapPop.Imap.MessageView.Loads;
        found = await inbox.SearchAsync(MailKit.Search.SearchQuery.MessageContains("s4243@remote"));
        Assert.That(found.Select(u => u.Id), Is.EqualTo(new[] { first[4243].UniqueId.Id }));
        Assert.That(Mail.ImapPop.Imap.MessageView.Loads - before, Is.LessThan(100), "not every message read again");
        await inbox.CloseAsync();

        // Behind its back: one removed, one renamed with a new flag, one added.
        var files = Directory.GetFiles(Path.Combine(maildir, "cur")).Order().ToList();
        File.Delete(files.Single(f => f.Contains(".M5P1.")));
        var renamed = files.Single(f => f.Contains(".M7P1."));
        File.Move(renamed, renamed.Replace(":2,S", ":2,FS"));
        var added = "From: late@remote.test\nSubject: newcomer\n\nhi\n";
        File.WriteAllText(Path.Combine(maildir, "new", $"1800000000.M1P1.test,S={added.Length},W={added.Length + 4}"), added);
        await inbox.OpenAsync(FolderAccess.ReadOnly);
        before = Mail.ImapPop.Imap.MessageView.Loads;
        var third = await inbox.FetchAsync(UniqueIdRange.All, listing);
        Assert.That(Mail.ImapPop.Imap.MessageView.Loads - before, Is.EqualTo(1), "only the new message is parsed");
        Assert.That(third, Has.Count.EqualTo(n));
        Assert.That(third.Any(s => s.Envelope.Subject == "number 5"), Is.False);
        Assert.That(third.Single(s => s.Envelope.Subject == "number 7").Flags!.Value.HasFlag(MessageFlags.Flagged), Is.True);
        Assert.That(third[^1].Envelope.Subject, Is.EqualTo("newcomer"));
        Assert.That(third[^1].UniqueId.Id, Is.EqualTo((uint)n + 1));
        Assert.That(third.Take(5).Select(s => s.UniqueId.Id), Is.EqualTo(first.Take(5).Select(s => s.UniqueId.Id)), "UIDs unchanged");
    }
}
