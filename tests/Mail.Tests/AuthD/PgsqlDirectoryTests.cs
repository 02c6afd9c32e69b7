using System.Net.Sockets;
using System.Text;
using Mail.Shared.Auth;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>
/// AuthD on a real PostgreSQL loaded with PostfixAdmin 3.3's schema, with rows
/// inserted as PostfixAdmin inserts them.
/// </summary>
[NonParallelizable]
public sealed class PgsqlDirectoryTests
{
    private PostgresServer _pg = null!;
    private AuthDServer _authd = null!;

    [OneTimeSetUp]
    public async Task StartPostgres() => _pg = await PostgresServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopPostgres() => await _pg.DisposeAsync();

    [SetUp]
    public async Task Seed()
    {
        await _pg.ExecAsync("DELETE FROM alias_domain; DELETE FROM alias; DELETE FROM mailbox; DELETE FROM domain WHERE domain <> 'ALL'");
        // As PostfixAdmin's "new domain" and "new mailbox" forms write them.
        await _pg.ExecAsync("""
            INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx, active)
            VALUES ('example.org', 'Example', 10, 10, 0, 0, 'virtual', false, true),
                   ('example.net', 'Alias domain', 0, 0, 0, 0, 'virtual', false, true),
                   ('backup.test', 'We are its backup MX', 0, 0, 0, 0, 'relay', true, true),
                   ('gone.test', 'Disabled', 0, 0, 0, 0, 'virtual', false, false);
            INSERT INTO alias_domain (alias_domain, target_domain, active) VALUES ('example.net', 'example.org', true);
            """);
        _authd = await AuthDServer.StartAsync(directory: $"directory_driver = pgsql\npgsql_connection = {_pg.ConnectionString()}");
    }

    [TearDown]
    public async Task StopAuthd() => await _authd.DisposeAsync();

    private async Task AddMailbox(string user, string hash, bool active = true, long quota = 0)
    {
        var (local, domain) = (user[..user.IndexOf('@')], user[(user.IndexOf('@') + 1)..]);
        await _pg.ExecAsync("""
            INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created, modified, active)
            VALUES ($1, $2, 'A User', $3, $4, $5, $6, now(), now(), $7)
            """, user, hash, $"{domain}/{local}/", quota, local, domain, active);
        await _pg.ExecAsync("INSERT INTO alias (address, goto, domain, created, modified, active) VALUES ($1, $1, $2, now(), now(), true)", user, domain);
    }

    private static string Doveadm(string scheme, string password) =>
        Run.Program(Peers.Require("doveadm"), ["pw", "-s", scheme, "-p", password]).Stdout.Trim();

    private RunResult Mailctl(string? stdin, params string[] args) =>
        Run.Program(Repo.Program("mailctl"), ["--config", _authd.ConfigFile, .. args], stdin);

    private async Task<SaslStatus> Login(string user, string password) =>
        (await _authd.Client.AuthenticatePlainAsync(user, password, AuthDServer.Client_())).Status;

    private async Task<ResolveRecipientReply> Resolve(string address) =>
        await _authd.Client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = address });

    [Test]
    public async Task PostfixAdmin_user_with_a_doveadm_hash_logs_in_with_mailctl_auth_test()
    {
        await AddMailbox("bob@example.org", Doveadm("SHA512-CRYPT", "bob's pass"));
        var ok = Mailctl(null, "auth", "test", "bob@example.org", "bob's pass");
        Assert.That(ok.ExitCode, Is.EqualTo(0), ok.Stdout + ok.Stderr);
        Assert.That(ok.Stdout, Does.Contain("auth succeeded"));
        Assert.That(Mailctl(null, "auth", "test", "bob@example.org", "nope").ExitCode, Is.EqualTo(77));
    }

    [Test]
    public async Task Bare_md5crypt_string_as_postfixadmin_stores_it_logs_in()
    {
        var hash = Doveadm("MD5-CRYPT", "md5 pass");
        await AddMailbox("old@example.org", hash[(hash.IndexOf('}') + 1)..]);
        Assert.That(await Login("old@example.org", "md5 pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login("old@example.org", "md5 pasS"), Is.EqualTo(SaslStatus.Failure));
    }

    [TestCase("SHA512-CRYPT.B64")] // PostfixAdmin's sha512.b64
    [TestCase("PBKDF2")]
    [TestCase("MD5")] // PostfixAdmin's dovecot:MD5
    public async Task PostfixAdmin_hashes_of_dovecot_schemes_log_in(string scheme)
    {
        await AddMailbox("bob@example.org", Doveadm(scheme, "bob's pass"));
        Assert.That(await Login("bob@example.org", "bob's pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login("bob@example.org", "bob's pasS"), Is.EqualTo(SaslStatus.Failure));
    }

    /// <summary>AuthD restarted with one more line of authd.conf.</summary>
    private async Task RestartAuthd(string extra)
    {
        await _authd.DisposeAsync();
        _authd = await AuthDServer.StartAsync(directory: $"directory_driver = pgsql\npgsql_connection = {_pg.ConnectionString()}\n{extra}");
    }

    [Test]
    public async Task Default_pass_scheme_reads_postfixadmin_md5_and_cleartext_as_dovecot_does()
    {
        // PostfixAdmin's encrypt = 'md5' stores md5(password) in hex, 'cleartext' the password, both without a prefix.
        var md5 = Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData("md5 pass"u8));
        await AddMailbox("md5@example.org", md5);
        await AddMailbox("clear@example.org", "clear pass");
        Assert.That(await Login("md5@example.org", "md5 pass"), Is.EqualTo(SaslStatus.Failure), "under CRYPT, the default, a hex digest is no crypt string");

        await RestartAuthd("default_pass_scheme = MD5");
        Assert.That(await Login("md5@example.org", "md5 pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login("md5@example.org", "md5 pasS"), Is.EqualTo(SaslStatus.Failure));
        await AddMailbox("crypt@example.org", Doveadm("MD5-CRYPT", "crypt pass")[11..]); // bare $1$...: MD5 reads MD5-crypt too
        Assert.That(await Login("crypt@example.org", "crypt pass"), Is.EqualTo(SaslStatus.Success));

        await RestartAuthd("default_pass_scheme = PLAIN");
        Assert.That(await Login("clear@example.org", "clear pass"), Is.EqualTo(SaslStatus.Success));
        Assert.That(await Login("clear@example.org", "clear pasS"), Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Unknown_default_pass_scheme_stops_authd_with_a_clear_error()
    {
        await _authd.DisposeAsync();
        var ex = Assert.ThrowsAsync<Mail.Shared.Config.ConfigException>(async () =>
            _authd = await AuthDServer.StartAsync(directory: $"directory_driver = pgsql\npgsql_connection = {_pg.ConnectionString()}\ndefault_pass_scheme = SHA3"));
        Assert.That(ex!.Message, Does.Contain("unknown default_pass_scheme 'SHA3'"));
        _authd = await AuthDServer.StartAsync(directory: $"directory_driver = pgsql\npgsql_connection = {_pg.ConnectionString()}");
    }

    [Test]
    public async Task A_hash_in_an_unknown_scheme_is_logged_as_such_not_as_a_wrong_password()
    {
        await AddMailbox("odd@example.org", "{SHA3-512}AAAA");
        await AddMailbox("bob@example.org", "{PLAIN}right");
        Assert.That(await Login("odd@example.org", "anything"), Is.EqualTo(SaslStatus.Failure));
        Assert.That(await Login("bob@example.org", "wrong"), Is.EqualTo(SaslStatus.Failure));
        var log = _authd.Log();
        Assert.That(log, Does.Contain("user=<odd@example.org>: unknown password scheme {SHA3-512}"));
        Assert.That(log, Does.Match(@"user=<odd@example\.org>.*unknown password scheme"));
        Assert.That(log, Does.Not.Match(@"odd@example\.org.*password mismatch"));
        Assert.That(log, Does.Match(@"bob@example\.org.*password mismatch"));
    }

    [Test]
    public async Task Expired_password_is_refused_where_the_domain_sets_an_expiry()
    {
        // PostfixAdmin with password_expiration: the domain's days, each mailbox's expiry time.
        await AddMailbox("bob@example.org", "{PLAIN}pw");
        await _pg.ExecAsync("UPDATE mailbox SET password_expiry = now() - interval '1 day' WHERE username = 'bob@example.org'");
        Assert.That(await Login("bob@example.org", "pw"), Is.EqualTo(SaslStatus.Success), "a domain with password_expiry 0 has no expiry");

        await _pg.ExecAsync("UPDATE domain SET password_expiry = 90 WHERE domain = 'example.org'");
        Assert.That(await Login("bob@example.org", "pw"), Is.EqualTo(SaslStatus.Failure));
        Assert.That(_authd.Log(), Does.Match(@"bob@example\.org.*password expired"));

        // The password changed in PostfixAdmin: its expiry moves 90 days on.
        await _pg.ExecAsync("UPDATE mailbox SET password_expiry = now() + interval '90 days' WHERE username = 'bob@example.org'");
        Assert.That(await Login("bob@example.org", "pw"), Is.EqualTo(SaslStatus.Success));
    }

    [Test]
    public async Task Password_changed_in_sql_takes_effect_at_the_next_login()
    {
        await AddMailbox("bob@example.org", Doveadm("SHA512-CRYPT", "first"));
        Assert.That(await Login("bob@example.org", "first"), Is.EqualTo(SaslStatus.Success));
        // As Roundcube's password plugin does it.
        await _pg.ExecAsync("UPDATE mailbox SET password = $1, modified = now() WHERE username = $2", Doveadm("SHA512-CRYPT", "second"), "bob@example.org");
        Assert.That(await Login("bob@example.org", "first"), Is.EqualTo(SaslStatus.Failure));
        Assert.That(await Login("bob@example.org", "second"), Is.EqualTo(SaslStatus.Success));
    }

    [Test]
    public async Task Lookup_gives_the_maildir_of_the_maildir_column_and_the_quota()
    {
        await AddMailbox("bob@example.org", "{PLAIN}x", quota: 10240000);
        var r = await _authd.Client.Api.LookupUserAsync(new LookupUserRequest { User = "bob@example.org" });
        Assert.That(r.Status, Is.EqualTo(LookupStatus.Ok));
        Assert.That(r.User.Maildir, Is.EqualTo(Path.Combine(_authd.Dir.Path, "mail", "example.org", "bob")));
        Assert.That(r.User.QuotaBytes, Is.EqualTo(10240000UL));
    }

    [Test]
    public async Task Maildir_column_pointing_outside_mail_root_is_refused()
    {
        await _pg.ExecAsync("""
            INSERT INTO mailbox (username, password, maildir, local_part, domain) VALUES ('evil@example.org', '{PLAIN}x', '../../etc/', 'evil', 'example.org')
            """);
        var r = await _authd.Client.Api.LookupUserAsync(new LookupUserRequest { User = "evil@example.org" });
        Assert.That(r.Status, Is.Not.EqualTo(LookupStatus.Ok));
    }

    [Test]
    public async Task Inactive_mailbox_and_inactive_or_backup_domains_are_honoured()
    {
        await AddMailbox("off@example.org", "{PLAIN}x", active: false);
        Assert.That(await Login("off@example.org", "x"), Is.EqualTo(SaslStatus.Failure));
        Assert.That((await Resolve("off@example.org")).Status, Is.EqualTo(RecipientStatus.Inactive));
        Assert.That((await Resolve("anyone@gone.test")).Status, Is.EqualTo(RecipientStatus.NotOurDomain));
        Assert.That((await Resolve("anyone@backup.test")).Status, Is.EqualTo(RecipientStatus.NotOurDomain));
        await _pg.ExecAsync("INSERT INTO mailbox (username, password, local_part, domain, maildir) VALUES ('u@gone.test', '{PLAIN}x', 'u', 'gone.test', 'gone.test/u/')");
        Assert.That(await Login("u@gone.test", "x"), Is.EqualTo(SaslStatus.Failure), "a disabled domain disables its mailboxes");
    }

    [Test]
    public async Task Alias_domain_maps_to_the_target_domain_and_own_aliases_win()
    {
        await AddMailbox("bob@example.org", "{PLAIN}x");
        await _pg.ExecAsync("INSERT INTO alias (address, goto, domain) VALUES ('sales@example.org', 'bob@example.org,ext@remote.test', 'example.org'), ('special@example.net', 'ext@remote.test', 'example.net'), ('@example.org', 'bob@example.org', 'example.org')");
        var viaAliasDomain = await Resolve("bob@example.net");
        Assert.That(viaAliasDomain.Status, Is.EqualTo(RecipientStatus.Ok));
        Assert.That(viaAliasDomain.Targets.Single().Mailbox, Is.EqualTo("bob@example.org"));
        Assert.That((await Resolve("sales@example.net")).Targets.Select(t => t.Address), Is.EquivalentTo(new[] { "bob@example.org", "ext@remote.test" }));
        Assert.That((await Resolve("special@example.net")).Targets.Single().Address, Is.EqualTo("ext@remote.test"));
        Assert.That((await Resolve("whoever@example.net")).Targets.Single().Mailbox, Is.EqualTo("bob@example.org"), "target domain's catch-all");
        var postmap = Peers.Require("postmap");
        var q = Run.Program(postmap, ["-q", "bob@example.net", $"socketmap:unix:{_authd.SocketmapSocket}:aliases"]);
        Assert.That(q.Stdout.Trim(), Is.EqualTo("bob@example.org"));
        var d = Run.Program(postmap, ["-q", "example.net", $"socketmap:unix:{_authd.SocketmapSocket}:domains"]);
        Assert.That(d.Stdout.Trim(), Is.EqualTo("example.net"));
    }

    [Test]
    public async Task Mailctl_manages_the_postfixadmin_tables_as_postfixadmin_does()
    {
        Assert.That(Mailctl(null, "domain", "add", "new.test").ExitCode, Is.EqualTo(0));
        var add = Mailctl("pw one\n", "user", "add", "ann@new.test", "--quota", "50M");
        Assert.That(add.ExitCode, Is.EqualTo(0), add.Stderr);
        Assert.That(await _pg.ScalarAsync<string>("SELECT maildir FROM mailbox WHERE username = 'ann@new.test'"), Is.EqualTo("new.test/ann/"));
        Assert.That(await _pg.ScalarAsync<string>("SELECT goto FROM alias WHERE address = 'ann@new.test'"), Is.EqualTo("ann@new.test"));
        Assert.That(await _pg.ScalarAsync<string>("SELECT local_part FROM mailbox WHERE username = 'ann@new.test'"), Is.EqualTo("ann"));
        Assert.That(await _pg.ScalarAsync<long>("SELECT quota FROM mailbox WHERE username = 'ann@new.test'"), Is.EqualTo(50L << 20));
        Assert.That(await Login("ann@new.test", "pw one"), Is.EqualTo(SaslStatus.Success));
        Assert.That(Mailctl(null, "alias", "add", "team@new.test", "ann@new.test", "x@remote.test").ExitCode, Is.EqualTo(0));
        Assert.That(await _pg.ScalarAsync<string>("SELECT goto FROM alias WHERE address = 'team@new.test'"), Is.EqualTo("ann@new.test,x@remote.test"));
        Assert.That(Mailctl(null, "alias", "list", "new.test").Stdout, Does.Contain("team@new.test ann@new.test, x@remote.test").And.Not.Contain("ann@new.test ann@new.test"));
        Assert.That(Mailctl(null, "user", "list", "new.test").Stdout, Does.Contain("ann@new.test"));
        Assert.That(Mailctl(null, "domain", "remove", "new.test").ExitCode, Is.Not.EqualTo(0), "domain still has a mailbox");
        Assert.That(Mailctl(null, "alias", "remove", "team@new.test").ExitCode, Is.EqualTo(0));
        Assert.That(Mailctl(null, "user", "remove", "ann@new.test").ExitCode, Is.EqualTo(0));
        Assert.That(await _pg.ScalarAsync<long>("SELECT count(*) FROM alias WHERE domain = 'new.test'"), Is.EqualTo(0));
        Assert.That(Mailctl(null, "domain", "remove", "new.test").ExitCode, Is.EqualTo(0));
    }

    [Test]
    public async Task Domain_limits_on_mailboxes_aliases_and_quota_are_honoured()
    {
        await _pg.ExecAsync("INSERT INTO domain (domain, aliases, mailboxes, maxquota, transport) VALUES ('small.test', -1, 1, 100, 'virtual')");
        Assert.That(Mailctl("p\n", "user", "add", "a@small.test", "--quota", "10M").ExitCode, Is.EqualTo(0));
        var second = Mailctl("p\n", "user", "add", "b@small.test", "--quota", "10M");
        Assert.That(second.ExitCode, Is.Not.EqualTo(0));
        Assert.That(second.Stderr, Does.Contain("no more mailboxes"));
        var alias = Mailctl(null, "alias", "add", "x@small.test", "a@small.test");
        Assert.That(alias.ExitCode, Is.Not.EqualTo(0));
        Assert.That(alias.Stderr, Does.Contain("no more aliases"));
        await _pg.ExecAsync("UPDATE domain SET mailboxes = 0 WHERE domain = 'small.test'");
        var big = Mailctl("p\n", "user", "add", "c@small.test", "--quota", "1G");
        Assert.That(big.ExitCode, Is.Not.EqualTo(0));
        Assert.That(big.Stderr, Does.Contain("100 MB"));
    }
    [Test]
    public async Task Doveadm_style_listing_of_thousands_of_mailboxes_comes_whole_from_the_authd_daemon()
    {
        // 3000 rows, far more than one read of the database's answer: the daemon (its sessions on
        // its socket event thread) must read them all without blocking that thread on the database.
        await _pg.ExecAsync("""
            INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created, modified, active)
            SELECT 'user' || n || '@example.org', '{PLAIN}x', 'A User', 'example.org/user' || n || '/', 0, 'user' || n, 'example.org', now(), now(), true
              FROM generate_series(1, 3000) AS n
            """);
        using var dir = new TempDir();
        Daemon.WriteAuthdConfig(dir, $"directory_driver = pgsql\npgsql_connection = {_pg.ConnectionString()}\ndovecot_userdb_socket = {dir["run/auth-userdb"]}");
        using var authd = new Daemon("authd", dir["authd.conf"], new UnixDomainSocketEndPoint(dir["run/auth-userdb"]));
        await authd.StartAsync();
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(dir["run/auth-userdb"]));
        await using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await stream.WriteAsync(Encoding.ASCII.GetBytes("VERSION\t1\t0\nLIST\t1\tdomain=example.org\n"));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var users = new List<string>();
        string? line;
        while ((line = await reader.ReadLineAsync(deadline.Token)) != null && !line.StartsWith("DONE", StringComparison.Ordinal))
            if (line.StartsWith("LIST\t1\t", StringComparison.Ordinal)) users.Add(line[7..]);
        Assert.That(line, Is.EqualTo("DONE\t1"));
        Assert.That(users, Has.Count.EqualTo(3000));
        Assert.That(users, Does.Contain("user2999@example.org"));
    }
}
