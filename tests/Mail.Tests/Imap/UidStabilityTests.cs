using System.Collections.Concurrent;
using MailKit;
using MailKit.Net.Imap;
using Mail.Shared.Smtp;
using MailKit.Security;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>
/// The one promise IMAP clients build on: a message keeps its UID for its whole life. Several
/// sessions select, fetch, flag and expunge while lmtpd delivers; every UID any session sees
/// for a message must be the same.
/// </summary>
public sealed partial class ImapTests
{
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> One(byte[] bytes)
    {
        await Task.CompletedTask;
        yield return bytes;
    }

    [Test]
    public async Task Every_message_keeps_its_uid_while_sessions_flag_and_expunge_during_deliveries()
    {
        const int messages = 1000, sessions = 4;
        var seen = new ConcurrentDictionary<string, ConcurrentDictionary<uint, string>>(); // Message-ID → UIDs → who saw it
        var delivered = 0;
        var deliveries = Task.Run(async () =>
        {
            using var lmtp = new Mail.Shared.Smtp.SmtpClient(ClientProtocol.Lmtp, "client.test", TlsLevel.None); // one connection, reused
            var server = new ServerAddress("lmtpd", new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, _lmtp.Port));
            for (int i = 0; i < messages; i++)
            {
                var content = System.Text.Encoding.ASCII.GetBytes(
                    $"From: ann@remote.test\r\nTo: bob@example.org\r\nSubject: message {i}\r\nMessage-ID: <m{i}@uid.test>\r\n\r\nbody {i}\r\n");
                var outcome = await lmtp.DeliverAsync(server, new OutgoingMessage("ann@remote.test", ["bob@example.org"], content.Length,
                    new Dictionary<string, string>(), _ => One(content)), CancellationToken.None);
                Assert.That(outcome.Results.Single().Ok, Is.True, outcome.Results.Single().Reply);
                Interlocked.Increment(ref delivered);
            }
        });
        var errors = new ConcurrentQueue<string>();
        async Task Session(int n)
        {
            var random = new Random(n);
            using var client = new ImapClient();
            await client.ConnectAsync("127.0.0.1", _imap.Port, SecureSocketOptions.None);
            await client.AuthenticateAsync("bob@example.org", "bob pass");
            var inbox = client.Inbox;
            int after = 0; // rounds once all are delivered
            for (int round = 0; round < 20_000 && after < 3; round++)
            {
                if (Volatile.Read(ref delivered) == messages) after++;
                try
                {
                    if (!inbox.IsOpen || random.Next(10) == 0) await inbox.OpenAsync(FolderAccess.ReadWrite);
                    if (inbox.Count == 0) { await client.NoOpAsync(); continue; }
                    var summaries = await inbox.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Envelope);
                    foreach (var s in summaries)
                        if (s.Envelope?.MessageId is { } id)
                            seen.GetOrAdd(id, _ => new()).TryAdd(s.UniqueId.Id, $"session {n} round {round}");
                    var some = summaries.Where(_ => random.Next(3) == 0).Select(s => s.UniqueId).ToList();
                    if (some.Count > 0) await inbox.AddFlagsAsync(some, MessageFlags.Seen | MessageFlags.Flagged, silent: random.Next(2) == 0);
                    if (random.Next(6) == 0 && summaries.Count > 0)
                    {
                        var doomed = summaries[random.Next(summaries.Count)].UniqueId;
                        await inbox.AddFlagsAsync(doomed, MessageFlags.Deleted, silent: true);
                        await inbox.ExpungeAsync([doomed]);
                    }
                }
                // RFC 5530 EXPUNGEISSUED: another session expunged some of them meanwhile; that is no error.
                catch (ImapCommandException e) when (e.ResponseText.Contains("EXPUNGEISSUED") || e.Message.Contains("no longer exist")) { }
                catch (ImapCommandException e) { errors.Enqueue($"session {n}: {e.Message}"); }
            }
            await client.DisconnectAsync(true);
        }
        await Task.WhenAll(Enumerable.Range(0, sessions).Select(Session).Append(deliveries));
        Assert.That(errors, Is.Empty);
        Assert.That(seen.Count, Is.GreaterThan(messages / 2), "the sessions saw most messages");
        var moved = seen.Where(kv => kv.Value.Count > 1).Select(kv => $"{kv.Key}: " + string.Join(", ", kv.Value.Select(u => $"{u.Key} ({u.Value})"))).ToList();
        Assert.That(moved, Is.Empty, "a message that changes its UID looks expunged and new again to every client");
    }
}
