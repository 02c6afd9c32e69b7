using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using MimeKit;

namespace Mail.Tests.Lmtp;

/// <summary>The LMTP agent over real sockets, with swaks (--protocol LMTP) and by hand, delivering through AuthD.</summary>
public sealed class LmtpTests
{
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private int _port => _lmtp.Port;
    private string Mail => _authd.Dir["mail"];

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        await _authd.AddUserAsync("ann@example.org", PasswordScheme.Hash("x", "SSHA"));
        await _authd.AddUserAsync("small@example.org", PasswordScheme.Hash("x", "SSHA"), quota: 1500);
        await _authd.AddUserAsync("off@example.org", PasswordScheme.Hash("x", "SSHA"), active: false);
        _lmtp = await LmtpServer.StartAsync(_authd, "max_message_size = 100k\nmax_recipients = 5");
    }

    [TearDown]
    public async Task Stop()
    {
        await _lmtp.DisposeAsync();
        await _authd.DisposeAsync();
    }

    private static MimeMessage Message(string body = "Hello Bob.\r\n.leading dot\r\n")
    {
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse("alice@remote.test"));
        m.To.Add(MailboxAddress.Parse("bob@example.org"));
        m.Subject = "Test";
        m.Body = new TextPart("plain") { Text = body };
        return m;
    }

    /// <summary>Sends one message with swaks speaking LMTP; true if every recipient got 250.</summary>
    private bool SendLmtp(MimeMessage message, params string[] to)
    {
        var file = _authd.Dir["msg-" + Guid.NewGuid().ToString("N") + ".eml"];
        message.WriteTo(file);
        var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{_port}", "--from", "alice@remote.test",
            "--to", string.Join(",", to), "--data", file, "--timeout", "30"]);
        return r.ExitCode == 0;
    }

    private string[] NewFiles(string user, string folder = "") =>
        System.IO.Directory.Exists(Path.Combine(Mail, "example.org", user, folder, "new"))
            ? System.IO.Directory.GetFiles(Path.Combine(Mail, "example.org", user, folder, "new")) : [];

    [Test]
    public void Swaks_delivers_into_maildir_with_dovecot_file_names()
    {
        Assert.That(SendLmtp(Message(), "bob@example.org"), Is.True);
        var files = NewFiles("bob");
        Assert.That(files, Has.Length.EqualTo(1));
        var name = Path.GetFileName(files[0]);
        var text = File.ReadAllText(files[0]);
        Assert.That(name, Does.Match(@"^\d+\.M\d+P\d+Q\d+\.[^,/]+,S=\d+,W=\d+$"));
        Assert.That(long.Parse(System.Text.RegularExpressions.Regex.Match(name, @",S=(\d+)").Groups[1].Value), Is.EqualTo(new FileInfo(files[0]).Length));
        var lines = text.Count(c => c == '\n');
        Assert.That(long.Parse(System.Text.RegularExpressions.Regex.Match(name, @",W=(\d+)").Groups[1].Value), Is.EqualTo(new FileInfo(files[0]).Length + lines));
        Assert.That(text, Does.StartWith("Return-Path: <alice@remote.test>\nDelivered-To: bob@example.org\nReceived: from "));
        Assert.That(text, Does.Contain("\n.leading dot\n"), "dot-stuffing removed");
        Assert.That(text, Does.Not.Contain("\r"), "stored with LF line ends, as Dovecot stores them");
        Assert.That(System.IO.Directory.GetFiles(Path.Combine(Mail, "example.org", "bob", "tmp")), Is.Empty);
        Assert.That(File.GetUnixFileMode(Path.Combine(Mail, "example.org", "bob")) & (UnixFileMode)0x3F, Is.EqualTo(UnixFileMode.None), "Maildir is private to its owner");
    }

    [Test]
    public async Task One_reply_per_recipient_and_one_file_linked_for_all()
    {
        await Transcript.ReplayAsync("lmtp/recipients.txt", _port, actions: new Dictionary<string, Func<Task>>
        {
            ["one-file-for-both"] = () =>
            {
                var bob = NewFiles("bob").Single();
                var ann = NewFiles("ann").Single(); // no .lists folder: INBOX
                Assert.That(Inode(bob), Is.EqualTo(Inode(ann)), "one copy on disk, hard-linked");
                Assert.That(File.ReadAllText(bob), Does.Not.Contain("Delivered-To"), "no Delivered-To when the copy is shared");
                return Task.CompletedTask;
            },
        });
    }

    [Test]
    public void Detail_goes_to_an_existing_folder()
    {
        foreach (var sub in new[] { "cur", "new", "tmp" })
            System.IO.Directory.CreateDirectory(Path.Combine(Mail, "example.org", "bob", ".lists", sub));
        Assert.That(SendLmtp(Message(), "bob+lists@example.org"), Is.True);
        Assert.That(NewFiles("bob", ".lists"), Has.Length.EqualTo(1));
        Assert.That(NewFiles("bob"), Is.Empty);
        Assert.That(SendLmtp(Message(), "bob+../../x@example.org"), Is.True);
        Assert.That(NewFiles("bob"), Has.Length.EqualTo(1), "a folder name from an address never leaves the Maildir");
    }

    [Test]
    public async Task Over_quota_is_552_and_maildirsize_is_kept()
    {
        await Transcript.ReplayAsync("lmtp/quota.txt", _port, QuotaValues(1200, "552 5.2.2"), new Dictionary<string, Func<Task>>
        {
            ["maildirsize-counts-it"] = () =>
            {
                Assert.That(File.ReadAllText(Path.Combine(Mail, "example.org", "small", "maildirsize")), Does.StartWith("1500S\n"));
                return Task.CompletedTask;
            },
            ["still-one-message"] = () => { Assert.That(NewFiles("small"), Has.Length.EqualTo(1)); return Task.CompletedTask; },
        });
    }

    private static Dictionary<string, string> QuotaValues(int big, string over) =>
        new() { ["SMALL"] = new string('a', 500), ["BIG"] = new string('b', big), ["OVER"] = over };

    [Test]
    public async Task Over_quota_can_be_made_a_temporary_452()
    {
        await using var temporary = await LmtpServer.StartAsync(_authd, "quota_temporary = yes", name: "lmtp-temp");
        await Transcript.ReplayAsync("lmtp/quota.txt", temporary.Port, QuotaValues(1200, "452 4.2.2"), new Dictionary<string, Func<Task>>
        {
            ["maildirsize-counts-it"] = () => Task.CompletedTask,
            ["still-one-message"] = () => { Assert.That(NewFiles("small"), Has.Length.EqualTo(1)); return Task.CompletedTask; },
        });
    }

    [Test]
    public async Task Protocol_errors_get_the_right_codes_and_the_session_goes_on()
    {
        var values = new Dictionary<string, string>
        {
            ["LONG"] = new string('x', 10_000),
            ["BIG"] = string.Join("\r\n", Enumerable.Repeat(new string('z', 998), 200)),
            ["LF"] = "\n",
        };
        var actions = new Dictionary<string, Func<Task>>
        {
            ["no-message-stored"] = () => { Assert.That(NewFiles("bob"), Is.Empty); return Task.CompletedTask; },
            ["smuggled-line-is-content"] = () =>
            {
                Assert.That(File.ReadAllText(NewFiles("bob").Single()), Does.Contain("one\n\nMAIL FROM:<evil@x>\n"));
                return Task.CompletedTask;
            },
        };
        await Transcript.ReplayAsync("lmtp/protocol-errors.txt", _port, values, actions);
    }

    [Test]
    public async Task Bdat_chunks_make_one_message()
    {
        await Transcript.ReplayAsync("lmtp/bdat-chunks.txt", _port, actions: new Dictionary<string, Func<Task>>
        {
            ["one-message-from-both-chunks"] = () =>
            {
                Assert.That(File.ReadAllText(NewFiles("bob").Single()), Does.EndWith("Subject: chunks\n\nfirst second\n.not stuffed\n"));
                return Task.CompletedTask;
            },
        });
    }

    [Test]
    public async Task Authd_unreachable_is_451_never_550()
    {
        await Transcript.ReplayAsync("lmtp/authd-unreachable.txt", _port, actions: new Dictionary<string, Func<Task>>
        {
            ["stop-authd"] = () => _authd.App.StopAsync(),
        });
        Assert.That(_authd.Log(), Does.Contain("authd unreachable"));
    }

    [Test]
    public async Task Client_vanishing_mid_data_leaves_nothing_behind()
    {
        using (var c = await Raw.ConnectAsync(_port))
        {
            await c.Expect("220");
            await c.Send("LHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
            await c.ExpectLast("250 CHUNKING");
            await c.Expect("250"); await c.Expect("250"); await c.Expect("354");
            await c.Send("Subject: half\r\n\r\nhalf a mess");
        }
        Assert.That(await Wait.UntilAsync(() => System.IO.Directory.GetFiles(Path.Combine(Mail, "example.org", "bob", "tmp")).Length == 0,
            TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(NewFiles("bob"), Is.Empty);
        // The daemon goes on.
        Assert.That(SendLmtp(Message(), "bob@example.org"), Is.True);
        Assert.That(NewFiles("bob"), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task Nul_bytes_are_refused_and_bare_cr_is_kept_as_content()
    {
        await Transcript.ReplayAsync("lmtp/nul-and-bare-cr.txt", _port, new Dictionary<string, string> { ["NUL"] = "\0", ["CR"] = "\r" },
            new Dictionary<string, Func<Task>>
            {
                ["nothing-stored"] = () => { Assert.That(NewFiles("bob"), Is.Empty); return Task.CompletedTask; },
                ["bare-cr-kept"] = () =>
                {
                    Assert.That(File.ReadAllText(NewFiles("bob").Single()), Does.EndWith("\na\rb\n"));
                    return Task.CompletedTask;
                },
            });
    }

    [Test]
    public async Task Stale_tmp_files_are_cleaned_and_fresh_ones_kept()
    {
        var tmp = Path.Combine(Mail, "example.org", "bob", "tmp");
        System.IO.Directory.CreateDirectory(tmp);
        foreach (var sub in new[] { "cur", "new" }) System.IO.Directory.CreateDirectory(Path.Combine(Mail, "example.org", "bob", sub));
        File.WriteAllText(Path.Combine(tmp, "old.partial"), "interrupted");
        File.SetLastWriteTimeUtc(Path.Combine(tmp, "old.partial"), DateTime.UtcNow.AddDays(-2));
        File.WriteAllText(Path.Combine(tmp, "young.partial"), "in progress elsewhere");
        Assert.That(SendLmtp(Message(), "bob@example.org"), Is.True);
        Assert.That(File.Exists(Path.Combine(tmp, "old.partial")), Is.False);
        Assert.That(File.Exists(Path.Combine(tmp, "young.partial")), Is.True);
        await Task.CompletedTask;
    }

    private static string Inode(string path) => Run.Program("stat", ["-c", "%i", path]).Stdout.Trim();
}
