using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>POP3 over the same Maildir, driven by Python's poplib; UIDL as Dovecot gives it.</summary>
[NonParallelizable]
public sealed class Pop3Tests
{
    [Test]
    public async Task Poplib_reads_and_deletes_with_dovecots_uidls()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await using var lmtp = await LmtpServer.StartAsync(authd);
        for (int i = 1; i <= 3; i++)
        {
            var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp.Port}", "--from", "a@remote.test",
                "--to", "bob@example.org", "--header", $"Subject: pop {i}", "--body", $"line one\n.leading dot\nmessage {i}"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        }
        await using var ours = await ImapServer.StartAsync(authd);
        System.IO.Directory.CreateDirectory(authd.Dir["mail"]);
        Run.Program("chown", ["-R", "5000:5001", authd.Dir["mail"]]);
        using var dovecot = DovecotServer.Start(authd, pop3: true);
        var script = authd.Dir["pop.py"];
        File.WriteAllText(script, $$"""
            import poplib, ssl, sys
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            def uidls(port, password, tls):
                p = poplib.POP3("127.0.0.1", port, timeout=30)
                if tls:
                    assert "STLS" in p.capa(), p.capa()
                    p.stls(context=ctx)
                p.user("bob@example.org")
                p.pass_(password)
                result = [l.decode() for l in p.uidl()[1]]
                return p, result
            p, ours = uidls({{ours.Pop3Port}}, "bob pass", True)
            d, theirs = uidls({{dovecot.Pop3Port}}, "anything", False)
            d.quit()
            print("uidl", ours, theirs)
            assert ours == theirs, (ours, theirs)
            count, size = p.stat()
            assert count == 3, count
            listing = [l.decode() for l in p.list()[1]]
            assert len(listing) == 3
            resp, lines, octets = p.retr(2)
            text = b"\n".join(lines)
            assert b"Subject: pop 2" in text and b"\n.leading dot\n" in text, text
            assert octets == int(listing[1].split()[1]), (octets, listing)  # RFC 1939 5: the exact size, in CRLF lines, before stuffing
            assert size == sum(int(l.split()[1]) for l in listing), (size, listing)
            resp, top, _ = p.top(1, 0)
            assert b"Subject: pop 1" in b"\n".join(top) and b"message 1" not in b"\n".join(top), top
            p.dele(1)
            try:
                p.retr(1)
                sys.exit("a deleted message was served")
            except poplib.error_proto:
                pass
            p.quit()
            p, after = uidls({{ours.Pop3Port}}, "bob pass", True)
            assert after == ours[1:] or [a.split()[1] for a in after] == [o.split()[1] for o in ours[1:]], (after, ours)
            p.quit()
            print("pop3 ok")
            """);
        var run = Run.Program(Peers.Require("python3"), [script]);
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Stdout + run.Stderr);
        Assert.That(run.Stdout, Does.Contain("pop3 ok"));
        var left = System.IO.Directory.GetFiles(Path.Combine(authd.Dir["mail"], "example.org", "bob", "cur"));
        Assert.That(left, Has.Length.EqualTo(2), "DELE took effect at QUIT");
    }
}
