// TLS certificates: loads a PEM certificate and key, and makes a self-signed
// one for the dev stack on first start.
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mail.Shared.Net;

/// <summary>
/// The certificate of tls_cert and tls_key as the daemon serves it now: read at start, read again
/// at SIGHUP (a renewal by certbot's deploy hook), null while either file is missing. A new
/// certificate that does not load refuses the reload and the one in use stays.
/// </summary>
public sealed class ServedCertificate : IDisposable
{
    private volatile X509Certificate2? _current;
    private readonly IDisposable _reload;

    public ServedCertificate(Config.MailConfig config)
    {
        _current = Certificates.LoadConfigured(config);
        _reload = Config.Daemon.OnReload(["tls_cert", "tls_key"], next =>
        {
            var loaded = Certificates.LoadConfigured(next);
            if (loaded == null && _current != null)
                throw new Config.ConfigException($"{next.Program}: {next.GetPath("tls_cert")} or {next.GetPath("tls_key")} not found");
            _current = loaded;
        });
    }

    public X509Certificate2? Current => _current;

    public void Dispose() => _reload.Dispose();
}

public static class Certificates
{
    /// <summary>The certificate of tls_cert and tls_key, or null when either file is missing.</summary>
    public static X509Certificate2? LoadConfigured(Config.MailConfig config)
    {
        var (certPath, keyPath) = (config.GetPath("tls_cert"), config.GetPath("tls_key"));
        return File.Exists(certPath) && File.Exists(keyPath) ? Load(certPath, keyPath) : null;
    }

    public static X509Certificate2 Load(string certPath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        // Re-import so the private key is usable by SslStream on every platform.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Makes a self-signed certificate for <paramref name="hostName"/> unless both files exist.</summary>
    public static void EnsureSelfSigned(string certPath, string keyPath, string hostName)
    {
        if (File.Exists(certPath) && File.Exists(keyPath)) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(certPath))!);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(keyPath))!);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={hostName}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(hostName);
        if (hostName != "localhost") san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
        Mail.Shared.IO.AtomicFile.WriteText(keyPath, key.ExportPkcs8PrivateKeyPem(), Mail.Shared.IO.AtomicFile.Private);
        Mail.Shared.IO.AtomicFile.WriteText(certPath, cert.ExportCertificatePem(), Mail.Shared.IO.AtomicFile.Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }
}
