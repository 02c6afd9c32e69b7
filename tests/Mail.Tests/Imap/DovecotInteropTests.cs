using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Imap;

/// <summary>Our IMAP server and Dovecot's serve one Maildir in turn: clients see the same folders, UIDs and flags.</summary>
[NonParallelizable]
public sealed class DovecotInteropTests
{
    private static async Task<ImapClient> ConnectAsync(int port, string password)
    {
        var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
        await client.AuthenticateAsync("bob@example.org", password);
        return client;
    }

    private sealed record View(uint UidValidity, List<(uint Uid, string Subject, MessageFlags Flags, string Keywords)> Messages);

    private static async Task<View> ReadAsync(ImapClient client, string folder)
    {
        var f = client.GetFolder(folder);
        await f.OpenAsync(FolderAccess.ReadOnly);
        var list = f.Count == 0 ? [] : await f.FetchAsync(0, -1, MessageSummaryItems.UniqueId | MessageSummaryItems.Envelope | MessageSummaryItems.Flags);
        var view = new View(f.UidValidity, list.Select(m => (m.UniqueId.Id, m.Envelope.Subject,
            m.Flags!.Value & ~MessageFlags.Recent, string.Join(",", m.Keywords.Order()))).ToList());
        await f.CloseAsync();
        return view;
    }

    private static async Task<List<string>> FoldersAsync(ImapClient client, bool subscribedOnly = false) =>
        (await client.GetFoldersAsync(client.PersonalNamespaces[0], StatusItems.None, subscribedOnly)).Select(f => f.FullName).Order().ToList();

    [Test]
    public async Task Dovecot_and_ours_show_the_same_uids_flags_and_folders_in_turn()
    {
        await using var authd = await AuthDServer.StartAsync();
        await authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        await using var lmtp = await LmtpServer.StartAsync(authd);
        for (int i = 1; i <= 4; i++)
        {
            var r = Run.Program(Peers.Require("swaks"), ["--protocol", "LMTP", "--server", $"127.0.0.1:{lmtp.Port}", "--from", "a@remote.test",
                "--to", "bob@example.org", "--header", $"Subject: m{i}", "--body", $"body {i}"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout);
        }
        await using var ours = await ImapServer.StartAsync(authd);
        using var dovecot = DovecotServer.Start(authd, imap: true);

        // Our turn: flags, a keyword, a folder with a child, a subscription, a move.
        View oursInbox;
        using (var c = await ConnectAsync(ours.Port, "bob pass"))
        {
            var inbox = c.Inbox;
            await inbox.OpenAsync(FolderAccess.ReadWrite);
            var uids = await inbox.SearchAsync(MailKit.Search.SearchQuery.All);
            await inbox.AddFlagsAsync(uids[0], MessageFlags.Seen | MessageFlags.Flagged, true);
            await inbox.StoreAsync(uids[1], new StoreFlagsRequest(StoreAction.Add, MessageFlags.Answered) { Keywords = { "$Forwarded", "Work" }, Silent = true });
            var projects = await c.GetFolder(c.PersonalNamespaces[0]).CreateAsync("Projects", true);
            var y2024 = await projects.CreateAsync("2024", true);
            await y2024.SubscribeAsync();
            await inbox.MoveToAsync(uids[2], y2024);
            oursInbox = await ReadAsync(c, "INBOX");
            Assert.That(oursInbox.Messages, Has.Count.EqualTo(3));
        }

        // Dovecot's turn: it sees the same, then changes things its own way.
        using (var d = await ConnectAsync(dovecot.ImapPort, "anything"))
        {
            Assert.That(await ReadAsync(d, "INBOX"), Is.EqualTo(oursInbox).Using<View>((a, b) =>
                a.UidValidity == b.UidValidity && a.Messages.SequenceEqual(b.Messages)), "INBOX as Dovecot sees it");
            Assert.That(await FoldersAsync(d), Does.Contain("Projects").And.Contain("Projects/2024").And.Contain("Archive").And.Contain("Sent"));
            Assert.That(await FoldersAsync(d, subscribedOnly: true), Does.Contain("Projects/2024").And.Contain("Sent"), "subscriptions file read by Dovecot");
            var moved = await ReadAsync(d, "Projects/2024");
            Assert.That(moved.Messages.Select(m => m.Subject), Is.EqualTo(new[] { "m3" }));
            var inbox = d.Inbox;
            await inbox.OpenAsync(FolderAccess.ReadWrite);
            var uids = await inbox.SearchAsync(MailKit.Search.SearchQuery.All);
            await inbox.AddFlagsAsync(uids[2], MessageFlags.Deleted | MessageFlags.Seen, true);
            await inbox.StoreAsync(uids[0], new StoreFlagsRequest(StoreAction.Add, MessageFlags.None) { Keywords = { "Later" }, Silent = true });
            await inbox.MoveToAsync(uids[1], d.GetFolder("Archive"));
            await d.GetFolder("Archive").SubscribeAsync();
            await inbox.CloseAsync();
        }
        var dovecotView = new Dictionary<string, View>();
        using (var d = await ConnectAsync(dovecot.ImapPort, "anything"))
            foreach (var f in new[] { "INBOX", "Archive", "Projects/2024" }) dovecotView[f] = await ReadAsync(d, f);

        // Our turn again: what Dovecot did, with Dovecot's UIDs.
        using (var c = await ConnectAsync(ours.Port, "bob pass"))
        {
            foreach (var (f, expected) in dovecotView)
            {
                var seen = await ReadAsync(c, f);
                Assert.That(seen.UidValidity, Is.EqualTo(expected.UidValidity), f);
                Assert.That(seen.Messages, Is.EqualTo(expected.Messages), f);
            }
            Assert.That(await FoldersAsync(c, subscribedOnly: true), Does.Contain("Archive").And.Contain("Projects/2024"));
        }
    }
}
