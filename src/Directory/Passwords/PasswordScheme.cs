// Password hashes as Dovecot's `doveadm pw` and PostfixAdmin store them:
// "{SCHEME}data", or a bare crypt string ("$1$...", "$6$...", "$2y$...").
// Stored values come from the directory and are parsed defensively: a
// malformed hash verifies nothing. Every comparison runs in constant time.
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Isopoh.Cryptography.Argon2;

namespace Mail.Shared.Passwords;

/// <summary>SCRAM keys (RFC 5802 section 3) as Dovecot's SCRAM-SHA-* schemes store them.</summary>
public sealed record ScramKeys(int Iterations, byte[] Salt, byte[] StoredKey, byte[] ServerKey);

/// <summary>What a password check found: a wrong password is not a hash nobody can read.</summary>
public enum PasswordCheck { Match, Mismatch, UnknownScheme }

public static class PasswordScheme
{
    /// <summary>
    /// The schemes `mailctl pw -s` can make; every one also verifies, and each takes Dovecot's
    /// ".B64" or ".HEX" suffix (PostfixAdmin's sha512.b64 stores {SHA512-CRYPT.B64}).
    /// </summary>
    public static readonly IReadOnlyList<string> Schemes =
    [
        "PLAIN", "CRYPT", "DES-CRYPT", "MD5-CRYPT", "MD5", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT",
        "ARGON2I", "ARGON2ID", "PBKDF2", "SSHA", "SSHA256", "SSHA512", "SHA", "SHA256", "SHA512",
        "SMD5", "PLAIN-MD5", "LDAP-MD5", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
    ];

    /// <summary>The scheme of a stored password without a {SCHEME} prefix when none is configured (Dovecot's default_pass_scheme).</summary>
    public const string DefaultPassScheme = "CRYPT";

    public const string DefaultScheme = "SHA512-CRYPT";
    public static int BcryptCost { get; set; } = 10;
    private const int ScramIterations = 4096;

    /// <summary>Splits "{SCHEME}data" into scheme and data; a bare string is given the scheme its prefix implies.</summary>
    public static (string Scheme, string Data) Split(string stored)
    {
        if (stored.StartsWith('{'))
        {
            int end = stored.IndexOf('}');
            if (end > 1) return (stored[1..end].ToUpperInvariant(), stored[(end + 1)..]);
        }
        if (stored.StartsWith("$1$", StringComparison.Ordinal)) return ("MD5-CRYPT", stored);
        if (stored.StartsWith("$5$", StringComparison.Ordinal)) return ("SHA256-CRYPT", stored);
        if (stored.StartsWith("$6$", StringComparison.Ordinal)) return ("SHA512-CRYPT", stored);
        if (stored.StartsWith("$2", StringComparison.Ordinal)) return ("BLF-CRYPT", stored);
        if (stored.StartsWith("$argon2id$", StringComparison.Ordinal)) return ("ARGON2ID", stored);
        if (stored.StartsWith("$argon2i$", StringComparison.Ordinal)) return ("ARGON2I", stored);
        return ("CRYPT", stored);
    }

    /// <summary>True if <paramref name="password"/> matches the stored hash.</summary>
    public static bool Verify(string password, string stored) => Check(password, stored) == PasswordCheck.Match;

    /// <summary>
    /// A stored password with its scheme written out, as the directory hands it on: a bare one
    /// takes <paramref name="defaultScheme"/> (Dovecot's default_pass_scheme); under CRYPT, the
    /// default, it stays bare, its prefix ("$6$", "$2y$") telling which crypt it is.
    /// </summary>
    public static string Qualified(string stored, string defaultScheme) =>
        stored.StartsWith('{') && stored.IndexOf('}') > 1 || defaultScheme.Equals(DefaultPassScheme, StringComparison.OrdinalIgnoreCase)
            ? stored : "{" + defaultScheme.ToUpperInvariant() + "}" + stored;

    /// <summary>Schemes whose data is text (a crypt string): a .B64 or .HEX suffix encodes that text.</summary>
    private static bool IsTextScheme(string scheme) => scheme is "PLAIN" or "CLEAR" or "CLEARTEXT" or "CRYPT" or "DES-CRYPT"
        or "MD5-CRYPT" or "SHA256-CRYPT" or "SHA512-CRYPT" or "BLF-CRYPT" or "ARGON2I" or "ARGON2ID" or "PBKDF2";

    /// <summary>
    /// Whether checking a password against <paramref name="stored"/> costs one digest (microseconds)
    /// rather than a key-stretching function (crypt, bcrypt, Argon2, PBKDF2, SCRAM: milliseconds and
    /// up). A server answering on its I/O thread checks the cheap ones there and hands the costly
    /// ones, and any scheme it does not know, to the thread pool.
    /// </summary>
    public static bool IsCheap(string stored)
    {
        var (full, data) = Split(stored);
        int dot = full.IndexOf('.');
        var scheme = dot > 0 ? full[..dot] : full;
        return scheme is "PLAIN" or "CLEAR" or "CLEARTEXT" or "SHA" or "SHA1" or "SHA256" or "SHA512" or "PLAIN-MD5"
            or "LDAP-MD5" or "SSHA" or "SSHA256" or "SSHA512" or "SMD5" or "CRAM-MD5" or "HMAC-MD5"
            || full == "MD5" && !data.StartsWith("$1$", StringComparison.Ordinal);
    }

    /// <summary>Whether <paramref name="password"/> matches the stored hash, or the hash's scheme is one nobody here reads.</summary>
    public static PasswordCheck Check(string password, string stored)
    {
        var (scheme, data) = Split(stored);
        string encoding = "";
        int dot = scheme.IndexOf('.');
        if (dot > 0) { encoding = scheme[(dot + 1)..]; scheme = scheme[..dot]; }
        if (encoding == "BASE64") encoding = "B64";
        if (encoding is not ("" or "B64" or "HEX") || !Schemes.Contains(scheme) && scheme is not ("CLEAR" or "CLEARTEXT" or "SHA1" or "HMAC-MD5"))
            return PasswordCheck.UnknownScheme;
        try
        {
            if (encoding != "" && IsTextScheme(scheme))
            {
                // {SHA512-CRYPT.B64}: the crypt string itself, encoded.
                if (data.Length > 2048) return PasswordCheck.Mismatch;
                data = Encoding.UTF8.GetString(encoding == "HEX" ? Convert.FromHexString(data) : Convert.FromBase64String(data));
            }
            return Verified(scheme, password, data, stored, encoding) ? PasswordCheck.Match : PasswordCheck.Mismatch;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException or IndexOutOfRangeException)
        {
            return PasswordCheck.Mismatch;
        }
    }

    private static bool Verified(string scheme, string password, string data, string stored, string encoding) =>
            scheme switch
            {
                "PLAIN" or "CLEAR" or "CLEARTEXT" => FixedEquals(password, data),
                "CRYPT" or "DES-CRYPT" or "MD5-CRYPT" or "SHA256-CRYPT" or "SHA512-CRYPT" or "BLF-CRYPT" =>
                    VerifyCrypt(password, data),
                // Dovecot's MD5: an MD5-crypt string, else a PLAIN-MD5 digest (PostfixAdmin's "md5").
                "MD5" => data.StartsWith("$1$", StringComparison.Ordinal) ? VerifyCrypt(password, data)
                    : VerifyDigest(MD5.HashData(Utf8(password)), data, encoding, "HEX"),
                "ARGON2I" or "ARGON2ID" => data.StartsWith("$argon2", StringComparison.Ordinal) && data.Length < 512 &&
                    Argon2.Verify(data, password),
                "PBKDF2" => VerifyPbkdf2(password, data),
                "SHA" or "SHA1" => VerifyDigest(SHA1.HashData(Utf8(password)), data, encoding, "B64"),
                "SHA256" => VerifyDigest(SHA256.HashData(Utf8(password)), data, encoding, "B64"),
                "SHA512" => VerifyDigest(SHA512.HashData(Utf8(password)), data, encoding, "B64"),
                "PLAIN-MD5" => VerifyDigest(MD5.HashData(Utf8(password)), data, encoding, "HEX"),
                "LDAP-MD5" => VerifyDigest(MD5.HashData(Utf8(password)), data, encoding, "B64"),
                "SSHA" => VerifySalted(password, data, encoding, 20, SHA1.HashData),
                "SSHA256" => VerifySalted(password, data, encoding, 32, SHA256.HashData),
                "SSHA512" => VerifySalted(password, data, encoding, 64, SHA512.HashData),
                "SMD5" => VerifySalted(password, data, encoding, 16, MD5.HashData),
                "CRAM-MD5" or "HMAC-MD5" => TryCramContext(stored, out var ctx) && FixedEquals(CramContext(password), ctx),
                "SCRAM-SHA-1" or "SCRAM-SHA-256" => TryScramKeys(stored, out var keys, out var alg) &&
                    FixedEquals(ScramStoredKey(password, keys!.Salt, keys.Iterations, alg), keys.StoredKey),
                _ => false,
            };

    /// <summary>Makes a hash in the named scheme, as `doveadm pw -s SCHEME` would.</summary>
    public static string Hash(string password, string scheme = DefaultScheme)
    {
        scheme = scheme.ToUpperInvariant();
        int dot = scheme.IndexOf('.');
        if (dot > 0)
        {
            // SCHEME.B64 / SCHEME.HEX: the scheme's data in that encoding (the text of a crypt string, else the raw digest).
            var (name, encoding) = (scheme[..dot], scheme[(dot + 1)..]);
            if (encoding == "BASE64") encoding = "B64";
            if (encoding is not ("B64" or "HEX") || !Schemes.Contains(name)) throw new ArgumentException($"unknown password scheme '{scheme}'");
            var data = Hash(password, name)[(name.Length + 2)..];
            var raw = IsTextScheme(name) ? Utf8(data) : Decode(data, "", name == "PLAIN-MD5" ? "HEX" : "B64", -1)
                ?? throw new ArgumentException($"scheme '{name}' has no encoding");
            return "{" + name + "." + encoding + "}" + (encoding == "HEX" ? Convert.ToHexStringLower(raw) : Convert.ToBase64String(raw));
        }
        var pw = Utf8(password);
        return "{" + scheme + "}" + scheme switch
        {
            "PLAIN" or "CLEAR" or "CLEARTEXT" => password,
            "CRYPT" or "BLF-CRYPT" => BCrypt.Net.BCrypt.HashPassword(password, BCrypt.Net.BCrypt.GenerateSalt(BcryptCost, 'y')),
            "DES-CRYPT" => UnixCrypt.Crypt(password, UnixCrypt.Salt(2)),
            "MD5-CRYPT" or "MD5" => UnixCrypt.Crypt(password, "$1$" + UnixCrypt.Salt(8)),
            "SHA256-CRYPT" => UnixCrypt.Crypt(password, "$5$" + UnixCrypt.Salt(16)),
            "SHA512-CRYPT" => UnixCrypt.Crypt(password, "$6$" + UnixCrypt.Salt(16)),
            "ARGON2I" => Argon2Hash(password, Argon2Type.DataIndependentAddressing, 4, 32768),
            "ARGON2ID" => Argon2Hash(password, Argon2Type.HybridAddressing, 3, 65536),
            "PBKDF2" => Pbkdf2Hash(password, UnixCrypt.Salt(16), Pbkdf2Rounds),
            "SHA" or "SHA1" => Convert.ToBase64String(SHA1.HashData(pw)),
            "SHA256" => Convert.ToBase64String(SHA256.HashData(pw)),
            "SHA512" => Convert.ToBase64String(SHA512.HashData(pw)),
            "PLAIN-MD5" => Convert.ToHexStringLower(MD5.HashData(pw)),
            "LDAP-MD5" => Convert.ToBase64String(MD5.HashData(pw)),
            "SSHA" => Salted(pw, 4, SHA1.HashData),
            "SSHA256" => Salted(pw, 4, SHA256.HashData),
            "SSHA512" => Salted(pw, 4, SHA512.HashData),
            "SMD5" => Salted(pw, 4, MD5.HashData),
            "CRAM-MD5" or "HMAC-MD5" => Convert.ToHexStringLower(CramContext(password)),
            "SCRAM-SHA-1" => ScramHash(password, HashAlgorithmName.SHA1),
            "SCRAM-SHA-256" => ScramHash(password, HashAlgorithmName.SHA256),
            _ => throw new ArgumentException($"unknown password scheme '{scheme}'"),
        } ?? throw new InvalidOperationException("crypt(3) failed");
    }

    public static bool IsKnown(string scheme)
    {
        scheme = scheme.ToUpperInvariant();
        int dot = scheme.IndexOf('.');
        return dot < 0 ? Schemes.Contains(scheme) : Schemes.Contains(scheme[..dot]) && scheme[(dot + 1)..] is "B64" or "BASE64" or "HEX";
    }

    // ---- PBKDF2 as Dovecot stores it: $1$salt$rounds$hex(PBKDF2-HMAC-SHA1, 20 bytes), the salt taken as its text ----

    private const int Pbkdf2Rounds = 5000;
    private const int MaxPbkdf2Rounds = 10_000_000;

    private static string Pbkdf2Hash(string password, string salt, int rounds) =>
        $"$1${salt}${rounds}${Convert.ToHexStringLower(Rfc2898DeriveBytes.Pbkdf2(Utf8(password), Utf8(salt), rounds, HashAlgorithmName.SHA1, 20))}";

    private static bool VerifyPbkdf2(string password, string data)
    {
        var fields = data.Split('$');
        if (fields.Length != 5 || fields[0] != "" || fields[1] != "1" || fields[2].Length > 256) return false;
        if (!int.TryParse(fields[3], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var rounds)
            || rounds < 1 || rounds > MaxPbkdf2Rounds) return false;
        if (fields[4].Length != 40 || !fields[4].All(char.IsAsciiHexDigit)) return false;
        var key = Rfc2898DeriveBytes.Pbkdf2(Utf8(password), Utf8(fields[2]), rounds, HashAlgorithmName.SHA1, 20);
        return FixedEquals(key, Convert.FromHexString(fields[4]));
    }

    /// <summary>The plaintext password, when the directory stores it so.</summary>
    public static bool TryPlaintext(string stored, out string password)
    {
        var (scheme, data) = Split(stored);
        password = data;
        return scheme is "PLAIN" or "CLEAR" or "CLEARTEXT";
    }

    // ---- crypt(3) family ----

    private static bool VerifyCrypt(string password, string hash)
    {
        if (hash.StartsWith("$2", StringComparison.Ordinal))
        {
            // BCrypt.Net-Next knows $2a$, $2b$, $2x$ and $2y$.
            return hash.Length == 60 && BCrypt.Net.BCrypt.Verify(password, hash);
        }
        return UnixCrypt.Verify(password, hash);
    }

    private static string Argon2Hash(string password, Argon2Type type, int t, int m)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var config = new Argon2Config
        {
            Type = type,
            Version = Argon2Version.Nineteen,
            TimeCost = t,
            MemoryCost = m,
            Lanes = 1,
            Threads = 1,
            Password = Utf8(password),
            Salt = salt,
            HashLength = 32,
        };
        using var argon = new Argon2(config);
        using var hash = argon.Hash();
        return config.EncodeString(hash.Buffer);
    }

    // ---- digests ----

    private static bool VerifyDigest(byte[] digest, string data, string encoding, string defaultEncoding)
    {
        var stored = Decode(data, encoding, defaultEncoding, digest.Length);
        return stored != null && FixedEquals(digest, stored);
    }

    private static bool VerifySalted(string password, string data, string encoding, int digestLen, Func<byte[], byte[]> hash)
    {
        var raw = Decode(data, encoding, "B64", -1);
        if (raw == null || raw.Length <= digestLen) return false;
        var salt = raw.AsSpan(digestLen);
        var pw = Utf8(password);
        var input = new byte[pw.Length + salt.Length];
        pw.CopyTo(input, 0);
        salt.CopyTo(input.AsSpan(pw.Length));
        return FixedEquals(hash(input), raw.AsSpan(0, digestLen));
    }

    private static string Salted(byte[] pw, int saltLen, Func<byte[], byte[]> hash)
    {
        var salt = RandomNumberGenerator.GetBytes(saltLen);
        var digest = hash([.. pw, .. salt]);
        return Convert.ToBase64String([.. digest, .. salt]);
    }

    /// <summary>
    /// Decodes hex or base64 as Dovecot does: the scheme's own encoding, a
    /// ".HEX"/".B64" suffix, or the other encoding when the length says so.
    /// </summary>
    private static byte[]? Decode(string data, string encoding, string defaultEncoding, int expectedLength)
    {
        if (data.Length > 1024) return null;
        var first = encoding is "" ? defaultEncoding : encoding is "BASE64" ? "B64" : encoding;
        var order = first == "HEX" ? new[] { "HEX", "B64" } : ["B64", "HEX"];
        foreach (var enc in order)
        {
            byte[]? bytes = null;
            if (enc == "HEX" && data.Length % 2 == 0 && data.All(char.IsAsciiHexDigit)) bytes = Convert.FromHexString(data);
            else if (enc == "B64")
            {
                var buf = new byte[data.Length];
                if (Convert.TryFromBase64String(data, buf, out var n)) bytes = buf[..n];
            }
            if (bytes != null && (expectedLength < 0 || bytes.Length == expectedLength)) return bytes;
            if (encoding != "") break;
        }
        return null;
    }

    // ---- CRAM-MD5: the HMAC-MD5 outer and inner states after the key block ----

    public static byte[] CramContext(string password)
    {
        var key = Utf8(password);
        if (key.Length > 64) key = MD5.HashData(key);
        Span<byte> ipad = stackalloc byte[64];
        Span<byte> opad = stackalloc byte[64];
        for (int i = 0; i < 64; i++)
        {
            byte k = i < key.Length ? key[i] : (byte)0;
            ipad[i] = (byte)(k ^ 0x36);
            opad[i] = (byte)(k ^ 0x5c);
        }
        var inner = Md5Context.Create();
        inner.Update(ipad);
        var outer = Md5Context.Create();
        outer.Update(opad);
        var result = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(0), outer.A);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(4), outer.B);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8), outer.C);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(12), outer.D);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(16), inner.A);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(20), inner.B);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(24), inner.C);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(28), inner.D);
        return result;
    }

    /// <summary>The CRAM-MD5 context a stored value allows: from a CRAM-MD5 hash or a plaintext password.</summary>
    public static bool TryCramContext(string stored, out byte[] context)
    {
        context = [];
        var (scheme, data) = Split(stored);
        if (scheme is "PLAIN" or "CLEAR" or "CLEARTEXT") { context = CramContext(data); return true; }
        if (scheme is not ("CRAM-MD5" or "HMAC-MD5") || data.Length != 64 || !data.All(char.IsAsciiHexDigit)) return false;
        context = Convert.FromHexString(data);
        return true;
    }

    /// <summary>HMAC-MD5(challenge) computed from a stored CRAM-MD5 context (RFC 2195).</summary>
    public static byte[] CramDigest(byte[] context, ReadOnlySpan<byte> challenge)
    {
        uint W(int i) => BinaryPrimitives.ReadUInt32LittleEndian(context.AsSpan(i * 4));
        var inner = Md5Context.FromState(W(4), W(5), W(6), W(7), 64);
        inner.Update(challenge);
        var innerDigest = inner.Final();
        var outer = Md5Context.FromState(W(0), W(1), W(2), W(3), 64);
        outer.Update(innerDigest);
        return outer.Final();
    }

    // ---- SCRAM ----

    private static string ScramHash(string password, HashAlgorithmName alg)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var (stored, server) = ScramKeysFor(password, salt, ScramIterations, alg);
        return $"{ScramIterations},{Convert.ToBase64String(salt)},{Convert.ToBase64String(stored)},{Convert.ToBase64String(server)}";
    }

    public static (byte[] StoredKey, byte[] ServerKey) ScramKeysFor(string password, byte[] salt, int iterations, HashAlgorithmName alg)
    {
        int len = alg == HashAlgorithmName.SHA1 ? 20 : 32;
        var salted = Rfc2898DeriveBytes.Pbkdf2(Utf8(password), salt, iterations, alg, len);
        var clientKey = Hmac(alg, salted, "Client Key"u8);
        var storedKey = alg == HashAlgorithmName.SHA1 ? SHA1.HashData(clientKey) : SHA256.HashData(clientKey);
        var serverKey = Hmac(alg, salted, "Server Key"u8);
        return (storedKey, serverKey);
    }

    private static byte[] ScramStoredKey(string password, byte[] salt, int iterations, HashAlgorithmName alg) =>
        ScramKeysFor(password, salt, iterations, alg).StoredKey;

    public static byte[] Hmac(HashAlgorithmName alg, byte[] key, ReadOnlySpan<byte> data) =>
        alg == HashAlgorithmName.SHA1 ? HMACSHA1.HashData(key, data) : HMACSHA256.HashData(key, data);

    /// <summary>The SCRAM keys a stored value holds, for the algorithm its scheme names.</summary>
    public static bool TryScramKeys(string stored, out ScramKeys? keys, out HashAlgorithmName alg)
    {
        keys = null;
        var (scheme, data) = Split(stored);
        alg = scheme == "SCRAM-SHA-1" ? HashAlgorithmName.SHA1 : HashAlgorithmName.SHA256;
        if (scheme is not ("SCRAM-SHA-1" or "SCRAM-SHA-256")) return false;
        var parts = data.Split(',');
        if (parts.Length != 4 || !int.TryParse(parts[0], out var iter) || iter < 1 || iter > 1_000_000) return false;
        try
        {
            keys = new ScramKeys(iter, Convert.FromBase64String(parts[1]), Convert.FromBase64String(parts[2]), Convert.FromBase64String(parts[3]));
            return true;
        }
        catch (FormatException) { return false; }
    }

    // ---- helpers ----

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static bool FixedEquals(string a, string b) => FixedEquals(Utf8(a), Utf8(b));

    public static bool FixedEquals(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) =>
        CryptographicOperations.FixedTimeEquals(a, b);
}
