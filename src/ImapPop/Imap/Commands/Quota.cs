// GETQUOTA and GETQUOTAROOT (RFC 9208), from the user's maildirsize.
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private string? QuotaLine()
    {
        var u = _user!;
        if (u.QuotaBytes == 0 && u.QuotaMessages == 0) return null;
        var usage = MaildirQuota.Read(u.Maildir, (long)u.QuotaBytes, (long)u.QuotaMessages);
        var parts = new List<string>();
        if (u.QuotaBytes > 0) parts.Add($"STORAGE {(usage.Bytes + 1023) / 1024} {u.QuotaBytes / 1024}");
        if (u.QuotaMessages > 0) parts.Add($"MESSAGE {usage.Messages} {u.QuotaMessages}");
        return $"QUOTA \"\" ({string.Join(' ', parts)})";
    }

    private async Task<ImapResponse> GetQuotaRootAsync(Args args)
    {
        var (name, error) = OnlyMailbox(args);
        if (error != null) return ImapResponse.No(error);
        if (!FolderOf(name).Exists) return ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name);
        var quota = QuotaLine();
        await Untagged($"QUOTAROOT {Wire(name)}{(quota != null ? " \"\"" : "")}");
        if (quota != null) await Untagged(quota);
        return ImapResponse.Ok("Getquotaroot completed.");
    }

    private async Task<ImapResponse> GetQuotaAsync(Args args)
    {
        args.Space();
        var root = args.AString();
        args.End();
        var quota = QuotaLine();
        if (root.Length != 0 || quota == null) return ImapResponse.No("[NONEXISTENT] No such quota root");
        await Untagged(quota);
        return ImapResponse.Ok("Getquota completed.");
    }

    /// <summary>True when adding <paramref name="bytes"/> in <paramref name="messages"/> messages stays within the user's quota.</summary>
    private bool WithinQuota(long bytes, long messages)
    {
        var u = _user!;
        if (u.QuotaBytes == 0 && u.QuotaMessages == 0) return true;
        var usage = MaildirQuota.Read(u.Maildir, (long)u.QuotaBytes, (long)u.QuotaMessages);
        return (u.QuotaBytes == 0 || usage.Bytes + bytes <= (long)u.QuotaBytes) && (u.QuotaMessages == 0 || usage.Messages + messages <= (long)u.QuotaMessages);
    }
}
