// Sessions per user across IMAP and POP3, bounded (Dovecot: mail_max_userip_connections).
namespace Mail.ImapPop;

/// <summary>Sessions per user, bounded (Dovecot: mail_max_userip_connections).</summary>
internal sealed class UserSessions(int max)
{
    private readonly Dictionary<string, int> _count = new(StringComparer.OrdinalIgnoreCase);

    public bool TryEnter(string user)
    {
        lock (_count)
        {
            _count.TryGetValue(user, out var n);
            if (n >= max) return false;
            _count[user] = n + 1;
            return true;
        }
    }

    public void Leave(string user)
    {
        lock (_count)
        {
            if (!_count.TryGetValue(user, out var n)) return;
            if (n <= 1) _count.Remove(user); else _count[user] = n - 1;
        }
    }
}
