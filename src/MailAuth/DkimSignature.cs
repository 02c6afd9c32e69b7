// One DKIM signature's cryptographic check (RFC 6376 3.7, RFC 8463): the
// body hash by MimeKit, the header hash and the signature here. MimeKit's
// DkimVerifier verifies RSA with BouncyCastle, whose RSA-2048 verification took
// 0.37 ms against the platform's (OpenSSL) 0.02 ms, the largest cost of
// checking a signed message on the MX; its verify step cannot be replaced, so
// the header hash it would compute is computed here, the same way. Input is a
// stranger's message and a stranger's key record: every fault is an outcome.
using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;

namespace Mail.MailAuth;

/// <summary>A public key from a DKIM key record (RFC 6376 3.6.1), ready to verify with.</summary>
internal abstract class DkimKey
{
    public const int MinimumRsaBits = 1024; // RFC 8301 3.2

    public abstract bool Verify(ReadOnlySpan<byte> hash, HashAlgorithmName algorithm, byte[] signature);

    /// <summary>The key of record tags <paramref name="tags"/>; null with <paramref name="error"/> when unusable.</summary>
    public static DkimKey? From(Dictionary<string, string> tags, out string? error)
    {
        error = null;
        byte[] p;
        try { p = Convert.FromBase64String(tags.GetValueOrDefault("p", "")); }
        catch (FormatException) { error = "key record unusable: p= is not base64"; return null; }
        switch (tags.GetValueOrDefault("k", "rsa").ToLowerInvariant())
        {
            case "rsa":
                var rsa = RSA.Create();
                try
                {
                    try { rsa.ImportSubjectPublicKeyInfo(p, out _); }
                    catch (CryptographicException) { rsa.ImportRSAPublicKey(p, out _); } // PKCS#1, as some publish it
                }
                catch (CryptographicException) { rsa.Dispose(); error = "key record unusable: not an RSA public key"; return null; }
                if (rsa.KeySize < MinimumRsaBits) { rsa.Dispose(); error = $"key too short ({rsa.KeySize} bits)"; return null; }
                return new Rsa(rsa);
            case "ed25519":
                if (p.Length != Ed25519PublicKeyParameters.KeySize) { error = "key record unusable: not an Ed25519 public key"; return null; }
                return new Ed25519(new Ed25519PublicKeyParameters(p));
            default:
                error = "key record unusable: unknown key type";
                return null;
        }
    }

    public sealed class Rsa(RSA key) : DkimKey
    {
        public override bool Verify(ReadOnlySpan<byte> hash, HashAlgorithmName algorithm, byte[] signature)
        {
            // One key serves every session: OpenSSL's key is shared, the .NET object is not documented thread-safe.
            lock (key) return key.VerifyHash(hash, signature, algorithm, RSASignaturePadding.Pkcs1);
        }
    }

    public sealed class Ed25519(Ed25519PublicKeyParameters key) : DkimKey
    {
        public override bool Verify(ReadOnlySpan<byte> hash, HashAlgorithmName algorithm, byte[] signature)
        {
            // RFC 8463 3: PureEdDSA over the SHA-256 hash of the canonicalized headers.
            var signer = new Ed25519Signer();
            signer.Init(false, key);
            signer.BlockUpdate(hash);
            return signer.VerifySignature(signature);
        }
    }
}

/// <summary>The header and body hashes of one signature, and its verification with a key.</summary>
internal static class DkimSignature
{
    private static readonly FormatOptions Dos = Make();

    private static FormatOptions Make()
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        return options;
    }

    /// <summary>MimeKit's body hash check, reached through its verifier base class.</summary>
    private sealed class Body : DkimVerifierBase
    {
        private Body() : base(null!) { }
        public static bool Matches(MimeMessage message, DkimSignatureAlgorithm algorithm, DkimCanonicalizationAlgorithm canonicalization, int length, string bh) =>
            VerifyBodyHash(Dos, message, algorithm, canonicalization, length, bh);
    }

    /// <summary>
    /// Checks the signature in <paramref name="signature"/> (tags already parsed, a= one we know)
    /// with <paramref name="key"/>: null when it verifies, else why not, <paramref name="malformed"/>
    /// when the signature cannot be checked at all (a permanent error, not a failure).
    /// </summary>
    public static string? Verify(MimeMessage message, Header signature, Dictionary<string, string> tags, DkimKey key, out bool malformed)
    {
        malformed = true;
        var a = tags["a"].ToLowerInvariant();
        var (algorithm, hashName) = a switch
        {
            "rsa-sha1" => (DkimSignatureAlgorithm.RsaSha1, HashAlgorithmName.SHA1),
            "ed25519-sha256" => (DkimSignatureAlgorithm.Ed25519Sha256, HashAlgorithmName.SHA256),
            _ => (DkimSignatureAlgorithm.RsaSha256, HashAlgorithmName.SHA256),
        };
        if ((key is DkimKey.Ed25519) != (algorithm == DkimSignatureAlgorithm.Ed25519Sha256)) return "key type does not match a=";
        var c = tags.GetValueOrDefault("c", "simple/simple").ToLowerInvariant().Split('/');
        if (c.Length > 2 || c.Any(x => x is not ("simple" or "relaxed"))) return "unknown canonicalization";
        bool relaxedHeader = c[0] == "relaxed", relaxedBody = c.Length == 2 && c[1] == "relaxed";
        int length = -1;
        if (tags.TryGetValue("l", out var l) && !int.TryParse(l, System.Globalization.NumberStyles.None, null, out length)) return "bad l= tag";
        byte[] b;
        try { b = Convert.FromBase64String(Squeeze(tags["b"])); }
        catch (FormatException) { return "b= is not base64"; }
        malformed = false;
        if (!Body.Matches(message, algorithm, relaxedBody ? DkimCanonicalizationAlgorithm.Relaxed : DkimCanonicalizationAlgorithm.Simple, length, Squeeze(tags["bh"])))
            return "body hash did not verify";
        var hash = HeaderHash(message, signature, tags["h"].Split(':').Select(h => h.Trim()), relaxedHeader, hashName);
        return key.Verify(hash, hashName, b) ? null : "signature did not verify";
    }

    private static string Squeeze(string text) => string.Concat(text.Where(ch => !char.IsWhiteSpace(ch)));

    /// <summary>
    /// The hash of the signed header fields, each the bottom-most one not yet taken (a name with
    /// no field left adds nothing), then the signature's own field with b= emptied and no line
    /// end (RFC 6376 3.7, 5.4.2).
    /// </summary>
    internal static byte[] HeaderHash(MimeMessage message, Header signature, IEnumerable<string> names, bool relaxed, HashAlgorithmName hashName)
    {
        using var hash = IncrementalHash.CreateHash(hashName);
        var taken = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var buffer = new List<byte>(256);
        foreach (var name in names)
        {
            if (name.Length == 0) continue;
            // MimeKit keeps a message's Content-* fields with its body entity.
            var list = name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? message.Body?.Headers : message.Headers;
            if (list is null) continue;
            int wanted = taken.GetValueOrDefault(name), seen = 0, at = list.Count;
            taken[name] = wanted + 1;
            while (--at >= 0)
                if (list[at].Field.Equals(name, StringComparison.OrdinalIgnoreCase) && seen++ == wanted) break;
            if (at < 0) continue;
            buffer.Clear();
            Canonical(buffer, list[at].RawField, list[at].RawValue, relaxed, last: false);
            hash.AppendData(buffer.ToArray());
        }
        buffer.Clear();
        Canonical(buffer, signature.RawField, WithoutSignature(signature.RawValue), relaxed, last: true);
        hash.AppendData(buffer.ToArray());
        return hash.GetHashAndReset();
    }

    /// <summary>One field in simple or relaxed form (RFC 6376 3.4.1, 3.4.2), ending in CRLF unless <paramref name="last"/>.</summary>
    private static void Canonical(List<byte> to, byte[] field, byte[] value, bool relaxed, bool last)
    {
        if (!relaxed)
        {
            to.AddRange(field);
            to.Add((byte)':');
            // As received, with every line ending written CRLF.
            int end = value.Length;
            if (last) while (end > 0 && value[end - 1] is (byte)'\r' or (byte)'\n') end--;
            for (int i = 0; i < end; i++)
            {
                if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) to.Add((byte)'\r');
                to.Add(value[i]);
            }
            if (!last && (end == 0 || value[end - 1] != '\n')) to.AddRange("\r\n"u8);
            return;
        }
        int n = field.Length;
        while (n > 0 && field[n - 1] is (byte)' ' or (byte)'\t') n--;
        foreach (var ch in field.AsSpan(0, n)) to.Add(ch is >= (byte)'A' and <= (byte)'Z' ? (byte)(ch + 32) : ch);
        to.Add((byte)':');
        bool space = false, any = false;
        foreach (var ch in value)
        {
            if (ch is (byte)'\r' or (byte)'\n') continue; // unfold
            if (ch is (byte)' ' or (byte)'\t') { space = any; continue; }
            if (space) to.Add((byte)' ');
            space = false;
            any = true;
            to.Add(ch);
        }
        if (!last) to.AddRange("\r\n"u8);
    }

    /// <summary>A DKIM-Signature value with the b= tag's value, and the whitespace around it, removed.</summary>
    internal static byte[] WithoutSignature(byte[] value)
    {
        var span = value.AsSpan();
        int start = 0;
        while (start <= span.Length)
        {
            int end = span[start..].IndexOf((byte)';');
            end = end < 0 ? span.Length : start + end;
            int i = start;
            while (i < end && span[i] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') i++;
            if (i < end && span[i] == 'b')
            {
                int j = i + 1;
                while (j < end && span[j] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') j++;
                if (j < end && span[j] == '=')
                {
                    // Keep a line end that closes the field when b= is the last tag.
                    int tail = end;
                    if (end == span.Length) while (tail > j + 1 && span[tail - 1] is (byte)'\r' or (byte)'\n') tail--;
                    return [.. span[..(j + 1)], .. span[tail..]];
                }
            }
            start = end + 1;
        }
        return value;
    }
}
