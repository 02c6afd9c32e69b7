using System.Net.Sockets;
using System.Text;
using Mail.MailAuth;
using Mail.Tests.Support;

namespace Mail.Tests.MailAuth;

/// <summary>
/// SRS in postsrsd's format, checked against Debian's postsrsd itself (a private instance on
/// loopback with the same secret, asked through its Postfix tcp_table ports): each side reverses
/// what the other wrote, and both write the same addresses.
/// </summary>
[NonParallelizable]
public sealed class SrsTests
{
    private TempDir _dir = null!;
    private System.Diagnostics.Process _postsrsd = null!;
    private int _forward, _reverse;
    private Srs _srs = null!;
    private const string Secret = "a shared secret of the test";

    [OneTimeSetUp]
    public async Task Start()
    {
        _dir = new TempDir();
        File.WriteAllText(_dir["secret"], Secret + "\n");
        (_forward, _reverse) = (Ports.Free(), Ports.Free());
        var psi = new System.Diagnostics.ProcessStartInfo(Peers.Require("postsrsd"))
        { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in (string[])["-d", "fwd.example.org", "-s", _dir["secret"], "-f", _forward.ToString(), "-r", _reverse.ToString(), "-l", "127.0.0.1", "-u", "nobody"])
            psi.ArgumentList.Add(a);
        _postsrsd = System.Diagnostics.Process.Start(psi)!;
        Assert.That(PeerProcess.Listening(_postsrsd, _forward) && PeerProcess.Listening(_postsrsd, _reverse), Is.True, "postsrsd listens: " + (_postsrsd.HasExited ? await _postsrsd.StandardError.ReadToEndAsync() : ""));
        _srs = Srs.FromFile(_dir["secret"], "fwd.example.org");
    }

    [OneTimeTearDown]
    public void Stop()
    {
        if (_postsrsd != null) PeerProcess.Stop(_postsrsd);
        _dir.Dispose();
    }

    /// <summary>Postfix's tcp_table request to postsrsd: the answer's code and text (URL-decoded).</summary>
    private static string Ask(int port, string address)
    {
        using var tcp = new TcpClient("127.0.0.1", port);
        using var stream = tcp.GetStream();
        stream.Write(Encoding.ASCII.GetBytes("get " + Uri.EscapeDataString(address) + "\n"));
        var reply = new StreamReader(stream).ReadLine() ?? "";
        return reply.Length > 4 ? reply[..4] + Uri.UnescapeDataString(reply[4..]) : reply;
    }

    [TestCase("alice@sender.test")]
    [TestCase("Mixed.Case+tag@Sender.Test")]
    [TestCase("a=b@sender.test")]
    public void Forward_and_reverse_agree_with_postsrsd(string sender)
    {
        var ours = _srs.Forward(sender, DateTimeOffset.UtcNow);
        Assert.That(ours, Does.StartWith("SRS0=").And.EndWith("@fwd.example.org"));
        Assert.That(Ask(_forward, sender), Is.EqualTo("200 " + ours), "postsrsd writes the same address");
        Assert.That(Ask(_reverse, ours), Is.EqualTo("200 " + sender), "postsrsd reverses ours");
        Assert.That(_srs.Reverse(ours, DateTimeOffset.UtcNow), Is.EqualTo(sender));
        Assert.That(_srs.Reverse(ours.ToLowerInvariant(), DateTimeOffset.UtcNow), Is.EqualTo(sender.ToLowerInvariant()), "as libsrs2: the hash is taken without case");
    }

    [Test]
    public void An_address_another_forwarder_rewrote_becomes_SRS1_that_leads_back_to_it()
    {
        var other = new Srs(["another secret"], "first.test").Forward("alice@sender.test", DateTimeOffset.UtcNow);
        var ours = _srs.Forward(other, DateTimeOffset.UtcNow);
        Assert.That(ours, Does.StartWith("SRS1=").And.Contain("=first.test==").And.EndWith("@fwd.example.org"));
        Assert.That(Ask(_forward, other), Is.EqualTo("200 " + ours));
        Assert.That(_srs.Reverse(ours, DateTimeOffset.UtcNow), Is.EqualTo(other), "back to the first forwarder's address");
        Assert.That(Ask(_reverse, ours), Is.EqualTo("200 " + other));
    }

    [Test]
    public void A_forged_or_expired_address_is_not_reversed()
    {
        var ours = _srs.Forward("alice@sender.test", DateTimeOffset.UtcNow);
        var forged = "SRS0=AAAA" + ours[9..];
        Assert.That(_srs.Reverse(forged, DateTimeOffset.UtcNow), Is.Null);
        Assert.That(Ask(_reverse, forged), Does.StartWith("500 "), "postsrsd refuses it too");
        var old = _srs.Forward("alice@sender.test", DateTimeOffset.UtcNow.AddDays(-30));
        Assert.That(_srs.Reverse(old, DateTimeOffset.UtcNow), Is.Null, "older than 21 days");
        Assert.That(Ask(_reverse, old), Does.StartWith("500 "));
        Assert.That(_srs.Reverse(old, DateTimeOffset.UtcNow, checkAge: false), Is.EqualTo("alice@sender.test"));
        Assert.That(_srs.Reverse("SRS0=x@fwd.example.org", DateTimeOffset.UtcNow), Is.Null);
        Assert.That(_srs.Reverse("alice@fwd.example.org", DateTimeOffset.UtcNow), Is.Null);
    }
}
