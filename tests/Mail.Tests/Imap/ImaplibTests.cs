using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>Python's imaplib drives the IMAP commands one by one, as scripts and tools do.</summary>
[NonParallelizable]
public sealed class ImaplibTests
{
    [Test]
    public async Task Imaplib_drives_every_command()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"), quota: 10_000_000);
        await using var imap = await ImapServer.StartAsync(authd);
        var script = authd.Dir["imap_commands.py"];
        File.WriteAllText(script, $$"""
            import imaplib, ssl, sys
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            def ok(result, what):
                typ, data = result
                if typ != "OK":
                    print("FAILED", what, typ, data); sys.exit(1)
                return data
            m = imaplib.IMAP4("127.0.0.1", {{imap.Port}})
            caps = m.capabilities
            assert "STARTTLS" in caps and "IMAP4REV1" in caps, caps
            ok(m.starttls(ssl_context=ctx), "STARTTLS")
            ok(m.login("bob@example.org", "bob pass"), "LOGIN")
            for c in ["IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "SPECIAL-USE", "QUOTA", "ESEARCH", "LITERAL+"]:
                assert c in m.capabilities, (c, m.capabilities)
            ok(m.xatom("ID", '("name" "imaplib")'), "ID")
            print("namespace", ok(m.namespace(), "NAMESPACE"))
            ok(m.create("Work"), "CREATE")
            ok(m.create("Work/Reports"), "CREATE child")
            ok(m.create("Deep/Er/Est"), "CREATE with new parents")
            deep = [l.decode() for l in ok(m.list('""', "Deep*"), "LIST parents")]
            assert any('"Deep"' in n for n in deep) and any('"Deep/Er"' in n for n in deep), deep
            ext = [l.decode() for l in ok(m._untagged_response(*m._simple_command("LIST", '""', '"*"', "RETURN", "(SUBSCRIBED CHILDREN)"), "LIST"), "LIST-EXTENDED") if l]
            assert any("\\Subscribed" in n and '"Sent"' in n for n in ext), ext
            listing = ok(m.list(), "LIST")
            names = [l.decode() for l in listing]
            assert any('"Work/Reports"' in n for n in names), names
            assert any("\\Sent" in n and '"Sent"' in n for n in names), names
            assert any('\\HasChildren' in n and '"Work"' in n for n in names), names
            ok(m.subscribe("Work"), "SUBSCRIBE")
            assert any('"Work"' in l.decode() for l in ok(m.lsub(), "LSUB"))
            ok(m.unsubscribe("Work"), "UNSUBSCRIBE")
            for i in range(3):
                msg = ("From: ann@remote.test\r\nTo: bob@example.org\r\nSubject: item %d\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                       "--b\r\nContent-Type: text/plain\r\n\r\nhello %d\r\n--b\r\nContent-Type: application/pdf\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n") % (i, i)
                ok(m.append("INBOX", "(\\Seen)" if i == 0 else None, imaplib.Time2Internaldate(1700000000 + i), msg.encode()), "APPEND")
            print("status", ok(m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"), "STATUS"))
            data = ok(m.select("INBOX"), "SELECT")
            assert data[0] == b"3", data
            data = ok(m.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)"), "FETCH")
            text = b" ".join(x if isinstance(x, bytes) else b" ".join(x) for x in data)
            assert b'"mixed"' in text and b'"application" "pdf"' in text and b'"item 0"' in text, text
            data = ok(m.fetch("2", "(BODY[1] BODY[2.MIME] BODY[HEADER.FIELDS (SUBJECT)])"), "FETCH sections")
            parts = [x[1] for x in data if isinstance(x, tuple)]
            assert parts[0] == b"hello 1", parts
            assert b"application/pdf" in parts[1], parts
            assert parts[2] == b"Subject: item 1\r\n\r\n", parts
            data = ok(m.fetch("2", "(BINARY.PEEK[2] BINARY.SIZE[2])"), "FETCH BINARY")
            assert data[0][1] == b"%PDF-" and b"BINARY.SIZE[2] 5" in data[1], data
            data = ok(m.fetch("2", "(FLAGS)"), "FETCH flags")
            assert b"\\Seen" in data[0], ("BODY[] without PEEK sets \\Seen", data)
            ok(m.store("3", "+FLAGS", "(\\Flagged $Label1)"), "STORE")
            assert ok(m.search(None, "FLAGGED"), "SEARCH")[0] == b"3"
            assert ok(m.search(None, "KEYWORD", "$Label1"), "SEARCH keyword")[0] == b"3"
            assert ok(m.search("UTF-8", "SUBJECT", "item"), "SEARCH charset")[0] == b"1 2 3"
            assert ok(m.search(None, "NOT", "SEEN"), "SEARCH not")[0] == b"3"
            assert ok(m.search(None, "SINCE", "1-Jan-2020", "LARGER", "10"), "SEARCH since")[0] == b"1 2 3"
            assert ok(m.uid("SEARCH", None, "UID", "2:*"), "UID SEARCH")[0] == b"2 3"
            ok(m.copy("1", "Work"), "COPY")
            ok(m.uid("MOVE", "2", "Work/Reports"), "UID MOVE")
            ok(m.store("1", "+FLAGS", "\\Deleted"), "STORE deleted")
            ok(m.expunge(), "EXPUNGE")
            data = ok(m.select("INBOX", readonly=True), "EXAMINE")
            assert data[0] == b"1", data
            ok(m.unselect(), "UNSELECT")
            ok(m.rename("Work", "Done"), "RENAME")
            assert any('"Done/Reports"' in l.decode() for l in ok(m.list('""', "Done*"), "LIST pattern"))
            ok(m.select("Done/Reports"), "SELECT renamed child")
            data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "FETCH moved")
            assert b"item 1" in data[0][1], data
            ok(m.close(), "CLOSE")
            print("quota", ok(m.getquotaroot("INBOX"), "GETQUOTAROOT"))
            ok(m.delete("Done/Reports"), "DELETE")
            typ, data = m.select("Nope")
            assert typ == "NO", (typ, data)
            assert m.logout()[0] == "BYE"
            print("all commands passed")
            """);
        var r = Run.Program(Peers.Require("python3"), [script]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr + "\n" + string.Join('\n', authd.Log().Split('\n').TakeLast(20)));
        Assert.That(r.Stdout, Does.Contain("all commands passed"));
    }
}
