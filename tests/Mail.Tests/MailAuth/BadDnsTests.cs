using System.Net;
using System.Net.Sockets;
using System.Text;
using Mail.MailAuth;
using Mail.Tests.Support;

namespace Mail.Tests.MailAuth;

/// <summary>
/// Bad DNS answers are survived within a bounded time and never turn into a pass or a wrong
/// rejection: CNAME loops and records too large for UDP from NSD, and from a hostile server on
/// loopback (a UDP socket of the test's own) SERVFAIL, silence, garbage and answers for another name.
/// </summary>
[NonParallelizable]
public sealed class BadDnsTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private static async Task<SpfOutcome> Spf(string dns, string sender, string ip = "192.0.2.1", int timeoutMs = 500)
    {
        var checker = new SpfChecker(new DnsResolver([dns], TimeSpan.FromMilliseconds(timeoutMs)), "mx.test");
        return await checker.CheckMailFromAsync(IPAddress.Parse(ip), sender, "client.test", CancellationToken.None).WaitAsync(Bound);
    }

    [Test]
    public async Task Loops_and_oversized_records_from_an_authoritative_server()
    {
        var many = "v=spf1 " + string.Join(' ', Enumerable.Range(0, 600).Select(i => $"ip4:10.{i / 250}.{i % 250}.1")) + " ip4:192.0.2.1 -all";
        var huge = "v=spf1 " + new string('x', 20_000) + " +all";
        string Txt(string text) => string.Join(' ', text.Chunk(250).Select(c => "\"" + new string(c) + "\""));
        using var dns = ZoneServer.Start(("bad.test", $"""
            loop CNAME loop2.bad.test.
            loop2 CNAME loop.bad.test.
            big TXT {Txt(many)}
            huge TXT {Txt(huge)}
            """));
        // A CNAME loop is the DNS's error, not the domain's policy: temperror.
        Assert.That((await Spf(dns.Address, "a@loop.bad.test")).Result, Is.EqualTo(SpfResult.TempError));
        // About 9 KB: truncated over UDP, read whole over TCP.
        Assert.That(many.Length, Is.GreaterThan(4096));
        Assert.That((await Spf(dns.Address, "a@big.bad.test")).Result, Is.EqualTo(SpfResult.Pass));
        Assert.That((await Spf(dns.Address, "a@big.bad.test", "192.0.2.2")).Result, Is.EqualTo(SpfResult.Fail));
        // Past our limit for one TXT record: taken as absent, never as its "+all".
        Assert.That((await Spf(dns.Address, "a@huge.bad.test")).Result, Is.EqualTo(SpfResult.None));
    }

    public enum Misbehaviour { ServFail, Silent, Garbage, WrongName }

    /// <summary>A DNS server on loopback that answers every query in one bad way.</summary>
    private sealed class HostileServer : IDisposable
    {
        private readonly UdpClient _udp = new(new IPEndPoint(IPAddress.Loopback, 0));
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        public int Queries;
        public string Address => $"127.0.0.1:{((IPEndPoint)_udp.Client.LocalEndPoint!).Port}";

        public HostileServer(Misbehaviour how) => _loop = Task.Run(() => ServeAsync(how));

        private async Task ServeAsync(Misbehaviour how)
        {
            while (!_stop.IsCancellationRequested)
            {
                UdpReceiveResult q;
                try { q = await _udp.ReceiveAsync(_stop.Token); }
                catch (OperationCanceledException) { return; }
                catch (SocketException) { continue; }
                Interlocked.Increment(ref Queries);
                var reply = how switch
                {
                    Misbehaviour.ServFail => Answer(q.Buffer, rcode: 2, null),
                    Misbehaviour.Garbage => [q.Buffer[0], q.Buffer[1], 0x81, 0x80, 0, 1, 0, 9, 0xff, 0xff, 0x03],
                    Misbehaviour.WrongName => Answer(q.Buffer, rcode: 0, "evil.test"),
                    _ => null,
                };
                if (reply != null) await _udp.SendAsync(reply, q.RemoteEndPoint);
            }
        }

        /// <summary>The query's header and question, with the given RCODE and, if named, one TXT answer "v=spf1 +all" for that name.</summary>
        private static byte[] Answer(byte[] query, int rcode, string? answerName)
        {
            int end = 12;
            while (query[end] != 0) end += query[end] + 1;
            end += 5; // root label, type, class
            var m = new List<byte>(query[..end]);
            m[2] = 0x81; m[3] = (byte)(0x80 | rcode);
            m[6] = 0; m[7] = (byte)(answerName != null ? 1 : 0);
            m[8] = m[9] = m[10] = m[11] = 0;
            if (answerName != null)
            {
                foreach (var label in answerName.Split('.')) { m.Add((byte)label.Length); m.AddRange(Encoding.ASCII.GetBytes(label)); }
                var text = Encoding.ASCII.GetBytes("v=spf1 +all");
                m.AddRange([0, 0, 16, 0, 1, 0, 0, 0, 60, 0, (byte)(text.Length + 1), (byte)text.Length]);
                m.AddRange(text);
            }
            return [.. m];
        }

        public void Dispose()
        {
            _stop.Cancel();
            _udp.Dispose();
            try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        }
    }

    [TestCase(Misbehaviour.ServFail, SpfResult.TempError)]
    [TestCase(Misbehaviour.Silent, SpfResult.TempError)]
    [TestCase(Misbehaviour.Garbage, SpfResult.TempError)]
    [TestCase(Misbehaviour.WrongName, SpfResult.None)]
    public async Task A_misbehaving_server_gives_no_pass_and_a_bounded_wait(Misbehaviour how, SpfResult expected)
    {
        using var server = new HostileServer(how);
        var outcome = await Spf(server.Address, "a@victim.test");
        Assert.That(outcome.Result, Is.EqualTo(expected), outcome.Mechanism);
        Assert.That(server.Queries, Is.GreaterThan(0));
        // The same misbehaviour under the DMARC and DKIM look-ups: the message is not refused for good.
        var checks = new InboundChecks(new DnsResolver([server.Address], TimeSpan.FromMilliseconds(500)),
            new PublicSuffixList(PublicSuffixList.DebianPath), "mx.test", InboundPolicy.Default with { Dmarc = CheckAction.Reject }, null);
        var message = MimeKit.MimeMessage.Load(new MemoryStream(Encoding.ASCII.GetBytes(
            "DKIM-Signature: v=1; a=rsa-sha256; d=victim.test; s=s; h=from; bh=AAAA; b=AAAA\r\nFrom: a@victim.test\r\nSubject: x\r\n\r\nbody\r\n")));
        var client = new ClientResults(IPAddress.Parse("192.0.2.1"), "client.test", null, null, null);
        var results = await checks.CheckMessageAsync(message, client, "a@victim.test", outcome, null, new Verdict(null, [], [], ""), CancellationToken.None).WaitAsync(Bound);
        Assert.That(results.Verdict.Refusal, Is.Null, results.Verdict.Log);
        Assert.That(results.Verdict.Log, Does.Not.Contain("dkim=pass").And.Not.Contain("dmarc=pass"));
    }
}
