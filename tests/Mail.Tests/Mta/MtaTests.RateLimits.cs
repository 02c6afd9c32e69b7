using Mail.Tests.Support;

namespace Mail.Tests.Mta;

/// <summary>Rate limits per client address and per logged-in user, as Postfix's anvil, driven by smtplib.</summary>
public sealed partial class MtaTests
{
    /// <summary>smtplib on the MX from <paramref name="source"/>: each line of <paramref name="body"/> runs with the session as s.</summary>
    private RunResult MxPython(string source, string body) => Python($$"""
        import smtplib
        s = smtplib.SMTP("127.0.0.1", {{_mx}}, source_address=("{{source}}", 0), timeout=30)
        s.ehlo("client.test")
        def mail(rcpts):
            code, text = s.mail("ann@example.org")
            if code != 250: return "%d %s" % (code, text.decode())
            for r in rcpts:
                code, text = s.rcpt(r)
                if code != 250:
                    s.rset(); return "%d %s" % (code, text.decode())
            s.data(b"Subject: rate\r\n\r\nHi.\r\n")
            return "sent"
        {{body}}
        s.quit()
        """);

    [Test]
    public async Task A_client_over_its_message_or_recipient_rate_gets_450_and_a_log_line()
    {
        await RestartMtaAsync("smtpd_client_message_rate_limit = 2\nsmtpd_client_recipient_rate_limit = 4");
        var messages = MxPython("127.0.0.1", """print(mail(["bob@example.org"])); print(mail(["bob@example.org"])); print(mail(["bob@example.org"]))""");
        Assert.That(messages.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "sent", "sent", "450 4.7.1 Error: too much mail from 127.0.0.1" }), messages.Stderr);
        // Counted per address: another client is not held back.
        var other = MxPython("127.0.0.2", """print(mail(["bob@example.org", "ann@example.org", "sales@example.org", "bob.alias@example.org", "bob@example.org"]))""");
        Assert.That(other.Stdout.Trim(), Is.EqualTo("450 4.7.1 Error: too many recipients from 127.0.0.2"), other.Stderr);
        foreach (var line in new[] { "rate limit: 3 messages in 60s from 127.0.0.1", "rate limit: 5 recipients in 60s from 127.0.0.2" })
            Assert.That(await Wait.UntilAsync(() => File.ReadAllText(_authd.LogFile).Contains(line), TimeSpan.FromSeconds(10)), Is.True, File.ReadAllText(_authd.LogFile));
    }

    [Test]
    public async Task A_client_over_its_connection_rate_is_turned_away_at_the_greeting()
    {
        await RestartMtaAsync("smtpd_client_connection_rate_limit = 2");
        var r = Python($$"""
            import socket
            for i in range(3):
                c = socket.create_connection(("127.0.0.1", {{_mx}}), source_address=("127.0.0.3", 0), timeout=30)
                print(c.makefile("rb").readline().decode().strip())
                c.close()
            """);
        var greetings = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(greetings, Has.Length.EqualTo(3), r.Stderr);
        Assert.That(greetings[..2], Has.All.EqualTo("220 mx.test ESMTP"));
        Assert.That(greetings[2], Is.EqualTo("421 4.7.0 mx.test Error: too many connections from 127.0.0.3"));
    }

    [Test]
    public async Task A_logged_in_user_over_the_message_rate_gets_450_and_other_users_do_not()
    {
        await RestartMtaAsync("smtpd_user_message_rate_limit = 1");
        string Submit(string user, string password) => StartTlsPython(_submission, $$"""
            s.ehlo("client.test")
            s.login("{{user}}", "{{password}}")
            for i in range(2):
                try:
                    s.sendmail("{{user}}", ["bob@example.org"], "Subject: user rate\r\n\r\nHi.\r\n"); print("sent")
                except smtplib.SMTPSenderRefused as e: print(e.smtp_code, e.smtp_error.decode())
            s.quit()
            """).Stdout;
        Assert.That(Submit("bob@example.org", "bob pass").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "sent", "450 4.7.1 Error: too much mail from user bob@example.org" }));
        Assert.That(Submit("ann@example.org", "ann pass").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "sent", "450 4.7.1 Error: too much mail from user ann@example.org" }));
    }
}
