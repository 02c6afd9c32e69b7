using Mail.Shared.Auth;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// PostgreSQL stops under a running AuthD and a Postfix that uses it: every
/// interface answers "temporary failure", SMTP says 4xx, known users keep
/// logging in from the last good answer, and all recovers when it is back.
/// </summary>
[NonParallelizable]
public sealed class PgsqlFaultTests
{
    [Test]
    public async Task Database_outage_gives_temporary_failures_and_recovers_by_itself()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecAsync("INSERT INTO domain (domain, transport) VALUES ('example.org', 'virtual')");
        foreach (var (user, pass) in new[] { ("bob", "bob pass"), ("ann", "ann pass") })
        {
            await pg.ExecAsync("INSERT INTO mailbox (username, password, local_part, domain, maildir) VALUES ($1, $2, $3, 'example.org', $4)",
                $"{user}@example.org", PasswordScheme.Hash(pass, "SHA512-CRYPT"), user, $"example.org/{user}/");
            await pg.ExecAsync("INSERT INTO alias (address, goto, domain) VALUES ($1, $1, 'example.org')", $"{user}@example.org");
        }
        var sql = $"directory_driver = pgsql\npgsql_connection = {pg.ConnectionString()}";
        await using var authd = await AuthDServer.StartAsync(directory: sql, extraConfig: "auth_cache_ttl = 1h");
        await using var noCache = await AuthDServer.StartAsync(directory: sql, extraConfig: "auth_cache_ttl = 0");
        var map = $"socketmap:unix:{authd.SocketmapSocket}:";
        using var postfix = PostfixServer.Start(new Dictionary<string, string>
        {
            ["smtpd_sasl_auth_enable"] = "yes",
            ["smtpd_sasl_type"] = "dovecot",
            ["smtpd_sasl_path"] = authd.DovecotAuthSocket,
            ["virtual_mailbox_domains"] = map + "domains",
            ["virtual_mailbox_maps"] = map + "mailboxes",
            ["virtual_alias_maps"] = map + "aliases",
        });
        RunResult Swaks(params string[] args) =>
            Run.Program(Peers.Require("swaks"), ["--server", $"127.0.0.1:{postfix.Port}", "--timeout", "30", .. args]);
        async Task<SaslStatus> Login(AuthDServer s, string user, string pass) =>
            (await s.Client.AuthenticatePlainAsync(user, pass, AuthDServer.Client_())).Status;

        // All well: bob logs in (through both daemons) and gets mail.
        Assert.That(await Login(authd, "bob@example.org", "bob pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login(noCache, "bob@example.org", "bob pass"), Is.EqualTo(SaslStatus.Success));
        var first = "";
        Assert.That(await Wait.UntilAsync(() => (first = Swaks("--from", "x@remote.test", "--to", "bob@example.org", "--quit-after", "RCPT").Stdout)
            .Contains("250 2.1.5"), TimeSpan.FromSeconds(30)), Is.True, first + authd.Log() + postfix.Log());

        pg.Stop();

        // gRPC: temporary failures, never "no such user" or "wrong password".
        Assert.That(await Login(authd, "ann@example.org", "ann pass"), Is.EqualTo(SaslStatus.Tempfail));
        Assert.That(await Login(noCache, "bob@example.org", "bob pass"), Is.EqualTo(SaslStatus.Tempfail));
        Assert.That((await authd.Client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = "bob@example.org" })).Status,
            Is.EqualTo(RecipientStatus.Tempfail));
        Assert.That((await authd.Client.Api.LookupUserAsync(new LookupUserRequest { User = "ann@example.org" })).Status,
            Is.EqualTo(LookupStatus.Tempfail));
        // The last good answer serves bob's login, and only with his password.
        Assert.That(await Login(authd, "bob@example.org", "bob pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login(authd, "bob@example.org", "wrong"), Is.EqualTo(SaslStatus.Failure));
        // Socketmap: TEMP.
        var q = Run.Program(Peers.Require("postmap"), ["-q", "bob@example.org", map + "mailboxes"]);
        Assert.That(q.Stderr, Does.Contain("directory unavailable"));
        // SMTP through Postfix: 4xx for the recipient and for AUTH.
        var rcpt = Swaks("--from", "x@remote.test", "--to", "bob@example.org", "--quit-after", "RCPT");
        Assert.That(rcpt.Stdout, Does.Match(@"<\*\*\s+4\d\d 4\.\d\.\d"), rcpt.Stdout);
        Assert.That(rcpt.Stdout, Does.Not.Match(@"<\*\*\s+5\d\d"));
        var auth = Swaks("--from", "ann@example.org", "--to", "x@remote.test", "--auth", "PLAIN",
            "--auth-user", "ann@example.org", "--auth-password", "ann pass", "--quit-after", "AUTH");
        Assert.That(auth.Stdout, Does.Contain("454 4.7.0"), auth.Stdout);

        pg.Start();

        // Back by itself: no restart of AuthD or Postfix.
        Assert.That(await Wait.UntilAsync(async () => await Login(authd, "ann@example.org", "ann pass") == SaslStatus.Success,
            TimeSpan.FromSeconds(60)), Is.True);
        Assert.That(await Login(noCache, "bob@example.org", "bob pass"), Is.EqualTo(SaslStatus.Success));
        var again = "";
        Assert.That(await Wait.UntilAsync(() => (again = Swaks("--from", "x@remote.test", "--to", "bob@example.org", "--quit-after", "RCPT").Stdout)
            .Contains("250 2.1.5"), TimeSpan.FromSeconds(30)), Is.True, again + authd.Log());
        var authOk = Swaks("--from", "ann@example.org", "--to", "x@remote.test", "--auth", "PLAIN",
            "--auth-user", "ann@example.org", "--auth-password", "ann pass", "--quit-after", "AUTH");
        Assert.That(authOk.Stdout, Does.Contain("235 2.7.0"), authOk.Stdout);
    }
}
