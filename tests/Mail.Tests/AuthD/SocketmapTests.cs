using System.Buffers;
using System.Text;
using Mail.AuthD.Socketmap;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.AuthD;

public sealed class SocketmapTests
{
    [Test]
    public void Netstring_parses_at_every_split_point()
    {
        var input = Encoding.ASCII.GetBytes("11:aliases a@b,9:domains x,");
        for (int split = 0; split <= input.Length; split++)
        {
            var got = new List<string>();
            var buffer = new ReadOnlySequence<byte>(input, 0, split);
            while (Netstring.TryRead(ref buffer, 100, out var v) == NetstringResult.Complete) got.Add(v);
            // What was not consumed stays, and the rest of the input arrives after it.
            int consumed = split - (int)buffer.Length;
            var rest = new ReadOnlySequence<byte>(input, consumed, input.Length - consumed);
            while (Netstring.TryRead(ref rest, 100, out var v) == NetstringResult.Complete) got.Add(v);
            Assert.That(got, Is.EqualTo(new[] { "aliases a@b", "domains x" }), $"split at {split}");
        }
    }

    [TestCase("abc:xyz,")]
    [TestCase("3:abcd")]
    [TestCase("99999999:")]
    [TestCase("200:")]
    [TestCase(":x,")]
    public void Malformed_or_oversized_netstring_is_an_error(string text)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(text));
        Assert.That(Netstring.TryRead(ref buffer, 100, out _), Is.EqualTo(NetstringResult.Error));
    }

    [Test]
    public async Task Postmap_queries_the_maps_through_the_socket()
    {
        var postmap = Peers.Require("postmap");
        await using var s = await AuthDServer.StartAsync();
        File.WriteAllText(s.Dir["domains"], "example.org\nexample.net\n");
        await s.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        File.WriteAllText(s.Dir["virtual"], "sales@example.org ann@example.org, bob@example.org\n@example.net bob@example.org\n");
        string Q(string map, string key)
        {
            var r = Run.Program(postmap, ["-q", key, $"socketmap:unix:{s.SocketmapSocket}:{map}"]);
            return r.ExitCode == 0 ? r.Stdout.Trim() : $"exit {r.ExitCode}";
        }
        Assert.That(Q("domains", "example.org"), Is.EqualTo("example.org"));
        Assert.That(Q("domains", "EXAMPLE.NET"), Is.EqualTo("example.net"));
        Assert.That(Q("domains", "gmail.test"), Is.EqualTo("exit 1"));
        Assert.That(Q("mailboxes", "bob@example.org"), Is.EqualTo("example.org/bob/"));
        Assert.That(Q("mailboxes", "nobody@example.org"), Is.EqualTo("exit 1"));
        Assert.That(Q("aliases", "sales@example.org"), Is.EqualTo("ann@example.org,bob@example.org"));
        Assert.That(Q("aliases", "bob@example.org"), Is.EqualTo("bob@example.org"));
        Assert.That(Q("aliases", "@example.net"), Is.EqualTo("bob@example.org"));
        Assert.That(Q("aliases", "nobody@example.org"), Is.EqualTo("exit 1"));
        Assert.That(Q("nosuchmap", "x"), Does.StartWith("exit"));
    }

    [Test]
    public async Task Directory_fault_is_temp_so_postfix_defers()
    {
        var postmap = Peers.Require("postmap");
        await using var s = await AuthDServer.StartAsync();
        File.Delete(s.Dir["passwd"]);
        var r = Run.Program(postmap, ["-q", "bob@example.org", $"socketmap:unix:{s.SocketmapSocket}:mailboxes"]);
        Assert.That(r.ExitCode, Is.Not.EqualTo(0));
        // postmap reports the server's TEMP reply, not a plain "not found".
        Assert.That(r.Stderr, Does.Contain("directory unavailable"));
    }
}
