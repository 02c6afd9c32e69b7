using Mail.Shared.IO;
using Mail.Shared.Maildir;
using Mail.Tests.Support;

namespace Mail.Tests.Maildir;

/// <summary>Dovecot's small files, rewritten by us: mode, owner and fields we do not use stay as Dovecot wrote them.</summary>
public sealed class StateFileTests
{
    private static void Mode(string path, string octal) => File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(octal, 8));
    private static string Mode(string path) => Convert.ToString((int)File.GetUnixFileMode(path), 8);

    [Test]
    public void Uidlist_rewrite_keeps_dovecots_mode_and_extension_fields()
    {
        using var dir = new TempDir();
        var maildir = dir["Maildir"];
        MaildirDelivery.Ensure(maildir, 0, 0);
        var old = "1700000000.M1P1.host,S=10,W=11";
        File.WriteAllText(Path.Combine(maildir, "cur", old + ":2,S"), "Subject: a\n");
        // As Dovecot 2.3 writes it: a header field we do not use, sizes per message.
        File.WriteAllText(Path.Combine(maildir, "dovecot-uidlist"), $"3 V1700000000 N2 G0123456789abcdef0123456789abcdef X9\n1 W11 S10 :{old}\n");
        Mode(Path.Combine(maildir, "dovecot-uidlist"), "600");
        File.WriteAllText(Path.Combine(maildir, "new", "1700000001.M2P1.host,S=10,W=11"), "Subject: b\n");

        var state = new MaildirFolder(maildir, 0, 0).Sync(takeNew: true);
        Assert.That(state.Messages.Select(m => m.Uid), Is.EqualTo(new uint[] { 1, 2 }));
        var lines = File.ReadAllLines(Path.Combine(maildir, "dovecot-uidlist"));
        Assert.That(lines[0], Is.EqualTo("3 V1700000000 N3 G0123456789abcdef0123456789abcdef X9"));
        Assert.That(lines[1], Is.EqualTo($"1 W11 S10 :{old}"));
        Assert.That(lines[2], Is.EqualTo("2 :1700000001.M2P1.host,S=10,W=11"));
        Assert.That(Mode(Path.Combine(maildir, "dovecot-uidlist")), Is.EqualTo("600"));
        Assert.That(Directory.GetFiles(maildir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "dovecot-uidlist" }), "no temporary file left");
    }

    [Test]
    public void Subscriptions_and_keywords_keep_their_mode_and_new_ones_are_private()
    {
        using var dir = new TempDir();
        var maildir = dir["Maildir"];
        MaildirDelivery.Ensure(maildir, 0, 0);
        var subscriptions = Path.Combine(maildir, "subscriptions");
        File.WriteAllText(subscriptions, "V\t2\n\nSent\n");
        Mode(subscriptions, "640");
        Subscriptions.Update(maildir, set => set.Add("Archive"), 0, 0);
        Assert.That(Subscriptions.Read(maildir), Is.EquivalentTo(new[] { "Sent", "Archive" }));
        Assert.That(Mode(subscriptions), Is.EqualTo("640"));

        var folder = new MaildirFolder(maildir, 0, 0);
        Assert.That(folder.KeywordLetter("$Forwarded"), Is.EqualTo('a'));
        Assert.That(Mode(Path.Combine(maildir, "dovecot-keywords")), Is.EqualTo("600"), "a new file is private, as Dovecot makes it");
    }

    [Test]
    public void Atomic_write_leaves_the_old_content_when_the_writer_fails()
    {
        using var dir = new TempDir();
        var path = dir["state"];
        AtomicFile.WriteText(path, "one\n");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s => { s.Write("half"u8); throw new InvalidOperationException("disk gone"); }));
        Assert.That(File.ReadAllText(path), Is.EqualTo("one\n"));
        Assert.That(Directory.GetFiles(dir.Path), Has.Length.EqualTo(1), "the temporary file is removed");
    }
}

/// <summary>What the file system says, as the storage error kinds every protocol maps.</summary>
public sealed class StorageErrorTests
{
    private static StorageErrorKind KindOf(Action a)
    {
        try { a(); }
        catch (Exception e) when (StorageError.Is(e)) { return StorageError.Classify(e); }
        Assert.Fail("no error");
        return default;
    }

    [Test]
    public void Errors_of_the_file_system_map_to_their_kinds()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["there"], "x");
        Assert.That(KindOf(() => new FileStream(dir["there"], FileMode.CreateNew).Dispose()), Is.EqualTo(StorageErrorKind.Exists));
        Assert.That(KindOf(() => File.ReadAllText(dir["missing/file"])), Is.EqualTo(StorageErrorKind.NotFound));
        using (var full = Tmpfs.Mount(dir["full"], "64k"))
        {
            full.Fill();
            Assert.That(KindOf(() => AtomicFile.WriteText(Path.Combine(full.Path, "state"), new string('x', 8192))), Is.EqualTo(StorageErrorKind.NoSpace));
            full.Empty();
            Assert.That(Run.Program(Peers.Require("mount"), ["-o", "remount,ro", full.Path]).ExitCode, Is.EqualTo(0));
            Assert.That(KindOf(() => File.WriteAllText(Path.Combine(full.Path, "new"), "x")), Is.EqualTo(StorageErrorKind.NoPermission), "EROFS");
        }
    }
}
