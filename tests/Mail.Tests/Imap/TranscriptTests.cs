using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>
/// IMAP and POP3 transcripts (tests/Mail.Tests/Transcripts) replayed against imappopd, over three
/// messages that lmtpd delivered; the actions stand for another session or server working on
/// the same Maildir meanwhile.
/// </summary>
[NonParallelizable]
public sealed class TranscriptTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private ImapServer _imap = null!;

    private string Inbox => Path.Combine(_authd.Dir["mail"], "example.org", "bob");

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _lmtp = await LmtpServer.StartAsync(_authd);
        _imap = await ImapServer.StartAsync(_authd);
        foreach (var subject in new[] { "first", "second", "third" })
        {
            var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{_lmtp.Port}", "--from", "ann@remote.test",
                "--to", "bob@example.org", "--header", "Subject: " + subject, "--body", "body of " + subject, "--timeout", "30"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        }
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

    /// <summary>The file of the message with this subject, in new/ or cur/.</summary>
    private string FileOf(string subject) =>
        new[] { "new", "cur" }.SelectMany(d => Directory.GetFiles(Path.Combine(Inbox, d))).Single(f => File.ReadAllText(f).Contains("Subject: " + subject + "\n"));

    private Dictionary<string, Func<Task>> Elsewhere => new()
    {
        // Another server expunges the second message.
        ["expunge-second-elsewhere"] = () => { File.Delete(FileOf("second")); return Task.CompletedTask; },
        // Another server flags the first message: its file is renamed.
        ["flag-first-elsewhere"] = () =>
        {
            var path = FileOf("first");
            var name = Path.GetFileName(path);
            var colon = name.IndexOf(":2,", StringComparison.Ordinal);
            File.Move(path, Path.Combine(Inbox, "cur", (colon < 0 ? name : name[..colon]) + ":2,F"));
            return Task.CompletedTask;
        },
    };

    [Test]
    public async Task Every_end_of_an_IMAP_or_POP3_SASL_exchange_gets_its_reply()
    {
        await Transcript.ReplayAsync("imap/authenticate.txt", _imap.Port);
        await Transcript.ReplayAsync("pop3/auth.txt", _imap.Pop3Port);
        Assert.That(_authd.Log(), Does.Contain("method=PLAIN").And.Contain("method=LOGIN"));
    }

    [Test]
    public async Task Changes_by_others_are_told_after_commands_that_take_no_sequence_numbers()
    {
        await Transcript.ReplayAsync("imap/updates-after-commands.txt", _imap.Port, actions: Elsewhere);
    }

    [Test]
    public async Task A_message_with_no_body_and_no_final_newline_costs_only_itself()
    {
        await Transcript.ReplayAsync("imap/malformed-message.txt", _imap.Port);
    }

    [Test]
    public async Task Enable_with_a_syntax_error_enables_nothing()
    {
        await Transcript.ReplayAsync("imap/enable-all-or-nothing.txt", _imap.Port);
    }

    [Test]
    public async Task Uid_expunge_removes_only_the_messages_of_its_set()
    {
        await Transcript.ReplayAsync("imap/uid-expunge.txt", _imap.Port);
        Assert.That(Directory.GetFiles(Path.Combine(Inbox, "cur")), Has.Length.EqualTo(2));
        Assert.That(_authd.Log(), Does.Match(@"reject: UID FROB from \[127\.0\.0\.1\]:\d+ user=<bob@example\.org>: f BAD Unknown UID command"),
            "refused commands are logged");
    }

    [Test]
    public async Task Create_with_a_trailing_separator_makes_the_mailbox_without_it() =>
        await Transcript.ReplayAsync("imap/create-trailing-separator.txt", _imap.Port);

    [Test]
    public async Task A_new_keyword_is_announced_in_flags_before_it_is_shown() => await Transcript.ReplayAsync("imap/new-keyword.txt", _imap.Port);

    [Test]
    public async Task The_largest_uid_is_a_number_never_star() => await Transcript.ReplayAsync("imap/uid-max.txt", _imap.Port);

    [Test]
    public async Task Sent_date_searches_take_the_day_the_date_field_names() => await Transcript.ReplayAsync("imap/search-sent-date.txt", _imap.Port);

    [Test]
    public async Task Address_searches_match_the_parsed_addresses() => await Transcript.ReplayAsync("imap/search-addresses.txt", _imap.Port);

    [Test]
    public async Task A_message_is_recent_to_the_first_session_that_sees_it_however_it_came() => await Transcript.ReplayAsync("imap/recent.txt", _imap.Port);

    [Test]
    public async Task A_mailbox_created_again_gets_a_new_uidvalidity() => await Transcript.ReplayAsync("imap/uidvalidity-recreate.txt", _imap.Port);

    [Test]
    public async Task List_extended_checks_its_options_and_keeps_subscriptions_of_deleted_mailboxes() =>
        await Transcript.ReplayAsync("imap/list-extended.txt", _imap.Port);

    [Test]
    public async Task Condstore_tells_highestmodseq_when_enabled_and_esearch_gives_the_modseq() =>
        await Transcript.ReplayAsync("imap/condstore-esearch.txt", _imap.Port);

    [Test]
    public async Task Binary_decodes_quoted_printable_as_rfc_2045_and_keeps_binary_appends() =>
        await Transcript.ReplayAsync("imap/binary.txt", _imap.Port, new Dictionary<string, string> { ["NUL"] = "\0", ["LF"] = "\n" });

    [Test]
    public async Task Sort_orders_by_keys_from_the_index_and_esort_returns_esearch() => await Transcript.ReplayAsync("imap/sort.txt", _imap.Port);

    [Test]
    public async Task Thread_builds_reference_and_subject_threads() => await Transcript.ReplayAsync("imap/thread.txt", _imap.Port);

    [Test]
    public async Task Searchres_saves_a_result_for_dollar() => await Transcript.ReplayAsync("imap/searchres.txt", _imap.Port);

    [Test]
    public async Task Multiappend_stores_all_or_none_and_catenate_joins_literals_and_urls() =>
        await Transcript.ReplayAsync("imap/multiappend-catenate.txt", _imap.Port);

    [Test]
    public async Task A_search_kept_up_to_date_tells_its_changes() => await Transcript.ReplayAsync("imap/search-update.txt", _imap.Port);

    [Test]
    public async Task A_sort_kept_up_to_date_tells_where_its_changes_go() => await Transcript.ReplayAsync("imap/sort-update.txt", _imap.Port);

    [Test]
    public async Task Metadata_keeps_server_and_mailbox_entries_within_limits() =>
        await Transcript.ReplayAsync("imap/metadata.txt", _imap.Port, new Dictionary<string, string> { ["BIG"] = new string('b', 69998) });

    [Test]
    public async Task Notify_tells_changes_between_commands()
    {
        // What another server does meanwhile: a delivery (a file put into new/, as lmtpd does),
        // a mailbox created whole, the subscriptions file replaced.
        void Deliver(string folder, string subject)
        {
            var dir = Path.Combine(Inbox, folder, "new");
            var tmp = Path.Combine(Inbox, folder, "tmp", "delivery");
            File.WriteAllText(tmp, $"From: ann@remote.test\nSubject: {subject}\n\nhello\n");
            File.Move(tmp, Path.Combine(dir, $"{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.M1P1.test,S=51"));
        }
        await Transcript.ReplayAsync("imap/notify.txt", _imap.Port, actions: new Dictionary<string, Func<Task>>
        {
            ["deliver-to-inbox"] = () => { Deliver("", "new in inbox"); return Task.CompletedTask; },
            ["deliver-to-watched"] = () => { Deliver(".watched", "new in watched"); return Task.CompletedTask; },
            ["create-projects-elsewhere"] = () =>
            {
                var staging = Path.Combine(Inbox, "tmp", "projects");
                foreach (var sub in new[] { "cur", "new", "tmp" }) Directory.CreateDirectory(Path.Combine(staging, sub));
                Directory.Move(staging, Path.Combine(Inbox, ".Projects"));
                return Task.CompletedTask;
            },
            ["subscribe-projects-elsewhere"] = () =>
            {
                var tmp = Path.Combine(Inbox, "tmp", "subscriptions");
                File.WriteAllText(tmp, File.ReadAllText(Path.Combine(Inbox, "subscriptions")) + "Projects\n");
                File.Move(tmp, Path.Combine(Inbox, "subscriptions"), overwrite: true);
                return Task.CompletedTask;
            },
        });
    }

    [Test]
    public async Task A_user_without_quota_has_no_quota_root() => await Transcript.ReplayAsync("imap/quota-unlimited.txt", _imap.Port);

    [Test]
    public async Task An_id_of_thirty_long_fields_is_answered_before_login() =>
        await Transcript.ReplayAsync("imap/id-large.txt", _imap.Port, new Dictionary<string, string> { ["V1024"] = new string('v', 1024) });

    [Test]
    public async Task Fetch_of_a_message_expunged_elsewhere_says_expungeissued_and_reads_a_renamed_one()
    {
        await Transcript.ReplayAsync("imap/fetch-expunged.txt", _imap.Port, actions: Elsewhere);
        Assert.That(_authd.Log(), Does.Contain("c NO [EXPUNGEISSUED]"));
    }

    [Test]
    public async Task Pop3_quit_deletes_a_renamed_message_and_counts_only_what_it_removed()
    {
        await Transcript.ReplayAsync("pop3/quit-after-rename.txt", _imap.Pop3Port, actions: Elsewhere);
        Assert.That(await Wait.UntilAsync(() => _authd.Log().Contains("deleted 1 messages"), TimeSpan.FromSeconds(10)), Is.True, _authd.Log());
        var left = new[] { "new", "cur" }.SelectMany(d => Directory.GetFiles(Path.Combine(Inbox, d))).Select(File.ReadAllText).ToList();
        Assert.That(left, Has.Count.EqualTo(1), "the renamed first message is gone too");
        Assert.That(left[0], Does.Contain("Subject: third"));
    }

    [TestCase("space")]
    [TestCase("inodes")]
    public async Task A_full_disk_is_452_4_3_1_in_lmtp_and_overquota_in_imap_and_nothing_else_breaks(string outOf)
    {
        using var disk = Tmpfs.Mount(Inbox, inodes: 200);
        var actions = new Dictionary<string, Func<Task>>
        {
            ["fill-disk"] = () => { disk.Fill(outOf); return Task.CompletedTask; },
            ["make-room"] = () => { disk.Empty(); return Task.CompletedTask; },
        };
        await Transcript.ReplayAsync("lmtp/full-disk.txt", _lmtp.Port, actions: actions);
        Assert.That(_authd.Log(), Does.Contain("(NoSpace)"), "logged as the error it is");
        await Transcript.ReplayAsync("imap/append-full-disk.txt", _imap.Port, actions: actions);
        Assert.That(_authd.Log(), Does.Match(@"APPEND failed for bob@example\.org \(NoSpace\)"));
        var stored = new[] { "new", "cur" }.SelectMany(d => Directory.GetFiles(Path.Combine(Inbox, d))).Select(File.ReadAllText).ToList();
        Assert.That(stored, Has.Count.EqualTo(2), "what was refused left nothing behind; what was accepted is there");
        Assert.That(Directory.GetFiles(Path.Combine(Inbox, "tmp")), Is.Empty);
    }

    [Test]
    public async Task A_read_only_maildir_is_a_temporary_451_and_delivery_resumes_when_writable()
    {
        using var disk = Tmpfs.Mount(Inbox);
        await Transcript.ReplayAsync("lmtp/read-only-maildir.txt", _lmtp.Port, actions: new Dictionary<string, Func<Task>>
        {
            ["read-only"] = () => { disk.SetReadOnly(true); return Task.CompletedTask; },
            ["read-write"] = () => { disk.SetReadOnly(false); return Task.CompletedTask; },
        });
        Assert.That(_authd.Log(), Does.Contain("(NoPermission)"), "logged as the error it is");
        Assert.That(Directory.GetFiles(Path.Combine(Inbox, "new")).Select(File.ReadAllText).Single(), Does.Contain("Subject: room again"));
        Assert.That(Directory.GetFiles(Path.Combine(Inbox, "tmp")), Is.Empty);
    }
}
