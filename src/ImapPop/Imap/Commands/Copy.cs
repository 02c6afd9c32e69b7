// COPY and MOVE and their UID forms (RFC 9051 6.4.7, MOVE RFC 6851, COPYUID RFC 4315).
using System.Text;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>A COPY or MOVE parsed: the messages and the target mailbox (RFC 9051 6.4.7, RFC 6851 3.1).</summary>
    private sealed record CopyQuery(SequenceSet Set, MailboxArgument Target);

    private CopyQuery ParseCopy(Args args)
    {
        args.Space();
        var set = args.SequenceSet();
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        return new CopyQuery(set, new(name, error));
    }

    private async Task<ImapResponse> CopyAsync(Args args, bool uid, bool move)
    {
        var (set, (name, error)) = ParseCopy(args);
        var s = _selected!;
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var target = FolderOf(name);
        if (!target.Exists) return ImapResponse.No("[TRYCREATE] Mailbox doesn't exist: " + name);
        if (move && s.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        var seqs = s.Resolve(set, uid);
        long copyBytes = seqs.Sum(q => MaildirQuota.SizeFromName(s.Messages[q - 1].File.Path) ?? 0);
        if (!move && !WithinQuota(copyBytes, seqs.Count)) return ImapResponse.No("[OVERQUOTA] Quota exceeded (mailbox for user is full)");
        var copied = new List<(uint SourceUid, string BaseName)>();
        foreach (var seq in seqs)
        {
            var m = s.Messages[seq - 1].File;
            // Keyword letters are per folder: translate them.
            var flags = new StringBuilder();
            foreach (var c in m.Flags)
            {
                if (c is >= 'a' and <= 'z')
                {
                    var k = c - 'a' < s.Keywords.Count ? s.Keywords[c - 'a'] : "";
                    if (k.Length > 0 && target.KeywordLetter(k) is { } l) flags.Append(l);
                }
                else flags.Append(c);
            }
            var baseName = target.Path == s.Folder.Path || target.HasBaseName(m.BaseName) ? MaildirDelivery.UniqueName() + SizeSuffix(m.BaseName) : m.BaseName;
            try { target.CopyIn(m, baseName, flags.ToString()); }
            catch (FileNotFoundException) { continue; } // expunged meanwhile: not copied
            copied.Add((m.Uid, baseName));
        }
        target.CommitCopies();
        if (!move) MaildirQuota.Add(_user!.Maildir, copyBytes, copied.Count);
        var state = target.Sync(takeNew: false);
        var byName = state.Messages.ToDictionary(m => m.BaseName, m => m.Uid);
        var pairs = copied.Where(c => byName.ContainsKey(c.BaseName)).Select(c => (c.SourceUid, Dest: byName[c.BaseName])).ToList();
        var copyUid = pairs.Count == 0 ? "" : $"[COPYUID {state.UidValidity} {string.Join(',', pairs.Select(p => p.SourceUid))} {string.Join(',', pairs.Select(p => p.Dest))}] ";
        // Copies into the selected mailbox are told at once, with their \Recent (no expunge of others meanwhile).
        bool self = target.Path == s.Folder.Path;
        if (!move)
        {
            if (self) await SendUpdatesAsync(allowExpunge: false);
            return ImapResponse.Ok(copyUid + "Copy completed.");
        }
        if (copyUid.Length > 0) conn.BufferLine($"* OK {copyUid}Moved UIDs.");
        var uids = seqs.Select(q => s.Messages[q - 1].Uid).ToHashSet();
        ExpungeWhere(m => uids.Contains(m.Uid), countQuota: false);
        if (self) await SendUpdatesAsync(allowExpunge: false);
        return ImapResponse.Ok("Move completed.");
    }

    private static string SizeSuffix(string baseName)
    {
        int i = baseName.IndexOf(",S=", StringComparison.Ordinal);
        return i < 0 ? "" : baseName[i..];
    }
}
