using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Lmtp;

/// <summary>lmtpd remembers deliverable users for user_cache_ttl, and nothing else.</summary>
public sealed class UserCacheTests
{
    private static string Send(int port, string rcpt)
    {
        var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{port}", "--from", "a@remote.test",
            "--to", rcpt, "--header", "Subject: cached", "--body", "x", "--timeout", "30", "--quit-after", "RCPT"]);
        // The reply to RCPT: the server's line after swaks's "-> RCPT TO:".
        var lines = r.Stdout.Split('\n');
        int rcptAt = Array.FindIndex(lines, l => l.Contains("-> RCPT TO:", StringComparison.Ordinal));
        return lines.Skip(rcptAt + 1).First(l => l.StartsWith("<- ", StringComparison.Ordinal) || l.StartsWith("<** ", StringComparison.Ordinal));
    }

    [Test]
    public async Task A_deliverable_user_is_remembered_for_the_period_and_an_unknown_one_is_asked_every_time()
    {
        var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("x", "SSHA"));
        await using var lmtp = await LmtpServer.StartAsync(authd, "user_cache_ttl = 1h");
        Assert.That(Send(lmtp.Port, "bob@example.org"), Does.Contain("250 2.1.5"));
        Assert.That(Send(lmtp.Port, "nobody@example.org"), Does.Contain("550 5.1.1"));
        await authd.DisposeAsync(); // AuthD gone: only what was found deliverable is known
        Assert.That(Send(lmtp.Port, "bob@example.org"), Does.Contain("250 2.1.5"), "remembered");
        Assert.That(Send(lmtp.Port, "nobody@example.org"), Does.Contain("451 4.3.0"), "a refusal is never remembered");
    }
}
