using System.Text;
using Mail.Queue;
using Mail.Tests.Support;

namespace Mail.Tests.Spool;

public sealed class QueueFileTests
{
    private static QueueEnvelope Envelope(params string[] rcpts) => new(
        DateTimeOffset.FromUnixTimeMilliseconds(1_790_000_000_123), "alice@remote.test",
        rcpts.Length == 0 ? ["bob@example.org", "ann@example.org"] : rcpts,
        new Dictionary<string, string> { ["client"] = "[192.0.2.1]", ["helo"] = "client.test" });

    private static async Task<(Mail.Queue.Spool Spool, string Id, byte[] Content)> Write(TempDir dir, int contentSize = 200_000)
    {
        var spool = new Mail.Queue.Spool(dir.Path);
        var content = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, contentSize / 10).Select(i => $"line{i % 10000:D4}\n")));
        await using var w = spool.Create(Envelope(), out var id);
        var half = content.Length / 2;
        w.WriteContent(content.AsSpan(0, half));
        w.WriteContent(content.AsSpan(half));
        await w.CommitAsync();
        return (spool, id, content);
    }

    [Test]
    public async Task Committed_file_reads_back_whole()
    {
        using var dir = new TempDir();
        var (spool, id, content) = await Write(dir);
        var path = spool.FilePath(QueueDir.Incoming, id);
        Assert.That(QueueFileReader.Read(path, out var env, out var chunks), Is.EqualTo(QueueFileStatus.Ok));
        Assert.That(env!.Sender, Is.EqualTo("alice@remote.test"));
        Assert.That(env.Recipients, Is.EqualTo(new[] { "bob@example.org", "ann@example.org" }));
        Assert.That(env.Attributes["helo"], Is.EqualTo("client.test"));
        Assert.That(env.Arrival.ToUnixTimeMilliseconds(), Is.EqualTo(1_790_000_000_123));
        using var ms = new MemoryStream();
        QueueFileReader.CopyContent(path, chunks, ms);
        Assert.That(ms.ToArray(), Is.EqualTo(content));
        Assert.That(Mail.Queue.Spool.IsValidId(id), Is.True);
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test]
    public async Task A_file_cut_at_any_length_is_never_taken_as_complete()
    {
        using var dir = new TempDir();
        var (spool, id, _) = await Write(dir, 300);
        var whole = File.ReadAllBytes(spool.FilePath(QueueDir.Incoming, id));
        var cut = dir["cut"];
        for (int n = 0; n < whole.Length; n++)
        {
            File.WriteAllBytes(cut, whole[..n]);
            Assert.That(QueueFileReader.Read(cut, out _, out _), Is.Not.EqualTo(QueueFileStatus.Ok), $"cut at {n}");
        }
    }

    [Test]
    public async Task Any_flipped_byte_is_detected()
    {
        using var dir = new TempDir();
        var (spool, id, _) = await Write(dir, 300);
        var whole = File.ReadAllBytes(spool.FilePath(QueueDir.Incoming, id));
        var bad = dir["bad"];
        for (int i = 0; i < whole.Length; i++)
        {
            var copy = (byte[])whole.Clone();
            copy[i] ^= 0x20;
            File.WriteAllBytes(bad, copy);
            Assert.That(QueueFileReader.Read(bad, out _, out _), Is.Not.EqualTo(QueueFileStatus.Ok), $"byte {i}");
        }
        var extra = dir["extra"];
        File.WriteAllBytes(extra, [.. whole, 0]);
        Assert.That(QueueFileReader.Read(extra, out _, out _), Is.EqualTo(QueueFileStatus.Corrupt), "bytes after END");
    }

    [Test]
    public async Task Uncommitted_file_is_removed_and_recovery_sorts_the_spool()
    {
        using var dir = new TempDir();
        var spool = new Mail.Queue.Spool(dir.Path);
        string abandoned;
        await using (var w = spool.Create(Envelope(), out abandoned)) w.WriteContent("half"u8);
        Assert.That(File.Exists(spool.FilePath(QueueDir.Incoming, abandoned)), Is.False);

        var (_, done, _) = await Write(dir, 100);
        var (_, active, _) = await Write(dir, 100);
        spool.Move(active, QueueDir.Incoming, QueueDir.Active);
        // A crash while receiving leaves a file without END; another was damaged on disk.
        File.WriteAllBytes(spool.FilePath(QueueDir.Incoming, "AAAAAAAAAAAA"), File.ReadAllBytes(spool.FilePath(QueueDir.Incoming, done))[..50]);
        var damaged = File.ReadAllBytes(spool.FilePath(QueueDir.Incoming, done));
        damaged[20] ^= 1;
        File.WriteAllBytes(spool.FilePath(QueueDir.Incoming, "BBBBBBBBBBBB"), damaged);

        var (removed, requeued, corrupt) = spool.Recover();
        Assert.That((removed, requeued, corrupt), Is.EqualTo((1, 1, 1)));
        Assert.That(File.Exists(spool.FilePath(QueueDir.Incoming, done)), Is.True, "a committed file is never removed");
        Assert.That(File.Exists(spool.FilePath(QueueDir.Incoming, active)), Is.True, "active files are scheduled again");
        Assert.That(File.Exists(spool.FilePath(QueueDir.Corrupt, "BBBBBBBBBBBB")), Is.True);
        Assert.That(File.Exists(spool.FilePath(QueueDir.Incoming, "AAAAAAAAAAAA")), Is.False);
    }

    [Test]
    public void The_header_section_ends_at_the_first_empty_line_crlf_or_lf()
    {
        Assert.That(QueueFileReader.HeaderEnd("A: b\r\nC: d\r\n\r\nbody\r\n"u8), Is.EqualTo(14));
        Assert.That(QueueFileReader.HeaderEnd("A: b\nC: d\n\nbody\n"u8), Is.EqualTo(11));
        Assert.That(QueueFileReader.HeaderEnd("A: b\r\n\nbody"u8), Is.EqualTo(7));
        Assert.That(QueueFileReader.HeaderEnd("\r\nbody"u8), Is.EqualTo(2), "no header at all");
        Assert.That(QueueFileReader.HeaderEnd("A: b\r\n\tfolded\r\nC: d\r"u8), Is.EqualTo(-1), "not yet seen");
        Assert.That(QueueFileReader.HeaderEnd("A: b\r\r\n"u8), Is.EqualTo(-1), "a CR inside a line is no empty line");
    }
}
