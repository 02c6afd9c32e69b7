using System.Net;
using System.Text;
using Mail.MailAuth;
using Mail.Shared.Smtp;
using Mail.Tests.Support;
using MimeKit;

namespace Mail.Tests.MailAuth;

/// <summary>
/// DMARC's policy rules (RFC 7489) against records served by NSD: strict and relaxed alignment,
/// sp= for subdomains, pct= sampling, the organizational domain's record; and the replies the
/// client and SPF checks give at RCPT for each action, a DNS error never being a 5xx.
/// </summary>
[NonParallelizable]
public sealed class DmarcTests
{
    private ZoneServer _dns = null!;

    [OneTimeSetUp]
    public void Start() => _dns = ZoneServer.Start(
        ("strict.test", "_dmarc TXT \"v=DMARC1; p=reject; aspf=s; adkim=s\""),
        ("relaxed.test", "_dmarc TXT \"v=DMARC1; p=reject\""),
        ("org.test", "_dmarc TXT \"v=DMARC1; p=none; sp=reject\""),
        ("sampled.test", "_dmarc TXT \"v=DMARC1; p=reject; pct=0\""),
        ("two.test", "_dmarc TXT \"v=DMARC1; p=reject\"\n_dmarc TXT \"v=DMARC1; p=none\""));

    [OneTimeTearDown]
    public void Stop() => _dns.Dispose();

    private async Task<DmarcOutcome> Check(string from, string spfDomain, SpfResult spf = SpfResult.Pass, string? dkimDomain = null)
    {
        var checker = new DmarcChecker(new DnsResolver([_dns.Address], TimeSpan.FromSeconds(2)), new PublicSuffixList(PublicSuffixList.DebianPath));
        var message = MimeMessage.Load(new MemoryStream(Encoding.ASCII.GetBytes($"From: {from}\r\nSubject: x\r\n\r\nbody\r\n")));
        var spfOutcome = new SpfOutcome(spf, "mailfrom", spfDomain, "x@" + spfDomain, "ip4:192.0.2.1");
        var dkim = dkimDomain == null ? new List<DkimOutcome>() : [new DkimOutcome("pass", null, dkimDomain, "s", "rsa-sha256", "abcdefgh", null, true)];
        return await checker.CheckAsync(message, spfOutcome, dkim, CancellationToken.None);
    }

    [Test]
    public async Task Relaxed_alignment_takes_a_subdomain_and_strict_does_not()
    {
        Assert.That((await Check("a@relaxed.test", "mail.relaxed.test")).Result, Is.EqualTo("pass"));
        var strict = await Check("a@strict.test", "mail.strict.test");
        Assert.That((strict.Result, strict.Disposition), Is.EqualTo(("fail", DmarcPolicy.Reject)));
        Assert.That((await Check("a@strict.test", "strict.test")).Result, Is.EqualTo("pass"));
        Assert.That((await Check("a@strict.test", "other.test", SpfResult.Fail, dkimDomain: "mail.strict.test")).Result, Is.EqualTo("fail"));
        Assert.That((await Check("a@relaxed.test", "other.test", SpfResult.Fail, dkimDomain: "mail.relaxed.test")).Result, Is.EqualTo("pass"));
    }

    [Test]
    public async Task A_subdomain_without_a_record_gets_the_organizational_domains_sp()
    {
        var sub = await Check("a@news.org.test", "other.test", SpfResult.Fail);
        Assert.That((sub.Result, sub.Policy), Is.EqualTo(("fail", DmarcPolicy.Reject)));
        var top = await Check("a@org.test", "other.test", SpfResult.Fail);
        Assert.That((top.Result, top.Policy, top.Disposition), Is.EqualTo(("fail", DmarcPolicy.None, DmarcPolicy.None)));
    }

    [Test]
    public async Task Pct_outside_the_sample_applies_the_next_policy_down()
    {
        var o = await Check("a@sampled.test", "other.test", SpfResult.Fail);
        Assert.That((o.Result, o.Policy, o.Disposition), Is.EqualTo(("fail", DmarcPolicy.Reject, DmarcPolicy.Quarantine)));
    }

    [Test]
    public async Task Two_records_or_two_author_domains_are_not_a_policy_to_apply()
    {
        Assert.That((await Check("a@two.test", "other.test", SpfResult.Fail)).Result, Is.EqualTo("none"));
        var twoAuthors = await Check("a@relaxed.test, b@strict.test", "relaxed.test");
        Assert.That((twoAuthors.Result, twoAuthors.Disposition), Is.EqualTo(("permerror", DmarcPolicy.None)));
    }

    private static SmtpReply? AtRcpt(InboundPolicy policy, ReverseOutcome? reverse = null, SpfResult? spf = null, string helo = "client.test")
    {
        var checks = new InboundChecks(new DnsResolver(["127.0.0.1:9"], TimeSpan.FromMilliseconds(100)), new PublicSuffixList(PublicSuffixList.DebianPath),
            "mx.test", policy, null);
        var client = new ClientResults(IPAddress.Parse("192.0.2.9"), helo, reverse, null, null);
        var outcome = spf is { } r ? new SpfOutcome(r, "mailfrom", "sender.test", "a@sender.test", "-all") : null;
        return checks.AtRcpt(client, outcome).Refusal;
    }

    [Test]
    public void Each_action_gives_its_reply_and_a_dns_error_is_never_permanent()
    {
        var reject = InboundPolicy.Default with { Spf = CheckAction.Reject, ReverseClient = CheckAction.Reject, ClientHostname = CheckAction.Reject, HeloSyntax = CheckAction.Reject };
        Assert.That(AtRcpt(reject, spf: SpfResult.Fail)?.ToString(), Does.StartWith("550 5.7.23 <a@sender.test>: Recipient address rejected: SPF fail"));
        Assert.That(AtRcpt(reject, spf: SpfResult.TempError)?.ToString(), Does.StartWith("451 4.7.24"));
        Assert.That(AtRcpt(InboundPolicy.Default, spf: SpfResult.Fail), Is.Null, "tagged only by default");
        Assert.That(AtRcpt(InboundPolicy.Default, spf: SpfResult.TempError), Is.Null);
        Assert.That(AtRcpt(reject, new ReverseOutcome(Mail.MailAuth.Check.Fail, Mail.MailAuth.Check.Fail, null))?.ToString(), Is.EqualTo("450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.9]"));
        Assert.That(AtRcpt(reject, new ReverseOutcome(Mail.MailAuth.Check.TempError, Mail.MailAuth.Check.TempError, null))?.Code, Is.EqualTo(450));
        Assert.That(AtRcpt(reject, new ReverseOutcome(Mail.MailAuth.Check.Pass, Mail.MailAuth.Check.Fail, "dyn.example"))?.ToString(), Is.EqualTo("450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.9]"));
        Assert.That(AtRcpt(reject, helo: "bad_name!")?.ToString(), Is.EqualTo("501 5.5.2 <bad_name!>: Helo command rejected: Invalid name"));
        Assert.That(AtRcpt(reject, helo: "[192.0.2.9]"), Is.Null, "an address literal is a valid HELO");
    }
}
