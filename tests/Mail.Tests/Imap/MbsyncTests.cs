using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>mbsync (isync) keeps a local Maildir and our IMAP server in step, both ways, for 1,000 messages.</summary>
[NonParallelizable]
public sealed class MbsyncTests
{
    [Test]
    public async Task Mbsync_synchronises_1000_messages_both_ways_without_errors()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await using var imap = await ImapServer.StartAsync(authd);
        var server = Path.Combine(authd.Dir["mail"], "example.org", "bob");
        foreach (var d in new[] { "cur", "new", "tmp" }) Directory.CreateDirectory(Path.Combine(server, d));
        for (int i = 0; i < 1000; i++)
        {
            var text = $"From: s{i}@remote.test\nTo: bob@example.org\nSubject: sync {i}\nMessage-ID: <sync{i}@remote.test>\n\nbody {i}\n";
            File.WriteAllText(Path.Combine(server, "new", $"{1700000000 + i}.M{i:D4}P1.test,S={text.Length},W={text.Length + 6}"), text);
        }
        var local = authd.Dir["local"];
        Directory.CreateDirectory(local);
        var rc = authd.Dir["mbsyncrc"];
        File.WriteAllText(rc, $"""
            IMAPAccount test
            Host localhost
            Port {imap.Port}
            User bob@example.org
            Pass "bob pass"
            SSLType STARTTLS
            CertificateFile {authd.Dir["cert.pem"]}

            IMAPStore remote
            Account test

            MaildirStore local
            Path {local}/
            Inbox {local}/INBOX
            SubFolders Verbatim

            Channel sync
            Far :remote:
            Near :local:
            Patterns INBOX Archive
            Create Both
            Expunge Both
            SyncState *
            Sync All
            """);
        RunResult Sync()
        {
            var r = Run.Program(Peers.Require("mbsync"), ["-c", rc, "-a"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
            Assert.That(r.Stderr, Does.Not.Contain("Error").And.Not.Contain("error"), r.Stderr);
            return r;
        }
        Sync();
        var inbox = Path.Combine(local, "INBOX");
        Assert.That(Directory.GetFiles(Path.Combine(inbox, "cur")).Length + Directory.GetFiles(Path.Combine(inbox, "new")).Length, Is.EqualTo(1000), "pulled");

        // Local changes: flag 10, delete 5, add 3.
        var files = Directory.GetFiles(Path.Combine(inbox, "cur")).Concat(Directory.GetFiles(Path.Combine(inbox, "new"))).Order().ToList();
        foreach (var f in files.Take(10))
        {
            var name = Path.GetFileName(f);
            var flags = name.Contains(":2,") ? name[(name.IndexOf(":2,") + 3)..] : "";
            var baseName = name.Contains(":2,") ? name[..name.IndexOf(":2,")] : name;
            File.Move(f, Path.Combine(inbox, "cur", baseName + ":2," + new string((flags + "F").Distinct().Order().ToArray())));
        }
        foreach (var f in files.Skip(10).Take(5)) File.Delete(f);
        for (int i = 0; i < 3; i++)
            File.WriteAllText(Path.Combine(inbox, "new", $"1800000000.local{i}.host"), $"From: bob@example.org\nSubject: written offline {i}\n\ntext\n");
        Sync();
        var serverFiles = Directory.GetFiles(Path.Combine(server, "cur")).Concat(Directory.GetFiles(Path.Combine(server, "new"))).ToList();
        Assert.That(serverFiles, Has.Count.EqualTo(998), "5 deleted, 3 added");
        Assert.That(serverFiles.Count(f => Path.GetFileName(f).Contains(":2,") && Path.GetFileName(f)[(Path.GetFileName(f).IndexOf(":2,") + 3)..].Contains('F')), Is.EqualTo(10));
        Assert.That(serverFiles.Count(f => File.ReadAllText(f).Contains("written offline")), Is.EqualTo(3));

        // Server-side change (another client): seen by the next sync.
        var one = serverFiles.First(f => File.ReadAllText(f).Contains("Subject: sync 500\n"));
        File.Delete(one);
        Sync();
        Assert.That(Directory.GetFiles(Path.Combine(inbox, "cur")).Concat(Directory.GetFiles(Path.Combine(inbox, "new")))
            .Count(f => File.ReadAllText(f).Contains("Subject: sync 500\n")), Is.EqualTo(0));
        // Nothing left to do: a sync changes nothing.
        var quiet = Sync();
        Assert.That(quiet.Stdout + quiet.Stderr, Does.Not.Contain("error"));
    }
}
