using System.Security.Cryptography;
using Mail.Shared.Net;

namespace Mail.Tests.Net;

/// <summary>
/// The clean pages of mapped files (code and read-only data) are given back to the system and
/// come back from the page cache on their next use: the process goes on as before.
/// </summary>
public sealed class WorkingSetTests
{
    private static long Rss() =>
        long.Parse(File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    [Test]
    public void Clean_file_pages_are_dropped_and_the_code_still_runs()
    {
        var before = Rss();
        var dropped = WorkingSet.DropCleanFilePages();
        var after = Rss();
        TestContext.Out.WriteLine($"resident {before} kB, {dropped / 1024} kB of file pages given back, then {after} kB");
        Assert.That(dropped, Is.GreaterThan(1 << 20), "a .NET process maps megabytes of code");
        Assert.That(after, Is.LessThan(before));
        // Code and data the process uses come back from the file, unchanged.
        var digest = Convert.ToHexString(SHA256.HashData("abc"u8));
        Assert.That(digest, Is.EqualTo("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
        var message = MimeKit.MimeMessage.Load(new MemoryStream("Subject: after the trim\r\n\r\nbody\r\n"u8.ToArray()));
        Assert.That(message.Subject, Is.EqualTo("after the trim"));
    }
}
