using Mail.Shared.Auth;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

/// <summary>Recipient resolution through AuthD's gRPC API, as the MTA and LMTP will ask it.</summary>
public sealed class RecipientResolverTests
{
    private AuthDServer _s = null!;

    [SetUp]
    public async Task Start()
    {
        _s = await AuthDServer.StartAsync("alias_recursion_limit = 5");
        File.WriteAllText(_s.Dir["domains"], "example.org\nexample.net\n");
        foreach (var u in new[] { "ann", "bob", "carl", "off" })
            await _s.AddUserAsync($"{u}@example.org", PasswordScheme.Hash("x", "SSHA"), active: u != "off");
        File.WriteAllText(_s.Dir["virtual"], """
            postmaster@example.org   ann@example.org
            team@example.org         ann@example.org, bob@example.org, friend@remote.test
            nested@example.org       team@example.org, carl@example.org
            loop-a@example.org       loop-b@example.org
            loop-b@example.org       loop-a@example.org
            keep@example.org         keep@example.org, bob@example.org
            bob+news@example.org     carl@example.org
            deep1@example.org        deep2@example.org
            deep2@example.org        deep3@example.org
            deep3@example.org        deep4@example.org
            deep4@example.org        deep5@example.org
            deep5@example.org        deep6@example.org
            deep6@example.org        deep7@example.org
            deep7@example.org        ann@example.org
            ghost@example.org        nobody-here@example.org
            @example.net             carl@example.org
            """);
        await _s.AddUserAsync("keep@example.org", "{PLAIN}x");
        await _s.AddUserAsync("real@example.net", "{PLAIN}x");
    }

    [TearDown]
    public async Task Stop() => await _s.DisposeAsync();

    private async Task<ResolveRecipientReply> Resolve(string address) =>
        await _s.Client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = address });

    private static string[] Targets(ResolveRecipientReply r) =>
        r.Targets.Select(t => t.Local ? $"{t.Mailbox}{(t.Detail.Length > 0 ? "/" + t.Detail : "")}" : "remote:" + t.Address).ToArray();

    [Test]
    public async Task Mailbox_resolves_to_itself()
    {
        var r = await Resolve("Bob@EXAMPLE.org");
        Assert.That(r.Status, Is.EqualTo(RecipientStatus.Ok));
        Assert.That(Targets(r), Is.EqualTo(new[] { "bob@example.org" }));
    }

    [Test]
    public async Task Alias_expands_recursively_to_mailboxes_and_remote_addresses()
    {
        var r = await Resolve("nested@example.org");
        Assert.That(r.Status, Is.EqualTo(RecipientStatus.Ok));
        Assert.That(Targets(r), Is.EquivalentTo(new[] { "ann@example.org", "bob@example.org", "remote:friend@remote.test", "carl@example.org" }));
    }

    [Test]
    public async Task Detail_goes_with_the_mailbox_and_an_exact_detail_alias_wins()
    {
        Assert.That(Targets(await Resolve("carl+lists@example.org")), Is.EqualTo(new[] { "carl@example.org/lists" }));
        Assert.That(Targets(await Resolve("bob+news@example.org")), Is.EqualTo(new[] { "carl@example.org" }));
        Assert.That(Targets(await Resolve("postmaster+x@example.org")), Is.EqualTo(new[] { "ann@example.org/x" }));
    }

    [Test]
    public async Task Catch_all_takes_only_addresses_without_a_mailbox()
    {
        Assert.That(Targets(await Resolve("anyone@example.net")), Is.EqualTo(new[] { "carl@example.org" }));
        Assert.That(Targets(await Resolve("real@example.net")), Is.EqualTo(new[] { "real@example.net" }));
    }

    [Test]
    public async Task Alias_to_itself_keeps_the_mailbox()
    {
        Assert.That(Targets(await Resolve("keep@example.org")), Is.EquivalentTo(new[] { "keep@example.org", "bob@example.org" }));
    }

    [Test]
    public async Task Alias_loop_is_cut()
    {
        var r = await Resolve("loop-a@example.org");
        Assert.That(r.Status, Is.EqualTo(RecipientStatus.Loop));
        Assert.That(r.Targets, Is.Empty);
        Assert.That(_s.Log(), Does.Contain("alias loop cut"));
    }

    [Test]
    public async Task Expansion_deeper_than_the_limit_is_cut()
    {
        Assert.That((await Resolve("deep3@example.org")).Status, Is.EqualTo(RecipientStatus.Ok));
        Assert.That((await Resolve("deep1@example.org")).Status, Is.EqualTo(RecipientStatus.Loop));
    }

    [Test]
    public async Task Unknown_user_inactive_user_and_foreign_domain_are_told_apart()
    {
        Assert.That((await Resolve("nobody@example.org")).Status, Is.EqualTo(RecipientStatus.UnknownUser));
        Assert.That((await Resolve("ghost@example.org")).Status, Is.EqualTo(RecipientStatus.UnknownUser));
        Assert.That((await Resolve("off@example.org")).Status, Is.EqualTo(RecipientStatus.Inactive));
        Assert.That((await Resolve("someone@gmail.test")).Status, Is.EqualTo(RecipientStatus.NotOurDomain));
        Assert.That((await Resolve("not an address")).Status, Is.EqualTo(RecipientStatus.UnknownUser));
    }

    [Test]
    public async Task Expansion_count_is_bounded()
    {
        var many = string.Join(", ", Enumerable.Range(0, 3000).Select(i => $"r{i}@remote.test"));
        File.AppendAllText(_s.Dir["virtual"], $"\nbig@example.org {many}\n");
        var r = await Resolve("big@example.org");
        Assert.That(r.Status, Is.EqualTo(RecipientStatus.Ok));
        Assert.That(r.Targets, Has.Count.EqualTo(1000));
    }
}
