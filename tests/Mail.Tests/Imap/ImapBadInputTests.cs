using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>Bad input to imappopd: a tagged BAD or NO, never a crash, a hang or a path out of the Maildir.</summary>
[NonParallelizable]
public sealed class ImapBadInputTests
{
    private AuthDServer _authd = null!;
    private ImapServer _imap = null!;
    private string Maildir => Path.Combine(_authd.Dir["mail"], "example.org", "bob");

    [SetUp]
    public async Task Start()
    {
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        _imap = await ImapServer.StartAsync(_authd);
    }

    [TearDown]
    public async Task Stop()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
            TestContext.Out.WriteLine(string.Join('\n', _authd.Log().Split('\n').TakeLast(30)));
        await _imap.DisposeAsync();
        await _authd.DisposeAsync();
    }

    /// <summary>Sends a command and returns its tagged reply (untagged lines are skipped).</summary>
    private static async Task<string> Command(Raw c, string tag, string text)
    {
        await c.Send($"{tag} {text}\r\n");
        while (true)
        {
            var line = await c.Read();
            Assert.That(line, Is.Not.Null, $"connection closed after: {text}");
            if (line!.StartsWith(tag + " ")) return line[(tag.Length + 1)..];
        }
    }

    private async Task<Raw> ConnectAsync(bool login)
    {
        var c = await Raw.ConnectAsync(_imap.Port);
        Assert.That(await c.Read(), Does.StartWith("* OK [CAPABILITY "));
        if (login) Assert.That(await Command(c, "l", "LOGIN bob@example.org \"bob pass\""), Does.StartWith("OK"));
        return c;
    }

    [Test]
    public async Task Before_login_commands_are_small_and_the_session_has_a_deadline()
    {
        await Transcript.ReplayAsync("imap/before-login-limits.txt", _imap.Port,
            new Dictionary<string, string> { ["K8"] = new string('k', 7998), ["K01"] = new string('k', 998), ["K40"] = new string('k', 40000), ["K02"] = new string('k', 2000) });
        await using var quick = await ImapServer.StartAsync(_authd, "login_timeout = 2s");
        using var c = await Raw.ConnectAsync(quick.Port);
        Assert.That(await c.Read(), Does.StartWith("* OK"));
        // NOOPs keep an idle timer alive; the login deadline ends the session all the same.
        string? line = "";
        for (int i = 0; i < 100 && line != null && !line.StartsWith("* BYE"); i++)
        {
            await Task.Delay(100); // a client that keeps talking, slowly
            await c.Send($"n{i} NOOP\r\n");
            line = await c.Read();
        }
        Assert.That(line, Does.StartWith("* BYE"));
        Assert.That(await c.Read(), Is.Null);
    }

    [TestCase(false, "SELECT INBOX", "BAD")]
    [TestCase(false, "FETCH 1 FLAGS", "BAD")]
    [TestCase(false, "LOGIN onlyuser", "BAD")]
    [TestCase(false, "LOGIN bob@example.org wrong", "NO [AUTHENTICATIONFAILED]")]
    [TestCase(false, "AUTHENTICATE PLAIN !!!notbase64", "BAD")]
    [TestCase(false, "AUTHENTICATE KERBEROS_V4", "NO")]
    [TestCase(false, "FROBNICATE", "BAD")]
    [TestCase(true, "FETCH 1 FLAGS", "BAD")]
    [TestCase(true, "LOGIN bob@example.org x", "BAD")]
    [TestCase(true, "SELECT", "BAD")]
    [TestCase(true, "SELECT \"unterminated", "BAD")]
    [TestCase(true, "SELECT NoSuchFolder", "NO [NONEXISTENT]")]
    [TestCase(true, "STATUS INBOX (MESSAGES", "BAD")]
    [TestCase(true, "STATUS INBOX (BOGUS)", "BAD")]
    [TestCase(true, "LIST \"\" \"*\" RETURN (", "BAD")]
    [TestCase(true, "ENABLE", "BAD")] // RFC 5161 3: at least one capability
    public async Task Wrong_commands_get_a_tagged_answer_and_the_session_goes_on(bool login, string command, string expected)
    {
        using var c = await ConnectAsync(login);
        Assert.That(await Command(c, "t1", command), Does.StartWith(expected));
        Assert.That(await Command(c, "t2", "NOOP"), Does.StartWith("OK"));
    }

    [TestCase("FETCH 1 (FLAGS")]
    [TestCase("FETCH 1 FLAGS)")]
    [TestCase("FETCH 0 FLAGS")]
    [TestCase("FETCH 1:x FLAGS")]
    [TestCase("FETCH 4294967296 FLAGS")]
    [TestCase("FETCH -1 FLAGS")]
    [TestCase("FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22]")]
    [TestCase("FETCH 1 BODY[HEADER.FIELDS (]")]
    [TestCase("FETCH 1 BODY[]<5>")]
    [TestCase("FETCH 1 NOSUCHITEM")]
    [TestCase("STORE 1 FLAGS (\\Bogus)")]
    [TestCase("STORE 1 XFLAGS (\\Seen)")]
    [TestCase("SEARCH ((((((((((((((((((((((((((((((((((((((((((((((((((((((ALL))))))))))))))))))))))))))))))))))))))))))))))))))))))")]
    [TestCase("SEARCH NOSUCHKEY")]
    [TestCase("SEARCH SINCE 99-Foo-2024")]
    [TestCase("SEARCH CHARSET KOI8-R ALL")]
    [TestCase("UID FROB 1")]
    [TestCase("COPY 1")]
    public async Task Malformed_arguments_in_the_selected_state_are_refused(string command)
    {
        File.WriteAllText(_authd.Dir["m.eml"], "Subject: x\n\nbody\n");
        using var c = await ConnectAsync(login: true);
        Assert.That(await Command(c, "s", "SELECT INBOX"), Does.StartWith("OK"));
        var reply = await Command(c, "t1", command);
        Assert.That(reply, Does.StartWith("BAD").Or.StartWith("NO"), reply);
        Assert.That(await Command(c, "t2", "NOOP"), Does.StartWith("OK"));
    }

    [TestCase("../evil")]
    [TestCase("..")]
    [TestCase("/etc")]
    [TestCase("a/../../b")]
    [TestCase("Foo.Bar")]
    [TestCase("&AC8-etc")]
    [TestCase("&AC4ALg-")]
    [TestCase("bad&name")]
    [TestCase("x//y")]
    [TestCase("trailing/")]
    [TestCase("tab\there")]
    public async Task No_mailbox_name_reaches_outside_the_maildir(string name)
    {
        using var c = await ConnectAsync(login: true);
        var before = Directory.GetFileSystemEntries(_authd.Dir.Path, "*", SearchOption.AllDirectories).Where(p => !p.EndsWith(".log")).ToHashSet();
        var quoted = "\"" + name.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var create = await Command(c, "c", "CREATE " + quoted);
        foreach (var cmd in new[] { "SELECT", "DELETE", "SUBSCRIBE" }) Assert.That(await Command(c, "x", $"{cmd} {quoted}"), Does.StartWith("NO").Or.StartWith("BAD").Or.StartWith("OK"));
        Assert.That(await Command(c, "r", $"RENAME INBOX {quoted}"), Does.StartWith("NO").Or.StartWith("BAD").Or.StartWith("OK"));
        var after = Directory.GetFileSystemEntries(_authd.Dir.Path, "*", SearchOption.AllDirectories).Where(p => !p.EndsWith(".log")).ToList();
        var created = after.Where(p => !before.Contains(p)).ToList();
        Assert.That(created.All(p => p.StartsWith(Maildir + "/")), Is.True, string.Join("\n", created));
        Assert.That(created.Where(p => Path.GetDirectoryName(p) == Maildir).All(p => Path.GetFileName(p).StartsWith('.') || Path.GetFileName(p) is "subscriptions" or "dovecot-uidlist" or "dovecot-keywords" or "tmp" or "cur" or "new"), Is.True,
            string.Join("\n", created));
        Assert.That(Directory.Exists("/etc/cur"), Is.False);
        TestContext.Out.WriteLine($"CREATE {name}: {create}");
    }

    [Test]
    public async Task A_client_vanishing_inside_a_literal_harms_nothing()
    {
        using (var c = await ConnectAsync(login: true))
        {
            await c.Send("a APPEND INBOX {100000+}\r\n" + new string('x', 5000));
        }
        using (var c = await ConnectAsync(login: true))
        {
            await c.Send("b LOGIN {5}\r\n");
            Assert.That(await c.Read(), Does.StartWith("BAD").Or.StartWith("+").Or.StartWith("b BAD"));
        }
        using var d = await ConnectAsync(login: true);
        Assert.That(await Command(d, "s", "SELECT INBOX"), Does.StartWith("OK"));
        Assert.That(Directory.GetFiles(Path.Combine(Maildir, "cur")), Is.Empty, "nothing half-appended");
        Assert.That(Directory.GetFiles(Path.Combine(Maildir, "tmp")).Where(f => !f.EndsWith(".append")), Is.Empty);
    }

    [Test]
    public async Task Too_many_bad_commands_end_the_session()
    {
        using var c = await ConnectAsync(login: false);
        string? line = null;
        for (int i = 0; i < 30; i++)
        {
            await c.Send($"t{i} GARBAGE\r\n");
            line = await c.Read();
            if (line == null || line.StartsWith("* BYE")) break;
        }
        Assert.That(line, Does.StartWith("* BYE"));
    }
}
