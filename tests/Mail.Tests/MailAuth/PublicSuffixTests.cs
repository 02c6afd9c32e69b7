using Mail.MailAuth;
using Mail.Tests.Support;

namespace Mail.Tests.MailAuth;

/// <summary>DMARC's organizational domain from the Public Suffix List: Debian's file, and a list of our own that changes under a running reader.</summary>
public sealed class PublicSuffixTests
{
    [TestCase("mail.example.co.uk", "example.co.uk")]
    [TestCase("example.com", "example.com")]
    [TestCase("a.b.c.example.com", "example.com")]
    [TestCase("user.github.io", "user.github.io")]
    [TestCase("com", "com")]
    public void Debians_list_gives_the_organizational_domain(string domain, string expected)
    {
        Assert.That(File.Exists(PublicSuffixList.DebianPath), Is.True, "Debian package publicsuffix (test.sh installs it)");
        Assert.That(new PublicSuffixList(PublicSuffixList.DebianPath).OrganizationalDomain(domain), Is.EqualTo(expected));
    }

    [Test]
    public void Wildcards_exceptions_and_a_changed_file_are_followed()
    {
        using var dir = new TempDir();
        var path = dir["list.dat"];
        File.WriteAllText(path, "// a list of our own\ntest\n*.wild.test\n!ok.wild.test\n");
        var list = new PublicSuffixList(path, TimeSpan.Zero);
        Assert.That(list.OrganizationalDomain("a.b.sender.test"), Is.EqualTo("sender.test"));
        Assert.That(list.OrganizationalDomain("x.y.wild.test"), Is.EqualTo("x.y.wild.test"));
        Assert.That(list.OrganizationalDomain("a.ok.wild.test"), Is.EqualTo("ok.wild.test"));
        Assert.That(list.OrganizationalDomain("unlisted"), Is.EqualTo("unlisted"));
        File.WriteAllText(path, "test\nsender.test\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        Assert.That(list.OrganizationalDomain("a.b.sender.test"), Is.EqualTo("b.sender.test"), "read again when it changed");
    }
}
