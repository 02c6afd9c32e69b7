// What links Dovecot's two halves of a login: a login process (imap-login,
// pop3-login) authenticates on the client socket, then the mail process it
// hands the connection to asks the master socket "REQUEST client-pid auth-id
// cookie" for the user. Each client connection registers its pid and the
// random cookie its handshake sent; each successful AUTH without "nologin"
// leaves the user here, taken once by the REQUEST that names it with the
// right cookie, or dropped after Ttl or when the client connection ends.
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Mail.AuthD.DovecotAuth;

internal static class LoginRequests
{
    public static readonly TimeSpan Ttl = TimeSpan.FromMinutes(2);
    public const int MaxPerClient = 1000;

    private sealed class Client(string cookie)
    {
        public readonly string Cookie = cookie;
        public readonly ConcurrentDictionary<uint, (string User, long At)> Done = new();
    }

    private static readonly ConcurrentDictionary<uint, Client> Clients = new();

    /// <summary>A client connection's handshake: its pid (CPID) and the cookie it was sent.</summary>
    public static void Register(uint pid, string cookie) => Clients[pid] = new Client(cookie);

    /// <summary>The client connection closed: its logins can no longer be asked for.</summary>
    public static void Unregister(uint pid, string cookie)
    {
        if (Clients.TryGetValue(pid, out var c) && c.Cookie == cookie) Clients.TryRemove(new KeyValuePair<uint, Client>(pid, c));
    }

    /// <summary>A login succeeded on client <paramref name="pid"/>'s request <paramref name="id"/>.</summary>
    public static void Succeeded(uint pid, uint id, string user)
    {
        if (!Clients.TryGetValue(pid, out var c)) return;
        var now = Environment.TickCount64;
        if (c.Done.Count >= MaxPerClient)
            foreach (var (key, value) in c.Done)
                if (now - value.At > Ttl.TotalMilliseconds) c.Done.TryRemove(key, out _);
        if (c.Done.Count < MaxPerClient) c.Done[id] = (user, now);
    }

    /// <summary>The user of a finished login, once, if the pid, request and cookie match and it is not too old.</summary>
    public static string? Take(uint pid, uint id, string cookie)
    {
        if (!Clients.TryGetValue(pid, out var c)) return null;
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(c.Cookie), Encoding.ASCII.GetBytes(cookie.ToLowerInvariant()))) return null;
        if (!c.Done.TryRemove(id, out var done)) return null;
        return Environment.TickCount64 - done.At <= Ttl.TotalMilliseconds ? done.User : null;
    }
}
