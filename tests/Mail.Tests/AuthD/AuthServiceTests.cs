using System.Net;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using MailKit.Security;

namespace Mail.Tests.AuthD;

/// <summary>AuthD's gRPC API driven through its Unix socket, with MailKit's SASL clients.</summary>
public sealed class AuthServiceTests
{
    private AuthDServer _s = null!;

    [SetUp]
    public async Task Start()
    {
        _s = await AuthDServer.StartAsync();
        await _s.AddUserAsync("bob@example.org", PasswordScheme.Hash("bobpass", "SHA512-CRYPT"), quota: 1L << 30);
    }

    [TearDown]
    public async Task Stop() => await _s.DisposeAsync();

    private Task<SaslServerMessage> Plain(string user, string pass, ClientInfo? client = null) =>
        _s.Client.AuthenticatePlainAsync(user, pass, client ?? AuthDServer.Client_());

    /// <summary>Runs a whole exchange with a MailKit client mechanism.</summary>
    private async Task<(SaslServerMessage Reply, SaslMechanism Mech)> WithMailKit(SaslMechanism mech, ClientInfo? client = null)
    {
        byte[]? initial = mech.SupportsInitialResponse ? Convert.FromBase64String(mech.Challenge(null)) : null;
        var reply = await _s.Client.AuthenticateAsync(mech.MechanismName, initial, client ?? AuthDServer.Client_(),
            ch => Convert.FromBase64String(mech.Challenge(Convert.ToBase64String(ch))));
        return (reply, mech);
    }

    [Test]
    public async Task Plain_with_the_right_password_succeeds_and_the_wrong_one_fails()
    {
        var ok = await Plain("Bob@Example.org", "bobpass");
        Assert.That(ok.Status, Is.EqualTo(SaslStatus.Success));
        Assert.That(ok.User, Is.EqualTo("bob@example.org"));
        var bad = await Plain("bob@example.org", "bobpas");
        Assert.That(bad.Status, Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Reply_for_an_unknown_user_is_the_same_as_for_a_wrong_password()
    {
        var wrong = await Plain("bob@example.org", "nope", AuthDServer.Client_("192.0.2.1"));
        var unknown = await Plain("nobody@example.org", "nope", AuthDServer.Client_("192.0.2.2"));
        Assert.That(unknown.Status, Is.EqualTo(wrong.Status));
        Assert.That(unknown.Reason, Is.EqualTo(wrong.Reason));
        Assert.That(unknown.User, Is.EqualTo(wrong.User));
        Assert.That(unknown.Challenge, Is.EqualTo(wrong.Challenge));
    }

    [Test]
    public async Task Login_mechanism_runs_in_several_steps()
    {
        var (ok, _) = await WithMailKit(new SaslMechanismLogin(new NetworkCredential("bob@example.org", "bobpass")));
        Assert.That(ok.Status, Is.EqualTo(SaslStatus.Success));
        var (bad, _) = await WithMailKit(new SaslMechanismLogin(new NetworkCredential("bob@example.org", "x")));
        Assert.That(bad.Status, Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Cram_md5_works_where_the_stored_hash_allows_it()
    {
        var doveadm = Peers.Require("doveadm");
        var hash = Run.Program(doveadm, ["pw", "-s", "CRAM-MD5", "-p", "cram pass"]).Stdout.Trim();
        await _s.AddUserAsync("cram@example.org", hash);
        var (ok, _) = await WithMailKit(new SaslMechanismCramMd5(new NetworkCredential("cram@example.org", "cram pass")));
        Assert.That(ok.Status, Is.EqualTo(SaslStatus.Success));
        var (bad, _) = await WithMailKit(new SaslMechanismCramMd5(new NetworkCredential("cram@example.org", "cram pasS")));
        Assert.That(bad.Status, Is.EqualTo(SaslStatus.Failure));
        // bob's SHA512-CRYPT hash cannot answer a CRAM-MD5 challenge.
        var (crypt, _) = await WithMailKit(new SaslMechanismCramMd5(new NetworkCredential("bob@example.org", "bobpass")));
        Assert.That(crypt.Status, Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Scram_sha_256_with_keys_made_by_doveadm_proves_both_sides()
    {
        var doveadm = Peers.Require("doveadm");
        var hash = Run.Program(doveadm, ["pw", "-s", "SCRAM-SHA-256", "-p", "scram pass"]).Stdout.Trim();
        await _s.AddUserAsync("scram@example.org", hash);
        var (ok, mech) = await WithMailKit(new SaslMechanismScramSha256(new NetworkCredential("scram@example.org", "scram pass")));
        Assert.That(ok.Status, Is.EqualTo(SaslStatus.Success));
        // The client checks the server's signature: only a server holding ServerKey can make it.
        mech.Challenge(Convert.ToBase64String(ok.FinalData.ToByteArray()));
        Assert.That(mech.IsAuthenticated, Is.True);
        var (bad, _) = await WithMailKit(new SaslMechanismScramSha256(new NetworkCredential("scram@example.org", "wrong")));
        Assert.That(bad.Status, Is.EqualTo(SaslStatus.Failure));
        var (unknown, _) = await WithMailKit(new SaslMechanismScramSha256(new NetworkCredential("ghost@example.org", "wrong")));
        Assert.That(unknown.Status, Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Scram_sha_1_works_for_a_plaintext_password()
    {
        await _s.AddUserAsync("plain@example.org", "{PLAIN}plain pass");
        var (ok, mech) = await WithMailKit(new SaslMechanismScramSha1(new NetworkCredential("plain@example.org", "plain pass")));
        Assert.That(ok.Status, Is.EqualTo(SaslStatus.Success));
        mech.Challenge(Convert.ToBase64String(ok.FinalData.ToByteArray()));
        Assert.That(mech.IsAuthenticated, Is.True);
    }

    [Test]
    public async Task Unknown_mechanism_is_refused()
    {
        var r = await _s.Client.AuthenticateAsync("GSSAPI", null, AuthDServer.Client_(), _ => null);
        Assert.That(r.Status, Is.EqualTo(SaslStatus.BadMechanism));
        var long_ = await _s.Client.AuthenticateAsync(new string('X', 10_000), null, AuthDServer.Client_(), _ => null);
        Assert.That(long_.Status, Is.EqualTo(SaslStatus.BadMechanism));
    }

    [Test]
    public async Task Plaintext_mechanisms_need_a_secured_connection()
    {
        var insecure = AuthDServer.Client_(secured: false);
        var r = await Plain("bob@example.org", "bobpass", insecure);
        Assert.That(r.Status, Is.EqualTo(SaslStatus.BadMechanism));
        var offered = await _s.Client.Api.MechanismsAsync(new MechanismsRequest { Client = insecure });
        Assert.That(offered.Mechanisms, Does.Not.Contain("PLAIN").And.Not.Contain("LOGIN"));
        Assert.That(offered.Mechanisms, Does.Contain("SCRAM-SHA-256"));
        var secure = await _s.Client.Api.MechanismsAsync(new MechanismsRequest { Client = AuthDServer.Client_() });
        Assert.That(secure.Mechanisms, Does.Contain("PLAIN"));
    }

    [Test]
    public async Task Another_users_authorization_identity_is_refused()
    {
        await _s.AddUserAsync("eve@example.org", "{PLAIN}evepass");
        var initial = Encoding.UTF8.GetBytes("bob@example.org\0eve@example.org\0evepass");
        var r = await _s.Client.AuthenticateAsync("PLAIN", initial, AuthDServer.Client_(), _ => null);
        Assert.That(r.Status, Is.EqualTo(SaslStatus.Failure));
        var self = Encoding.UTF8.GetBytes("eve@example.org\0eve@example.org\0evepass");
        Assert.That((await _s.Client.AuthenticateAsync("PLAIN", self, AuthDServer.Client_(), _ => null)).Status, Is.EqualTo(SaslStatus.Success));
    }

    [TestCase("no nuls at all")]
    [TestCase("\0only-one-nul")]
    [TestCase("a\0b\0c\0d")]
    [TestCase("\0\0")]
    public async Task Malformed_plain_response_is_answered_as_malformed(string response)
    {
        var r = await _s.Client.AuthenticateAsync("PLAIN", Encoding.UTF8.GetBytes(response), AuthDServer.Client_(), _ => null);
        Assert.That(r.Status, Is.EqualTo(SaslStatus.Malformed));
    }

    [Test]
    public async Task Invalid_utf8_is_malformed_not_a_crash()
    {
        byte[] bad = [0, 0xC3, 0x28, 0, (byte)'p'];
        var r = await _s.Client.AuthenticateAsync("PLAIN", bad, AuthDServer.Client_(), _ => null);
        Assert.That(r.Status, Is.EqualTo(SaslStatus.Malformed));
    }

    [Test]
    public async Task Huge_request_is_refused_and_the_server_goes_on()
    {
        var huge = new byte[1 << 20];
        var e = Assert.ThrowsAsync<RpcException>(() => _s.Client.AuthenticateAsync("PLAIN", huge, AuthDServer.Client_(), _ => null));
        Assert.That(e!.StatusCode, Is.AnyOf(StatusCode.ResourceExhausted, StatusCode.Cancelled));
        var tooBig = Assert.ThrowsAsync<RpcException>(async () =>
            await _s.Client.Api.LookupUserAsync(new LookupUserRequest { User = new string('a', 100_000) + "@example.org" }));
        Assert.That(tooBig!.StatusCode, Is.EqualTo(StatusCode.ResourceExhausted));
        var lookup = await _s.Client.Api.LookupUserAsync(new LookupUserRequest { User = new string('a', 10_000) + "@example.org" });
        Assert.That(lookup.Status, Is.EqualTo(LookupStatus.NotFound));
        Assert.That(lookup.Reason, Is.EqualTo("malformed request"));
        Assert.That((await Plain("bob@example.org", "bobpass")).Status, Is.EqualTo(SaslStatus.Success));
    }

    [Test]
    public async Task Client_that_cancels_or_vanishes_mid_exchange_harms_nothing()
    {
        // Cancel by message.
        var cancelled = await _s.Client.AuthenticateAsync("LOGIN", null, AuthDServer.Client_(), _ => null);
        Assert.That(cancelled.Status, Is.EqualTo(SaslStatus.Aborted));
        // Vanish: open an exchange, take the first challenge, then drop the call.
        for (int i = 0; i < 20; i++)
        {
            using var call = _s.Client.Api.Authenticate();
            await call.RequestStream.WriteAsync(new SaslClientMessage { Start = new SaslStart { Mechanism = "LOGIN", Client = AuthDServer.Client_() } });
            Assert.That(await call.ResponseStream.MoveNext(), Is.True);
            Assert.That(call.ResponseStream.Current.Status, Is.EqualTo(SaslStatus.Continue));
        }
        // The exchange must start with a start message.
        using (var call = _s.Client.Api.Authenticate())
        {
            await call.RequestStream.WriteAsync(new SaslClientMessage { Response = Google.Protobuf.ByteString.CopyFromUtf8("x") });
            Assert.That(await call.ResponseStream.MoveNext(), Is.True);
            Assert.That(call.ResponseStream.Current.Status, Is.EqualTo(SaslStatus.Malformed));
        }
        Assert.That((await Plain("bob@example.org", "bobpass")).Status, Is.EqualTo(SaslStatus.Success));
        Assert.That(await Wait.UntilAsync(() => _s.Log().Contains("result=aborted (client went away)"), TimeSpan.FromSeconds(10)), Is.True);
    }

    [Test]
    public async Task Failed_logins_wait_longer_each_time_and_are_logged_without_the_password()
    {
        var ip = AuthDServer.Client_("198.51.100.7");
        for (int i = 0; i < 4; i++) await Plain("bob@example.org", "guess-" + i, ip);
        await Plain("bob@example.org", "bobpass", ip);
        var log = _s.Log();
        Assert.That(log, Does.Contain("auth: service=imap, rip=198.51.100.7, mech=PLAIN, user=<bob@example.org>, result=failed (password mismatch), delay=50ms"));
        Assert.That(log, Does.Contain("delay=100ms"));
        Assert.That(log, Does.Contain("delay=200ms"));
        Assert.That(log, Does.Contain("delay=400ms"));
        Assert.That(log, Does.Contain("rip=198.51.100.7, mech=PLAIN, user=<bob@example.org>, result=ok"));
        Assert.That(log, Does.Not.Contain("guess-"));
        Assert.That(log, Does.Not.Contain("bobpass"));
    }

    [Test]
    public async Task Lookup_user_gives_the_mailbox_record()
    {
        var r = await _s.Client.Api.LookupUserAsync(new LookupUserRequest { User = "bob+lists@Example.org" });
        Assert.That(r.Status, Is.EqualTo(LookupStatus.Ok));
        Assert.That(r.User.User, Is.EqualTo("bob@example.org"));
        Assert.That(r.User.Maildir, Is.EqualTo(System.IO.Path.Combine(_s.Dir.Path, "mail", "example.org", "bob")));
        Assert.That((r.User.Uid, r.User.Gid), Is.EqualTo((5000u, 5001u)));
        Assert.That(r.User.QuotaBytes, Is.EqualTo(1UL << 30));
        Assert.That(r.User.Active, Is.True);
        var none = await _s.Client.Api.LookupUserAsync(new LookupUserRequest { User = "nobody@example.org" });
        Assert.That(none.Status, Is.EqualTo(LookupStatus.NotFound));
    }

    [Test]
    public async Task Users_added_while_running_log_in_at_once()
    {
        Assert.That((await Plain("new@example.org", "newpass")).Status, Is.EqualTo(SaslStatus.Failure));
        await _s.AddUserAsync("new@example.org", PasswordScheme.Hash("newpass", "SSHA512"));
        Assert.That((await Plain("new@example.org", "newpass")).Status, Is.EqualTo(SaslStatus.Success));
    }

    [Test]
    public async Task Disabled_user_cannot_log_in()
    {
        await _s.AddUserAsync("off@example.org", "{PLAIN}offpass", active: false);
        Assert.That((await Plain("off@example.org", "offpass")).Status, Is.EqualTo(SaslStatus.Failure));
    }

    [Test]
    public async Task Directory_fault_is_a_temporary_failure_never_no_such_user()
    {
        File.Delete(_s.Dir["passwd"]);
        System.IO.Directory.CreateDirectory(_s.Dir["passwd"]);
        File.WriteAllText(_s.Dir["domains"], "example.org\nother.org\n");
        Assert.That((await Plain("bob@example.org", "bobpass")).Status, Is.EqualTo(SaslStatus.Tempfail));
        var lookup = await _s.Client.Api.LookupUserAsync(new LookupUserRequest { User = "bob@example.org" });
        Assert.That(lookup.Status, Is.EqualTo(LookupStatus.Tempfail));
        var resolve = await _s.Client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = "bob@example.org" });
        Assert.That(resolve.Status, Is.EqualTo(RecipientStatus.Tempfail));
    }

    [Test]
    public async Task Sockets_take_the_configured_mode_which_defaults_to_0660()
    {
        foreach (var socket in new[] { _s.Socket, _s.DovecotAuthSocket, _s.SocketmapSocket })
            Assert.That(File.GetUnixFileMode(socket) & (UnixFileMode)0x1FF, Is.EqualTo((UnixFileMode)Convert.ToInt32("666", 8)), socket);
        await using var defaults = await AuthDServer.StartAsync(extraConfig: "socket_mode = 0660");
        Assert.That(File.GetUnixFileMode(defaults.Socket) & (UnixFileMode)0x1FF, Is.EqualTo((UnixFileMode)Convert.ToInt32("660", 8)));
        Assert.That(Mail.Shared.Auth.AuthDSettings.Settings.Single(s => s.Key == "socket_mode").Default, Is.EqualTo("0660"));
    }
}
