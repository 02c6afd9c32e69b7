// EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, RFC 4315 2.1).
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private void ExpungeDeleted(SequenceSet? uidSet) =>
        ExpungeWhere(m => m.Deleted && (uidSet == null || (uidSet.IsSaved ? _selected!.Saved.Contains(m.Uid) : uidSet.Contains(m.Uid, _selected!.Max(uid: true)))));

    /// <summary>Removes the files of matching messages and tells the client, highest sequence number first.</summary>
    private void ExpungeWhere(Func<SelectedMessage, bool> which, bool countQuota = true)
    {
        var s = _selected!;
        long bytes = 0, count = 0;
        var vanishedUids = new List<uint>();
        var lines = new List<string>();
        var gone = new List<(int Seq, uint Uid)>();
        for (int i = s.Messages.Count - 1; i >= 0; i--)
        {
            var m = s.Messages[i];
            if (!which(m)) continue;
            try
            {
                // One another session removed first is not counted again against the quota.
                if (s.Folder.Delete(m.File) is { } removed)
                {
                    bytes += MaildirQuota.SizeFromName(removed) ?? 0;
                    count++;
                }
            }
            catch (IOException e) { Log.Error($"{conn.SessionId}: user=<{MailLog.Safe(_user!.User)}> cannot expunge {m.File.FileName}: {MailLog.Safe(e.Message)}"); }
            s.Messages.RemoveAt(i);
            gone.Add((i + 1, m.Uid));
            if (s.Vanished) vanishedUids.Add(m.Uid);
            else lines.Add($"* {i + 1} EXPUNGE");
        }
        // Searches kept up to date hear of their members' removal first, by the numbers they had.
        foreach (var line in SearchRemovals(gone)) conn.BufferLine(line);
        foreach (var line in lines) conn.BufferLine(line);
        if (vanishedUids.Count > 0) conn.BufferLine("* VANISHED " + SequenceSet.Compact(vanishedUids.Order()));
        if (countQuota && count > 0) MaildirQuota.Add(_user!.Maildir, -bytes, -count);
        s.ModSeqs.Observe(s.Folder.Sync(takeNew: false)); // drops the UIDs from dovecot-uidlist, records the expunges
    }

    private async Task<ImapResponse> ExpungeAsync(Args args, bool uid)
    {
        SequenceSet? set = null;
        if (uid) { args.Space(); set = args.SequenceSet(); } // RFC 4315 2.1: UID EXPUNGE sequence-set
        args.End();
        if (_selected!.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        await SendUpdatesAsync(allowExpunge: true);
        ExpungeDeleted(set);
        return ImapResponse.Ok("Expunge completed.");
    }
}
