using System.Net;
using Mail.MailAuth;
using Mail.Tests.Support;

namespace Mail.Tests.MailAuth;

/// <summary>
/// SPF (RFC 7208) against zones served by NSD on loopback: every mechanism and modifier, macros,
/// the look-up limits, loops and bad records; each case also run through python3-spf (pyspf),
/// an independent implementation, which must give the same result.
/// </summary>
[NonParallelizable]
public sealed class SpfTests
{
    private ZoneServer _dns = null!;

    private const string Zone = """
        @ TXT "v=spf1 ip4:192.0.2.0/25 include:inc.spf.test a:host.spf.test mx -all"
        @ MX 10 mx.spf.test.
        inc TXT "v=spf1 ip4:198.51.100.7 -all"
        host A 203.0.113.5
        mx A 203.0.113.9
        split TXT "v=spf1 ip4:10.1.1.1" " -all"
        two TXT "v=spf1 -all"
        two TXT "v=spf1 +all"
        loop TXT "v=spf1 include:loop.spf.test -all"
        void TXT "v=spf1 a:nx1.spf.test a:nx2.spf.test a:nx3.spf.test ?all"
        many TXT "v=spf1 a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test a:host.spf.test -all"
        redir TXT "v=spf1 redirect=spf.test"
        redirnone TXT "v=spf1 redirect=norecord.spf.test"
        macro TXT "v=spf1 exists:%{i}._spf.%{d} -all"
        192.0.2.200._spf.macro A 127.0.0.2
        local TXT "v=spf1 exists:%{l1-}.u.spf.test ~all"
        sales.u A 127.0.0.2
        exp TXT "v=spf1 -all exp=explain.spf.test"
        explain TXT "%{i} is not one of %{d}'s servers"
        soft TXT "v=spf1 ~all"
        neutral TXT "v=spf1 ?all"
        bad TXT "v=spf1 foo:bar -all"
        badcidr TXT "v=spf1 ip4:192.0.2.1/33 -all"
        ptr TXT "v=spf1 ptr -all"
        mail.ptr A 192.0.2.10
        v6 TXT "v=spf1 ip6:2001:db8::/32 -all"
        cidr TXT "v=spf1 a:host.spf.test/24 -all"
        incnone TXT "v=spf1 include:norecord.spf.test -all"
        modifier TXT "v=spf1 foo=bar ip4:192.0.2.1 -all"
        cname CNAME host.spf.test.
        nospf TXT "some other text"
        """;

    private static readonly (string Ip, string Sender, string Expected)[] Cases =
    [
        ("192.0.2.3", "a@spf.test", "pass"),          // ip4 with a prefix
        ("192.0.2.200", "a@spf.test", "fail"),        // outside it
        ("198.51.100.7", "a@spf.test", "pass"),       // include
        ("203.0.113.5", "a@spf.test", "pass"),        // a:
        ("203.0.113.9", "a@spf.test", "pass"),        // mx
        ("10.1.1.1", "a@split.spf.test", "pass"),     // one record in two strings
        ("10.1.1.2", "a@split.spf.test", "fail"),
        ("192.0.2.3", "a@two.spf.test", "permerror"), // two SPF records
        ("192.0.2.3", "a@loop.spf.test", "permerror"),// include loop: the look-up limit
        ("192.0.2.3", "a@void.spf.test", "permerror"),// three void look-ups
        ("192.0.2.3", "a@many.spf.test", "permerror"),// eleven look-ups
        ("198.51.100.7", "a@redir.spf.test", "pass"), // redirect=
        ("192.0.2.3", "a@redirnone.spf.test", "permerror"),
        ("192.0.2.200", "a@macro.spf.test", "pass"),  // %{i} and %{d} in exists:
        ("192.0.2.201", "a@macro.spf.test", "fail"),
        ("192.0.2.1", "bob-sales@local.spf.test", "pass"), // %{l1-}
        ("192.0.2.1", "bob-ops@local.spf.test", "softfail"),
        ("192.0.2.1", "a@exp.spf.test", "fail"),
        ("192.0.2.1", "a@soft.spf.test", "softfail"),
        ("192.0.2.1", "a@neutral.spf.test", "neutral"),
        ("192.0.2.1", "a@bad.spf.test", "permerror"), // unknown mechanism
        ("192.0.2.1", "a@badcidr.spf.test", "permerror"),
        ("192.0.2.10", "a@ptr.spf.test", "pass"),     // ptr: validated reverse name
        ("192.0.2.11", "a@ptr.spf.test", "fail"),
        ("2001:db8::25", "a@v6.spf.test", "pass"),
        ("2001:db9::25", "a@v6.spf.test", "fail"),
        ("192.0.2.25", "a@v6.spf.test", "fail"),
        ("203.0.113.77", "a@cidr.spf.test", "pass"),  // a:name/24
        ("192.0.2.1", "a@incnone.spf.test", "permerror"),
        ("192.0.2.1", "a@modifier.spf.test", "pass"), // unknown modifier ignored
        ("192.0.2.1", "a@nospf.spf.test", "none"),
        ("192.0.2.1", "a@nxdomain.spf.test", "none"),
    ];

    [OneTimeSetUp]
    public void Start() => _dns = ZoneServer.Start(("spf.test", Zone),
        ("2.0.192.in-addr.arpa", "10 PTR mail.ptr.spf.test.\n11 PTR mail.ptr.spf.test."));

    [OneTimeTearDown]
    public void Stop() => _dns.Dispose();

    private SpfChecker Checker() => new(new DnsResolver([_dns.Address], TimeSpan.FromSeconds(2)), "mx.test");

    public static IEnumerable<TestCaseData> All() => Cases.Select(c => new TestCaseData(c.Ip, c.Sender, c.Expected).SetName($"SPF {c.Sender} from {c.Ip} is {c.Expected}"));

    [TestCaseSource(nameof(All))]
    public async Task Result_is_as_RFC_7208_says(string ip, string sender, string expected)
    {
        var outcome = await Checker().CheckMailFromAsync(IPAddress.Parse(ip), sender, "client.example", CancellationToken.None);
        Assert.That(SpfOutcome.Name(outcome.Result), Is.EqualTo(expected), outcome.Mechanism);
    }

    [Test]
    public async Task Exp_text_is_expanded_into_the_explanation()
    {
        var outcome = await Checker().CheckMailFromAsync(IPAddress.Parse("192.0.2.1"), "a@exp.spf.test", "client.example", CancellationToken.None);
        Assert.That(outcome.Explanation, Is.EqualTo("192.0.2.1 is not one of exp.spf.test's servers"));
    }

    [Test]
    public void Python_spf_agrees_on_every_case()
    {
        var script = $$"""
            import sys, dns.resolver, spf
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = ['127.0.0.1']; r.port = {{_dns.Port}}
            dns.resolver.default_resolver = r
            for line in sys.stdin:
                ip, sender = line.split()
                print(spf.check2(i=ip, s=sender, h='client.example', timeout=10)[0])
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script], string.Join('\n', Cases.Select(c => $"{c.Ip} {c.Sender}")) + "\n");
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        var theirs = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var disagreements = Cases.Zip(theirs).Where(p => p.First.Expected != p.Second).Select(p => $"{p.First.Sender} from {p.First.Ip}: pyspf {p.Second}, expected {p.First.Expected}").ToList();
        Assert.That(disagreements, Is.Empty);
    }

    [Test]
    public async Task Helo_identity_and_an_empty_sender_use_the_helo_name()
    {
        var checker = Checker();
        var helo = await checker.CheckHeloAsync(IPAddress.Parse("198.51.100.7"), "inc.spf.test", CancellationToken.None);
        Assert.That(helo.Result, Is.EqualTo(SpfResult.Pass));
        var bounce = await checker.CheckMailFromAsync(IPAddress.Parse("198.51.100.8"), "", "inc.spf.test", CancellationToken.None);
        Assert.That((bounce.Result, bounce.Sender), Is.EqualTo((SpfResult.Fail, "postmaster@inc.spf.test")));
    }

    [Test]
    public async Task A_server_that_does_not_answer_is_a_temporary_error_within_the_time_out()
    {
        using var silent = new System.Net.Sockets.UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)silent.Client.LocalEndPoint!).Port;
        var checker = new SpfChecker(new DnsResolver([$"127.0.0.1:{port}"], TimeSpan.FromMilliseconds(300)), "mx.test");
        var started = DateTime.UtcNow;
        var outcome = await checker.CheckMailFromAsync(IPAddress.Parse("192.0.2.1"), "a@spf.test", "client.example", CancellationToken.None);
        Assert.That(outcome.Result, Is.EqualTo(SpfResult.TempError));
        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(10)));
    }
}
