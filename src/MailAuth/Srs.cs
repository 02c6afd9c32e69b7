// The Sender Rewriting Scheme, in postsrsd's (libsrs2's) format, so that a
// server moving from Postfix + postsrsd keeps its secret and the addresses it
// already gave out:
//   SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//   SRS1=HHHH=first-srs-host==HHHH=TT=orig-domain=orig-local@srs-domain
// HHHH is the first four characters of the base64 HMAC-SHA1, keyed by the
// secret, of the lower-cased time stamp, domain and local part (SRS1: of the
// first host and the rest); TT is the day (Unix time / 86400) modulo 1024 in
// two base32 characters, valid for 21 days. Forwarding a message rewrites its
// envelope sender so that the next hop's SPF check sees our domain; a bounce
// to the rewritten address is reversed and goes to the original sender. An
// SRS address is a stranger's text: every part is checked before use.
using System.Security.Cryptography;
using System.Text;

namespace Mail.MailAuth;

public sealed class Srs
{
    public const int HashLength = 4, MaxAgeDays = 21;
    private const string Base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    private const int Slots = 1024;
    private readonly byte[][] _secrets;

    /// <param name="secrets">The first signs, every one is accepted (postsrsd's secret file, one per line).</param>
    /// <param name="domain">The domain of the rewritten addresses.</param>
    public Srs(IReadOnlyList<string> secrets, string domain)
    {
        if (secrets.Count == 0 || secrets.Any(s => s.Length == 0)) throw new ArgumentException("SRS needs a secret");
        _secrets = secrets.Select(Encoding.UTF8.GetBytes).ToArray();
        Domain = domain.ToLowerInvariant();
    }

    public string Domain { get; }

    /// <summary>The secrets of a postsrsd secret file: each non-empty line.</summary>
    public static Srs FromFile(string path, string domain) =>
        new(File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList(), domain);

    /// <summary>
    /// The rewritten sender for a message forwarded by us, at <paramref name="now"/>; the sender as it
    /// is when it has no domain (a bounce) or is of the SRS domain already.
    /// </summary>
    public string Forward(string sender, DateTimeOffset now)
    {
        var at = sender.LastIndexOf('@');
        if (at <= 0) return sender;
        var (user, host) = (sender[..at], sender[(at + 1)..]);
        if (host.Equals(Domain, StringComparison.OrdinalIgnoreCase)) return sender;
        if (IsTag(user, "SRS1"))
        {
            // Already SRS1: re-signed for this hop, the first host and the rest kept.
            var parts = user[5..].Split('=', 3);
            if (parts.Length == 3 && parts[1].Length > 0 && parts[2].Length > 0)
                return $"SRS1={Hash(parts[1], parts[2])}={parts[1]}={parts[2]}@{Domain}";
        }
        else if (IsTag(user, "SRS0"))
        {
            // An SRS0 address of another forwarder: SRS1 keeps its host, so a bounce goes back there.
            var rest = user[4..];
            return $"SRS1={Hash(host, rest)}={host}={rest}@{Domain}";
        }
        var stamp = Stamp(now);
        return $"SRS0={Hash(stamp, host, user)}={stamp}={host}={user}@{Domain}";
    }

    /// <summary>
    /// The address an SRS address of ours stands for, or null when it is not one or its hash (or,
    /// for SRS0, its time stamp) does not hold. <paramref name="checkAge"/> false skips the time stamp
    /// (an address checked on arrival and reversed again at delivery).
    /// </summary>
    public string? Reverse(string address, DateTimeOffset now, bool checkAge = true)
    {
        var at = address.LastIndexOf('@');
        if (at <= 0 || address.Length > 512) return null;
        var user = address[..at];
        if (IsTag(user, "SRS1"))
        {
            var parts = user[5..].Split('=', 3);
            if (parts.Length != 3 || parts[1].Length == 0 || parts[2].Length == 0 || !HashHolds(parts[0], parts[1], parts[2])) return null;
            return $"SRS0{parts[2]}@{parts[1]}";
        }
        if (IsTag(user, "SRS0"))
        {
            var parts = user[5..].Split('=', 4);
            if (parts.Length != 4 || parts.Skip(1).Any(p => p.Length == 0)) return null;
            var (hash, stamp, host, local) = (parts[0], parts[1], parts[2], parts[3]);
            if (checkAge && !StampHolds(stamp, now)) return null;
            if (!HashHolds(hash, stamp, host, local)) return null;
            return $"{local}@{host}";
        }
        return null;
    }

    /// <summary>Whether the local part is SRS0 or SRS1 followed by one of libsrs2's separators.</summary>
    public static bool IsSrs(string address) => address.LastIndexOf('@') is > 4 and var at && (IsTag(address[..at], "SRS0") || IsTag(address[..at], "SRS1"));

    private static bool IsTag(string user, string tag) =>
        user.Length > 5 && user.StartsWith(tag, StringComparison.OrdinalIgnoreCase) && user[4] is '=' or '-' or '+';

    private static string Stamp(DateTimeOffset now)
    {
        var days = now.ToUnixTimeSeconds() / 86400;
        return $"{Base32[(int)((days >> 5) & 31)]}{Base32[(int)(days & 31)]}";
    }

    private static bool StampHolds(string stamp, DateTimeOffset now)
    {
        if (stamp.Length != 2) return false;
        int then = 0;
        foreach (var ch in stamp.ToUpperInvariant())
        {
            var i = Base32.IndexOf(ch);
            if (i < 0) return false;
            then = (then << 5) | i;
        }
        long today = now.ToUnixTimeSeconds() / 86400 % Slots;
        while (today < then) today += Slots;
        return today <= then + MaxAgeDays;
    }

    private string Hash(params string[] parts) => Hash(_secrets[0], parts);

    private static string Hash(byte[] secret, string[] parts)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, secret);
        foreach (var p in parts) hmac.AppendData(Encoding.UTF8.GetBytes(LowerAscii(p)));
        return Convert.ToBase64String(hmac.GetHashAndReset())[..HashLength];
    }

    private bool HashHolds(string hash, params string[] parts) =>
        hash.Length >= HashLength && _secrets.Any(s => string.Equals(hash[..HashLength], Hash(s, parts), StringComparison.OrdinalIgnoreCase));

    /// <summary>As libsrs2's tolower: ASCII letters only.</summary>
    private static string LowerAscii(string s) => string.Create(s.Length, s, (span, src) =>
    {
        for (int i = 0; i < src.Length; i++) span[i] = src[i] is >= 'A' and <= 'Z' ? (char)(src[i] + 32) : src[i];
    });
}
