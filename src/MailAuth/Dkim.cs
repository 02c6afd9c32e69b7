// DKIM verification (RFC 6376) of every signature a message carries: MimeKit's
// body hash, the header hash and signature check of DkimSignature (the
// platform's RSA), keys looked up through our DNS resolver:
// rsa-sha256 and ed25519-sha256 (RFC 8463); rsa-sha1 is checked and reported
// but never trusted (RFC 8301); x= expiry; the key record's t=y (testing) and
// h= (hash algorithms) restrictions; l= as OpenDKIM treats it: a signature
// that covers only part of the body verifies, but content after the signed
// length means the message was added to, and the signature is not trusted.
using System.Globalization;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Mail.MailAuth;

/// <param name="Result">pass, fail, neutral, policy, temperror or permerror (RFC 8601 2.7.1).</param>
/// <param name="Trusted">A pass that DMARC may use.</param>
public sealed record DkimOutcome(string Result, string? Reason, string Domain, string Selector, string Algorithm, string SignaturePrefix, string? Identity, bool Trusted);

public sealed class DkimChecker(DnsResolver dns)
{
    public const int MaxSignatures = 10;

    /// <summary>The key records a check looked up, for ARC and DKIM alike; one per message (not shared between threads).</summary>
    internal sealed class KeyLocator(DnsResolver dns, CancellationToken ct) : DkimPublicKeyLocatorBase
    {
        // Keys parsed from their records, by the record's text: making one for BouncyCastle (ARC's
        // verifier; it checks an RSA modulus for small factors) costs some 14 ms, for the platform's
        // RSA 0.1 ms, verifying with either a fraction of that.
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, AsymmetricKeyParameter> Parsed = new(StringComparer.Ordinal);
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, DkimKey> Keys = new(StringComparer.Ordinal);
        private const int MaxParsed = 1000;

        public readonly Dictionary<string, Dictionary<string, string>> Records = new(StringComparer.OrdinalIgnoreCase);

        public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

        public override async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
        {
            var (record, _) = await RecordAsync(domain, selector).ConfigureAwait(false);
            if (Parsed.TryGetValue(record, out var known)) return known;
            AsymmetricKeyParameter key;
            try { key = GetPublicKey(record); }
            catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or InvalidOperationException)
            {
                throw new KeyException(false, "key record unusable: " + e.Message);
            }
            if (Parsed.Count >= MaxParsed) Parsed.Clear();
            Parsed[record] = key;
            return key;
        }

        /// <summary>The key for our own signature check, made once per record text.</summary>
        public async Task<DkimKey> KeyAsync(string domain, string selector)
        {
            var (record, tags) = await RecordAsync(domain, selector).ConfigureAwait(false);
            if (Keys.TryGetValue(record, out var known)) return known;
            var key = DkimKey.From(tags, out var error) ?? throw new KeyException(false, error!);
            if (Keys.Count >= MaxParsed) Keys.Clear();
            Keys[record] = key;
            return key;
        }

        private async Task<(string Record, Dictionary<string, string> Tags)> RecordAsync(string domain, string selector)
        {
            var name = $"{selector}._domainkey.{domain}";
            var txt = await dns.TxtAsync(name, ct).ConfigureAwait(false);
            if (txt.Status == DnsStatus.TempError) throw new KeyException(true, $"key look-up for {name}: {txt.Error}");
            if (txt.Records.Count == 0) throw new KeyException(false, $"no key for signature ({name})");
            var record = txt.Records[0];
            var tags = Tags.Parse(record);
            Records[name] = tags;
            if (tags.TryGetValue("v", out var v) && v != "DKIM1") throw new KeyException(false, "key record version is not DKIM1");
            if (tags.TryGetValue("p", out var p) && p.Length == 0) throw new KeyException(false, "key revoked");
            return (record, tags);
        }
    }

    internal sealed class KeyException(bool temporary, string message) : Exception(message)
    {
        public bool Temporary { get; } = temporary;
    }

    public async Task<List<DkimOutcome>> VerifyAsync(MimeMessage message, CancellationToken ct)
    {
        var results = new List<DkimOutcome>();
        var locator = new KeyLocator(dns, ct);
        long? bodyLengths = null;
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.DkimSignature).Take(MaxSignatures))
        {
            var tags = Tags.Parse(header.Value);
            string Tag(string k) => tags.TryGetValue(k, out var x) ? x : "";
            var (d, s, a, b) = (Tag("d"), Tag("s"), Tag("a").ToLowerInvariant(), Tag("b"));
            var prefix = new string(b.Where(ch => !char.IsWhiteSpace(ch)).Take(8).ToArray());
            var identity = tags.TryGetValue("i", out var i) ? i : null;
            DkimOutcome Outcome(string result, string? reason, bool trusted = false) => new(result, reason, d, s, a, prefix, identity, trusted);
            if (d.Length == 0 || s.Length == 0 || a.Length == 0 || b.Length == 0 || Tag("bh").Length == 0 || Tag("h").Length == 0)
            {
                results.Add(Outcome("permerror", "signature lacks a required tag"));
                continue;
            }
            if (a is not ("rsa-sha256" or "rsa-sha1" or "ed25519-sha256"))
            {
                results.Add(Outcome("neutral", $"unknown algorithm {a}"));
                continue;
            }
            if (tags.TryGetValue("x", out var x) && long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var expiry)
                && expiry < DateTimeOffset.UtcNow.ToUnixTimeSeconds())
            {
                results.Add(Outcome("permerror", "signature expired"));
                continue;
            }
            if (!Tag("v").Equals("1", StringComparison.Ordinal)) { results.Add(Outcome("permerror", "signature version is not 1")); continue; }
            if (!Tag("h").Split(':').Any(h => h.Trim().Equals("from", StringComparison.OrdinalIgnoreCase)))
            {
                results.Add(Outcome("permerror", "From is not signed")); // RFC 6376 5.4
                continue;
            }
            if (identity is not null && !WithinDomain(identity, d)) { results.Add(Outcome("permerror", "i= is not within d=")); continue; }
            string? failure;
            bool malformed;
            try
            {
                var publicKey = await locator.KeyAsync(d, s).ConfigureAwait(false);
                failure = DkimSignature.Verify(message, header, tags, publicKey, out malformed);
            }
            catch (KeyException e) { results.Add(Outcome(e.Temporary ? "temperror" : "permerror", e.Message)); continue; }
            catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or CryptoException or System.Security.Cryptography.CryptographicException)
            {
                results.Add(Outcome("fail", e.Message));
                continue;
            }
            if (failure is not null) { results.Add(Outcome(malformed ? "permerror" : "fail", failure)); continue; }
            locator.Records.TryGetValue($"{s}._domainkey.{d}", out var key);
            key ??= [];
            var hash = a[(a.IndexOf('-') + 1)..];
            if (key.TryGetValue("h", out var hashes) && !hashes.Split(':').Select(h => h.Trim()).Contains(hash, StringComparer.OrdinalIgnoreCase))
            {
                results.Add(Outcome("permerror", $"key does not allow {hash}"));
                continue;
            }
            if (a == "rsa-sha1") { results.Add(Outcome("policy", "rsa-sha1 verified but not trusted")); continue; }
            if (key.TryGetValue("t", out var flags) && flags.Split(':').Any(f => f.Trim() == "y"))
            {
                results.Add(Outcome("policy", "key in testing mode"));
                continue;
            }
            if (tags.TryGetValue("l", out var l) && long.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out var signedLength))
            {
                bodyLengths ??= CanonicalBodyLength(message, relaxed: Tag("c").EndsWith("/relaxed", StringComparison.OrdinalIgnoreCase));
                if (bodyLengths > signedLength)
                {
                    results.Add(Outcome("policy", $"body has {bodyLengths - signedLength} unsigned bytes after l={signedLength}"));
                    bodyLengths = null;
                    continue;
                }
                bodyLengths = null;
            }
            results.Add(Outcome("pass", null, trusted: true));
        }
        return results;
    }

    /// <summary>Whether the domain of an i= identity is d= or below it (RFC 6376 3.5).</summary>
    private static bool WithinDomain(string identity, string d)
    {
        var domain = identity[(identity.LastIndexOf('@') + 1)..].TrimEnd('.');
        d = d.TrimEnd('.');
        return domain.Equals(d, StringComparison.OrdinalIgnoreCase) || domain.EndsWith("." + d, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The body's length after DKIM canonicalization (RFC 6376 3.4.3, 3.4.4).</summary>
    internal static long CanonicalBodyLength(MimeMessage message, bool relaxed)
    {
        using var raw = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        message.Body?.WriteTo(options, raw, contentOnly: true);
        ReadOnlySpan<byte> body = raw.GetBuffer().AsSpan(0, (int)raw.Length);
        // The body as the message carries it: what follows the header's blank line.
        long length = 0, pendingEmpty = 0;
        foreach (var range in body.Split((byte)'\n'))
        {
            var line = body[range];
            if (line.Length > 0 && line[^1] == '\r') line = line[..^1];
            long n;
            if (relaxed)
            {
                n = 0;
                bool space = false;
                int end = line.Length;
                while (end > 0 && line[end - 1] is (byte)' ' or (byte)'\t') end--;
                foreach (var ch in line[..end])
                {
                    if (ch is (byte)' ' or (byte)'\t') space = true;
                    else { if (space) n++; space = false; n++; }
                }
            }
            else n = line.Length;
            if (n == 0) { pendingEmpty++; continue; }
            length += pendingEmpty * 2 + n + 2;
            pendingEmpty = 0;
        }
        return length == 0 && !relaxed ? 2 : length;
    }
}

/// <summary>tag=value lists (RFC 6376 3.2), as DKIM signatures, key records and DMARC records write them.</summary>
public static class Tags
{
    public static Dictionary<string, string> Parse(string text)
    {
        var tags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in text.Split(';'))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0) continue;
            var name = part[..eq].Trim();
            var value = new string(part[(eq + 1)..].Where(ch => ch is not ('\r' or '\n')).ToArray()).Trim();
            if (name.Length > 0) tags.TryAdd(name, value);
        }
        return tags;
    }
}
