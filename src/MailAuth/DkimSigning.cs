// DKIM signing (RFC 6376, RFC 8463) of mail our users send: every key in the
// key folder's DOMAIN/ signs (an RSA and an Ed25519 key side by side, or the
// old and the new selector during a rotation), relaxed/relaxed, over the
// fields OpenDKIM signs by default, with From, To and Subject oversigned. The
// signing domain is the From address's domain, or the nearest parent domain
// with keys. MimeKit's DkimSigner does the work; RSA goes through the platform
// (OpenSSL) instead of BouncyCastle, whose RSA-2048 signature costs several
// milliseconds. Keys are files we wrote (mailctl dkim keygen): PEM, PKCS#8.
using System.Collections.Concurrent;
using System.Security.Cryptography;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;

namespace Mail.MailAuth;

/// <summary>One signing key: DOMAIN/SELECTOR.key in the key folder.</summary>
public sealed class DkimSigningKey
{
    public string Domain { get; }
    public string Selector { get; }
    public DkimSignatureAlgorithm Algorithm { get; }
    public string Path { get; }
    private readonly AsymmetricKeyParameter _key;
    private readonly RSA? _rsa;

    private DkimSigningKey(string domain, string selector, string path, AsymmetricKeyParameter key, RSA? rsa)
    {
        (Domain, Selector, Path, _key, _rsa) = (domain, selector, path, key, rsa);
        Algorithm = key is Ed25519PrivateKeyParameters ? DkimSignatureAlgorithm.Ed25519Sha256 : DkimSignatureAlgorithm.RsaSha256;
    }

    /// <summary>Reads a key file; null with <paramref name="error"/> when it is not a usable private key.</summary>
    public static DkimSigningKey? Load(string domain, string selector, string path, out string? error)
    {
        error = null;
        try
        {
            var pem = File.ReadAllText(path);
            using var stream = new MemoryStream(System.Text.Encoding.ASCII.GetBytes(pem));
            var key = new Org.BouncyCastle.OpenSsl.PemReader(new StreamReader(stream)).ReadObject() switch
            {
                AsymmetricCipherKeyPair pair => pair.Private,
                AsymmetricKeyParameter k when k.IsPrivate => k,
                _ => null,
            };
            if (key is not (RsaPrivateCrtKeyParameters or Ed25519PrivateKeyParameters)) { error = "not an RSA or Ed25519 private key"; return null; }
            RSA? rsa = null;
            if (key is RsaPrivateCrtKeyParameters)
            {
                rsa = RSA.Create();
                rsa.ImportFromPem(pem);
                if (rsa.KeySize < DkimKey.MinimumRsaBits) { rsa.Dispose(); error = $"RSA key too short ({rsa.KeySize} bits)"; return null; }
            }
            return new DkimSigningKey(domain, selector, path, key, rsa);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or Org.BouncyCastle.Security.GeneralSecurityException or Org.BouncyCastle.Utilities.IO.Pem.PemGenerationException)
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>
    /// Makes a new key, DOMAIN/SELECTOR.key under <paramref name="directory"/> (folders 0700, the
    /// file 0600, owned as <paramref name="directory"/> is when run as root, so that the daemon
    /// that owns the folder reads it); refuses to replace an existing one.
    /// </summary>
    public static DkimSigningKey Generate(string directory, string domain, string selector, DkimSignatureAlgorithm algorithm)
    {
        string pem;
        if (algorithm == DkimSignatureAlgorithm.Ed25519Sha256)
        {
            // PKCS#8 version 1 with the 32-byte seed alone, as RFC 8410 7 writes it and OpenSSL
            // (so OpenDKIM and rspamd) reads it; OpenSSL 3.0 refuses version 2 with the public key.
            var seed = RandomNumberGenerator.GetBytes(Ed25519PrivateKeyParameters.KeySize);
            byte[] der = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, .. seed];
            pem = PemEncoding.WriteString("PRIVATE KEY", der);
        }
        else
        {
            using var rsa = RSA.Create(2048);
            pem = rsa.ExportPkcs8PrivateKeyPem();
        }
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        System.IO.Directory.CreateDirectory(directory, Private);
        var owner = Mail.Shared.IO.Ownership.Of(directory);
        var folder = System.IO.Path.Combine(directory, domain);
        if (!System.IO.Directory.Exists(folder))
        {
            System.IO.Directory.CreateDirectory(folder, Private);
            if (owner is { } o) Mail.Shared.IO.Ownership.Chown(folder, o.Uid, o.Gid);
        }
        var path = System.IO.Path.Combine(folder, selector + ".key");
        if (File.Exists(path)) throw new IOException($"{path} exists: a selector's key is never replaced (choose another selector)");
        Mail.Shared.IO.AtomicFile.WriteText(path, pem, UnixFileMode.UserRead | UnixFileMode.UserWrite, owner);
        return Load(domain, selector, path, out var error) ?? throw new IOException($"{path}: {error}");
    }

    /// <summary>The DNS record that publishes this key's public half (RFC 6376 3.6.1, RFC 8463 4).</summary>
    public string TxtRecord()
    {
        if (_rsa != null) return "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(_rsa.ExportSubjectPublicKeyInfo());
        var pub = ((Ed25519PrivateKeyParameters)_key).GeneratePublicKey().GetEncoded();
        return "v=DKIM1; k=ed25519; p=" + Convert.ToBase64String(pub);
    }

    public string RecordName => $"{Selector}._domainkey.{Domain}";

    internal DkimSigner Signer() => new FastSigner(this);

    internal ArcSigner Sealer(string authservId) => new FastSealer(this, authservId);

    /// <summary>MimeKit's ARC signer with RSA by the platform; the ARC-Authentication-Results are our own Authentication-Results.</summary>
    private sealed class FastSealer(DkimSigningKey key, string authservId) : ArcSigner(key._key, key.Domain, key.Selector, key.Algorithm)
    {
        protected override ISigner CreateSigningContext() => key._rsa is { } rsa ? new PlatformRsaSigner(rsa) : base.CreateSigningContext();

        protected override AuthenticationResults GenerateArcAuthenticationResults(FormatOptions options, MimeMessage message, CancellationToken cancellationToken)
        {
            // The checks our MX wrote on arrival (the topmost with our authserv-id), as RFC 8617 4.1.1 asks.
            foreach (var header in message.Headers.Where(h => h.Id == HeaderId.AuthenticationResults))
                if (AuthenticationResults.TryParse(header.RawValue, out var results) && string.Equals(results.AuthenticationServiceIdentifier, authservId, StringComparison.OrdinalIgnoreCase))
                    return results;
            return new AuthenticationResults(authservId);
        }

        protected override Task<AuthenticationResults> GenerateArcAuthenticationResultsAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(GenerateArcAuthenticationResults(options, message, cancellationToken));
    }

    /// <summary>MimeKit's signer, with RSA signatures made by the platform.</summary>
    private sealed class FastSigner(DkimSigningKey key) : DkimSigner(key._key, key.Domain, key.Selector, key.Algorithm)
    {
        protected override ISigner CreateSigningContext() => key._rsa is { } rsa ? new PlatformRsaSigner(rsa) : base.CreateSigningContext();
    }

    /// <summary>BouncyCastle's signer interface over System.Security.Cryptography's RSA (PKCS#1 v1.5, SHA-256).</summary>
    private sealed class PlatformRsaSigner(RSA rsa) : ISigner
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public string AlgorithmName => "SHA-256withRSA";
        public void Init(bool forSigning, ICipherParameters parameters) => _hash.GetHashAndReset();
        public void Update(byte input) => _hash.AppendData([input]);
        public void BlockUpdate(byte[] input, int inOff, int inLen) => _hash.AppendData(input, inOff, inLen);
        public void BlockUpdate(ReadOnlySpan<byte> input) => _hash.AppendData(input);
        public int GetMaxSignatureSize() => (rsa.KeySize + 7) / 8;

        public byte[] GenerateSignature()
        {
            var digest = _hash.GetHashAndReset();
            lock (rsa) return rsa.SignHash(digest, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }

        public bool VerifySignature(byte[] signature)
        {
            var digest = _hash.GetHashAndReset();
            lock (rsa) return rsa.VerifyHash(digest, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }

        public void Reset() => _hash.GetHashAndReset();
    }
}

/// <summary>The signing keys of every domain, read from the key folder and read again when a domain's folder changes.</summary>
public sealed class DkimKeyring(string directory)
{
    /// <summary>RFC 6376 5.4.1's list (OpenDKIM's default), with Sender, Message-ID and the MIME fields (5.4's note).</summary>
    public static readonly string[] SignedFields =
    [
        "From", "Reply-To", "Subject", "Date", "To", "Cc", "Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
        "In-Reply-To", "References", "List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner",
        "List-Archive", "Sender", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    ];

    /// <summary>Named once more than they occur: a field of this name added later breaks the signature.</summary>
    public static readonly string[] Oversigned = ["From", "To", "Subject"];

    public const int MaxKeysPerDomain = 4;

    public string Directory { get; } = directory;

    private sealed record Entry(DateTime Modified, List<DkimSigningKey> Keys);
    private readonly ConcurrentDictionary<string, Entry> _domains = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The keys of <paramref name="domain"/> (lower-case ASCII name); none when it has no folder.</summary>
    public IReadOnlyList<DkimSigningKey> KeysOf(string domain)
    {
        if (!IsDomainName(domain)) return [];
        var folder = Path.Combine(Directory, domain);
        DateTime modified;
        try { modified = System.IO.Directory.GetLastWriteTimeUtc(folder); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
        if (_domains.TryGetValue(domain, out var known) && known.Modified == modified) return known.Keys;
        var keys = new List<DkimSigningKey>();
        if (System.IO.Directory.Exists(folder))
            foreach (var file in System.IO.Directory.EnumerateFiles(folder, "*.key").Order(StringComparer.Ordinal).Take(MaxKeysPerDomain))
            {
                var selector = Path.GetFileNameWithoutExtension(file);
                string? error = null;
                if (IsSelector(selector) && DkimSigningKey.Load(domain, selector, file, out error) is { } key) keys.Add(key);
                else Errors.Add($"{file}: {error ?? "bad selector name"}");
            }
        _domains[domain] = new Entry(modified, keys);
        return keys;
    }

    /// <summary>Keys that could not be loaded, for the log (drained by the caller).</summary>
    public ConcurrentBag<string> Errors { get; } = [];

    /// <summary>The keys for mail from <paramref name="fromDomain"/>: its own, or the nearest parent domain's.</summary>
    public IReadOnlyList<DkimSigningKey> KeysFor(string fromDomain)
    {
        var domain = fromDomain.TrimEnd('.').ToLowerInvariant();
        while (domain.Contains('.'))
        {
            var keys = KeysOf(domain);
            if (keys.Count > 0) return keys;
            domain = domain[(domain.IndexOf('.') + 1)..];
        }
        return [];
    }

    /// <summary>
    /// The DKIM-Signature fields (CRLF line ends) to put at the top of <paramref name="message"/>,
    /// one per key of its From domain; empty when it has no single From address or no keys.
    /// </summary>
    public string Sign(MimeMessage message, out string? domain)
    {
        domain = null;
        if (message.From.Mailboxes.Take(2).ToList() is not [{ } author]) return "";
        var at = author.Address.LastIndexOf('@');
        if (at < 0) return "";
        var keys = KeysFor(author.Address[(at + 1)..]);
        if (keys.Count == 0) return "";
        domain = keys[0].Domain;
        var fields = new List<string>();
        foreach (var name in SignedFields)
        {
            var headers = name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? message.Body?.Headers : message.Headers;
            int count = headers?.Count(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)) ?? 0;
            if (Oversigned.Contains(name)) count++;
            for (int i = 0; i < count; i++) fields.Add(name);
        }
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        var added = new System.Text.StringBuilder();
        foreach (var key in keys)
        {
            var signer = key.Signer();
            signer.HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
            signer.BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
            signer.Sign(options, message, fields);
            var header = message.Headers[0]; // the signer puts its field first
            message.Headers.RemoveAt(0); // not signed over by the next key
            added.Append(header.Field).Append(':').Append(System.Text.Encoding.ASCII.GetString(header.RawValue).ReplaceLineEndings("\r\n"));
        }
        return added.ToString();
    }

    /// <summary>
    /// The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results; CRLF line ends) that
    /// seals a message we forward, with <paramref name="domain"/>'s RSA key (RFC 8617 allows
    /// rsa-sha256 alone); empty when the domain has none.
    /// </summary>
    public string Seal(MimeMessage message, string domain, string authservId)
    {
        var key = KeysFor(domain).FirstOrDefault(k => k.Algorithm == DkimSignatureAlgorithm.RsaSha256);
        if (key == null) return "";
        var before = message.Headers.Count;
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        var sealer = key.Sealer(authservId);
        sealer.HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        sealer.BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        var fields = SignedFields.Where(f => !f.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) || message.Body?.Headers.Contains(f) == true)
            .Where(f => message.Headers.Contains(f) || message.Body?.Headers.Contains(f) == true).ToList();
        sealer.Sign(options, message, fields);
        var added = new System.Text.StringBuilder();
        foreach (var header in message.Headers.Take(message.Headers.Count - before))
            added.Append(header.Field).Append(':').Append(System.Text.Encoding.ASCII.GetString(header.RawValue).ReplaceLineEndings("\r\n"));
        return added.ToString();
    }

    public static bool IsSelector(string s) =>
        s.Length is > 0 and <= 63 && s.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_') && s[0] != '-';

    private static bool IsDomainName(string d) =>
        d.Length is > 0 and <= 253 && d.Split('.').All(l => l.Length is > 0 and <= 63 && l.All(ch => char.IsAsciiLetterLower(ch) || char.IsAsciiDigit(ch) || ch == '-'));
}
