// mailctl tls self-signed: a self-signed certificate and key for the daemons'
// TLS when there is none yet (the package's first install; `mailctl setup`
// without a certbot certificate), written only where both files are missing.
// The key is readable by the group that the daemons share (mail), not by others.
using System.CommandLine;
using Mail.Shared.Net;

namespace Mail.MailCtl;

internal static class TlsCommands
{
    public static Command Build()
    {
        var cert = new Option<string>("--cert") { Description = "Certificate file (PEM)", DefaultValueFactory = _ => "/etc/mail/tls/cert.pem" };
        var key = new Option<string>("--key") { Description = "Private key file (PEM)", DefaultValueFactory = _ => "/etc/mail/tls/key.pem" };
        var host = new Option<string>("--hostname") { Description = "Name the certificate is for", DefaultValueFactory = _ => System.Net.Dns.GetHostName() };
        var group = new Option<string?>("--group") { Description = "Group that may read the key (the daemons' group, mail)" };
        var selfSigned = new Command("self-signed", "Make a self-signed certificate unless the certificate and key exist") { cert, key, host, group };
        selfSigned.SetAction(p =>
        {
            var (certPath, keyPath) = (p.GetValue(cert)!, p.GetValue(key)!);
            if (File.Exists(certPath) && File.Exists(keyPath))
            {
                Console.WriteLine($"{certPath} exists; left as it is");
                return 0;
            }
            Certificates.EnsureSelfSigned(certPath, keyPath, p.GetValue(host)!);
            if (p.GetValue(group) is { } g)
            {
                if (!KeyForGroup(keyPath, g))
                {
                    Console.Error.WriteLine($"mailctl: no group '{g}'");
                    return CtlContext.ExitUsage;
                }
            }
            Console.WriteLine($"self-signed certificate for {p.GetValue(host)} in {certPath}; mail clients will warn until a real one replaces it");
            return 0;
        });
        return new Command("tls", "TLS certificates of the daemons") { selfSigned };
    }

    /// <summary>The key made readable by <paramref name="group"/> (the daemons' group), mode 0640; false when there is no such group.</summary>
    public static bool KeyForGroup(string keyPath, string group)
    {
        if (Mail.Shared.IO.Ownership.GroupId(group) is not { } gid) return false;
        Mail.Shared.IO.Ownership.Chown(keyPath, 0, gid);
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        return true;
    }
}
