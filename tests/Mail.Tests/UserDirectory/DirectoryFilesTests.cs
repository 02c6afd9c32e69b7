using Mail.Shared.UserDirectory;
using Mail.Tests.Support;

namespace Mail.Tests.UserDirectory;

public sealed class DirectoryFilesTests
{
    [Test]
    public void Passwd_line_in_dovecot_format_parses()
    {
        var u = DirectoryFiles.ParsePasswdLine("Bob@Example.ORG:{SHA512-CRYPT}$6$x$y:1001:1002::/home/bob::userdb_quota_rule=*:bytes=1G userdb_quota_rule2=*:messages=500")!;
        Assert.That(u.Address, Is.EqualTo("bob@example.org"));
        Assert.That(u.PasswordHash, Is.EqualTo("{SHA512-CRYPT}$6$x$y"));
        Assert.That((u.Uid, u.Gid, u.Home), Is.EqualTo(((uint?)1001, (uint?)1002, "/home/bob")));
        Assert.That(u.QuotaBytes, Is.EqualTo(1L << 30));
        Assert.That(u.QuotaMessages, Is.EqualTo(500));
        Assert.That(u.Active, Is.True);
    }

    [Test]
    public void Storage_quota_is_in_kilobytes_unless_suffixed_and_nologin_disables()
    {
        var u = DirectoryFiles.ParsePasswdLine("a@b.c:{PLAIN}x::::::userdb_quota_rule=*:storage=2048 nologin")!;
        Assert.That(u.QuotaBytes, Is.EqualTo(2048L * 1024));
        Assert.That(u.Active, Is.False);
        var m = DirectoryFiles.ParsePasswdLine("a@b.c:{PLAIN}x::::::userdb_quota_rule=*:storage=10M userdb_mail=maildir:/srv/a/Maildir")!;
        Assert.That(m.QuotaBytes, Is.EqualTo(10L << 20));
        Assert.That(m.Maildir, Is.EqualTo("/srv/a/Maildir"));
    }

    [TestCase("no-at-sign:{PLAIN}x")]
    [TestCase("a@b.c:{PLAIN}x:notanumber")]
    [TestCase("a b@c.d:{PLAIN}x")]
    [TestCase(":{PLAIN}x")]
    public void Malformed_passwd_lines_are_refused(string line) =>
        Assert.That(DirectoryFiles.ParsePasswdLine(line), Is.Null);

    [Test]
    public void Malformed_lines_are_skipped_and_the_rest_kept()
    {
        var users = DirectoryFiles.ParsePasswd("passwd", ["# comment", "", "good@x.org:{PLAIN}a", "bad line", "also@x.org:{PLAIN}b"]);
        Assert.That(users.Keys, Is.EquivalentTo(new[] { "good@x.org", "also@x.org" }));
    }

    [Test]
    public void Alias_file_in_postfix_virtual_syntax_parses()
    {
        var aliases = DirectoryFiles.ParseAliases("virtual",
        [
            "# sales go to two people",
            "sales@x.org   ann@x.org,  bob@x.org",
            "    carl@y.net",
            "@x.org catchall@x.org",
            "broken-entry",
            "info@x.org info@x.org, ann@x.org",
        ]);
        Assert.That(aliases["sales@x.org"], Is.EqualTo(new[] { "ann@x.org", "bob@x.org", "carl@y.net" }));
        Assert.That(aliases["@x.org"], Is.EqualTo(new[] { "catchall@x.org" }));
        Assert.That(aliases["info@x.org"], Is.EqualTo(new[] { "info@x.org", "ann@x.org" }));
        Assert.That(aliases, Has.Count.EqualTo(3));
    }

    [Test]
    public async Task Changes_are_seen_at_once_and_never_half_read()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["domains"], "x.org\n");
        File.WriteAllText(dir["passwd"], "");
        var d = new FileDirectory(new FileDirectoryOptions(dir["passwd"], dir["virtual"], dir["domains"]));
        Assert.That(await d.FindUserAsync("u0@x.org"), Is.Null);
        // One writer adds 200 users, one at a time, while a reader checks that
        // every snapshot it sees holds a prefix u0..uN of them, with no gaps.
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < 200; i++) await d.AddUserAsync(new DirectoryUser($"u{i}@x.org", "{PLAIN}p"));
        });
        var reader = new FileDirectory(new FileDirectoryOptions(dir["passwd"], dir["virtual"], dir["domains"]));
        int reads = 0;
        while (!writer.IsCompleted)
        {
            var seen = (await reader.ListUsersAsync(null)).Select(u => u.Address).ToHashSet();
            var expected = Enumerable.Range(0, seen.Count).Select(i => $"u{i}@x.org").ToHashSet();
            Assert.That(seen.SetEquals(expected), Is.True, $"snapshot of {seen.Count} users is not u0..u{seen.Count - 1}");
            reads++;
        }
        await writer;
        Assert.That((await reader.ListUsersAsync(null)).Count, Is.EqualTo(200));
        Assert.That(reads, Is.GreaterThan(0));
    }

    [Test]
    public void Missing_passwd_file_is_a_fault_and_missing_aliases_file_is_empty()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["domains"], "x.org\n");
        var d = new FileDirectory(new FileDirectoryOptions(dir["passwd"], dir["virtual"], dir["domains"]));
        Assert.ThrowsAsync<DirectoryUnavailableException>(async () => await d.FindUserAsync("a@x.org"));
        Assert.That(async () => await d.FindAliasAsync("a@x.org"), Is.Null);
    }

    [Test]
    public async Task Admin_refuses_duplicates_unknown_domains_and_bad_addresses()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["domains"], "x.org\n");
        var d = new FileDirectory(new FileDirectoryOptions(dir["passwd"], dir["virtual"], dir["domains"]));
        await d.AddUserAsync(new DirectoryUser("a@x.org", "{PLAIN}p"));
        Assert.ThrowsAsync<DirectoryAdminException>(() => d.AddUserAsync(new DirectoryUser("A@X.org", "{PLAIN}p")));
        Assert.ThrowsAsync<DirectoryAdminException>(() => d.AddUserAsync(new DirectoryUser("a@elsewhere.net", "{PLAIN}p")));
        Assert.ThrowsAsync<DirectoryAdminException>(() => d.AddUserAsync(new DirectoryUser("a:b@x.org", "{PLAIN}p")));
        Assert.ThrowsAsync<DirectoryAdminException>(() => d.AddAliasAsync("z@x.org", ["not an address"]));
        Assert.ThrowsAsync<DirectoryAdminException>(() => d.RemoveDomainAsync("x.org"));
        Assert.That(await d.RemoveUserAsync("a@x.org"), Is.True);
        Assert.That(await d.RemoveDomainAsync("x.org"), Is.True);
        Assert.That(File.GetUnixFileMode(dir["passwd"]) & UnixFileMode.OtherRead, Is.EqualTo(UnixFileMode.None), "passwd holds hashes");
    }
}
