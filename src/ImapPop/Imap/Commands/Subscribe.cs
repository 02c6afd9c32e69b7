// SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7-8), kept in Dovecot's subscriptions file.
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> SubscribeAsync(Args args, bool subscribe)
    {
        var (name, error) = OnlyMailbox(args);
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        Subscriptions.Update(_user!.Maildir, subs => subscribe ? subs.Add(name) : subs.Remove(name), _user.Uid, _user.Gid);
        return ImapResponse.Ok(subscribe ? "Subscribe completed." : "Unsubscribe completed.");
    }
}
