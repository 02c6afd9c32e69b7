// mailctl setup DOMAIN [--hostname NAME]: the first run on a new server, in one
// command. It adds the domain and a postmaster mailbox (its password printed
// once), makes the domain's DKIM keys, puts a TLS certificate in place (certbot's
// for the host name when there is one, with a deploy hook that hands each renewal
// to the daemons; else a self-signed one, with a warning), names the host in
// mtad.conf and imappopd.conf, starts the services under systemd, and prints the
// DNS records to publish and what to tell mail clients. Each step leaves what is
// already there alone, so running it again is safe.
using System.CommandLine;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Mail.MailAuth;
using Mail.Shared.Config;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;
using MimeKit.Cryptography;

namespace Mail.MailCtl;

internal static class SetupCommand
{
    private static readonly string[] Services = ["authd", "lmtpd", "imappopd", "mtad"];

    public static Command Build()
    {
        var domain = new Argument<string>("domain") { Description = "The mail domain (the part after @)" };
        var hostname = new Option<string?>("--hostname") { Description = "This server's name (MX target, TLS certificate); default mail.DOMAIN" };
        var address = new Option<string[]>("--address") { Description = "The server's public address, for the A/AAAA and PTR records (repeatable)", AllowMultipleArgumentsPerToken = true };
        var mtaConfig = new Option<string>("--mta-config") { Description = "mtad's configuration file", DefaultValueFactory = _ => "/etc/mail/mtad.conf" };
        var imapConfig = new Option<string>("--imap-config") { Description = "imappopd's configuration file", DefaultValueFactory = _ => "/etc/mail/imappopd.conf" };
        var letsencrypt = new Option<string>("--letsencrypt") { Description = "certbot's folder", DefaultValueFactory = _ => "/etc/letsencrypt" };
        var noStart = new Option<bool>("--no-start") { Description = "Leave the services as they are" };
        var cmd = new Command("setup", "Set up a mail domain on this server: domain, postmaster, DKIM, TLS; prints the DNS records to publish")
            { domain, hostname, address, mtaConfig, imapConfig, letsencrypt, noStart };
        cmd.SetAction((p, ct) => CtlContext.RunAsync(async () =>
        {
            var name = p.GetValue(domain)!.Trim().TrimEnd('.').ToLowerInvariant();
            if (!Mail.Shared.Smtp.MailAddress.IsValidDomain(name) || !name.Contains('.'))
            {
                Console.Error.WriteLine($"mailctl: '{name}' is not a mail domain");
                return CtlContext.ExitUsage;
            }
            var host = (p.GetValue(hostname) ?? "mail." + name).Trim().TrimEnd('.').ToLowerInvariant();
            if (!Mail.Shared.Smtp.MailAddress.IsValidDomain(host) || !host.Contains('.'))
            {
                Console.Error.WriteLine($"mailctl: '{host}' is not a host name");
                return CtlContext.ExitUsage;
            }
            var addresses = new List<IPAddress>();
            foreach (var a in p.GetValue(address) ?? [])
            {
                if (!IPAddress.TryParse(a, out var ip)) { Console.Error.WriteLine($"mailctl: '{a}' is not an address"); return CtlContext.ExitUsage; }
                addresses.Add(ip);
            }
            var (mtaPath, imapPath) = (p.GetValue(mtaConfig)!, p.GetValue(imapConfig)!);

            // The host name first: the rest reads mtad.conf.
            SetHostname(mtaPath, host);
            SetHostname(imapPath, host);
            var mta = CtlContext.LoadMtaConfig(mtaPath);

            // The domain and its postmaster.
            var directory = CtlContext.OpenDirectory(CtlContext.LoadConfig(p));
            if ((await directory.ListDomainsAsync(ct)).Any(d => d.Name == name)) Step($"domain {name} exists");
            else { await directory.AddDomainAsync(name, ct); Step($"domain {name} added"); }
            var postmaster = "postmaster@" + name;
            string? password = null;
            if ((await directory.ListUsersAsync(name, ct)).Any(u => u.Address == postmaster)) Step($"mailbox {postmaster} exists");
            else
            {
                password = NewPassword();
                await directory.AddUserAsync(new DirectoryUser(postmaster, PasswordScheme.Hash(password)), ct);
                Step($"mailbox {postmaster} added");
            }

            // DKIM: both kinds of key, side by side, unless the domain has one.
            var keyDir = mta.GetPath("dkim_key_dir");
            var keyring = keyDir.Length > 0 ? new DkimKeyring(keyDir) : null;
            if (keyring == null) Step("DKIM signing is off (mtad.conf sets no dkim_key_dir)");
            else if (keyring.KeysOf(name).Count > 0) Step($"DKIM keys for {name} exist");
            else
            {
                var stamp = DateTime.UtcNow.ToString("yyyyMM", System.Globalization.CultureInfo.InvariantCulture);
                DkimSigningKey.Generate(keyDir, name, stamp + "r", DkimSignatureAlgorithm.RsaSha256);
                DkimSigningKey.Generate(keyDir, name, stamp + "e", DkimSignatureAlgorithm.Ed25519Sha256);
                Step($"DKIM keys for {name} made in {keyDir}/{name}");
                keyring = new DkimKeyring(keyDir);
            }

            // TLS: certbot's certificate for the host, else a self-signed one.
            var (certPath, keyPath) = (mta.GetPath("tls_cert"), mta.GetPath("tls_key"));
            var live = Path.Combine(p.GetValue(letsencrypt)!, "live", host);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(certPath))!);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(keyPath))!);
            if (File.Exists(Path.Combine(live, "fullchain.pem")) && File.Exists(Path.Combine(live, "privkey.pem")))
            {
                var hook = WriteDeployHook(p.GetValue(letsencrypt)!, host, certPath, keyPath);
                if (Exec(hook, [], new Dictionary<string, string> { ["RENEWED_LINEAGE"] = live, ["MAIL_SUITE_NO_RELOAD"] = "1" }) != 0)
                    throw new IOException($"{hook} could not copy the certificate");
                Step($"TLS: certbot's certificate for {host}, copied to {certPath}; renewals follow by {hook}");
            }
            else if (IsSelfSigned(certPath) is not false)
            {
                if (File.Exists(certPath)) File.Delete(certPath);
                if (File.Exists(keyPath)) File.Delete(keyPath);
                Certificates.EnsureSelfSigned(certPath, keyPath, host);
                TlsCommands.KeyForGroup(keyPath, "mail");
                Step($"WARNING: TLS certificate is self-signed ({certPath}); mail clients will warn. Get one with " +
                     $"`certbot certonly --standalone -d {host}` (port 80 free) and run `mailctl setup {name}` again.");
            }
            else Step($"TLS: {certPath} is kept");

            // The services, under systemd.
            if (!p.GetValue(noStart) && Directory.Exists("/run/systemd/system"))
            {
                var r = Exec("systemctl", ["enable", "--now", .. Services.Select(s => s + ".service")]);
                Exec("systemctl", ["reload", "mtad.service", "imappopd.service"]);
                Step(r == 0 ? "services enabled and started: " + string.Join(", ", Services) : "systemctl enable --now failed: see `systemctl status mtad`");
            }
            else Step("start the services: systemctl enable --now " + string.Join(' ', Services));

            Console.WriteLine();
            if (password != null)
            {
                Console.WriteLine($"The password of {postmaster}, shown this once: {password}");
                Console.WriteLine();
            }
            foreach (var line in DnsCommands.Records(name, host, keyring?.KeysOf(name) ?? [], addresses)) Console.WriteLine(line);
            Console.WriteLine();
            Console.WriteLine("Mail clients:");
            Console.WriteLine($"  IMAP  {host} port 993, TLS (or 143 with STARTTLS); user name: the whole address");
            Console.WriteLine($"  SMTP  {host} port 465, TLS (or 587 with STARTTLS); user name: the whole address");
            Console.WriteLine($"  More mailboxes: mailctl user add NAME@{name}");
            Console.WriteLine($"  Check what is published: mailctl dns check {name}");
            return 0;
        }));
        return cmd;
    }

    private static void Step(string text) => Console.WriteLine("setup: " + text);

    /// <summary>Runs a program to its end, its output passed through; its exit status.</summary>
    private static int Exec(string file, IEnumerable<string> args, Dictionary<string, string>? env = null)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var process = System.Diagnostics.Process.Start(psi)!;
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>A password of 20 letters and digits (about 119 bits).</summary>
    private static string NewPassword() =>
        RandomNumberGenerator.GetString("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", 20);

    /// <summary>`hostname = NAME` in a configuration file: the line replaced, a commented one taken up, or one added.</summary>
    private static void SetHostname(string path, string host)
    {
        if (!File.Exists(path)) throw new ConfigException($"mailctl: {path} does not exist");
        var lines = File.ReadAllLines(path).ToList();
        int at = lines.FindIndex(l => Regex.IsMatch(l, @"^\s*hostname\s*="));
        if (at < 0) at = lines.FindIndex(l => Regex.IsMatch(l, @"^\s*#\s*hostname\s*="));
        if (at >= 0) lines[at] = "hostname = " + host;
        else lines.Add("hostname = " + host);
        Mail.Shared.IO.AtomicFile.WriteText(path, string.Join('\n', lines) + "\n", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }

    /// <summary>True for a certificate issued by itself, false for another, null when there is none.</summary>
    private static bool? IsSelfSigned(string certPath)
    {
        if (!File.Exists(certPath)) return null;
        try
        {
            using var cert = X509Certificate2.CreateFromPem(File.ReadAllText(certPath));
            return cert.SubjectName.RawData.AsSpan().SequenceEqual(cert.IssuerName.RawData);
        }
        catch (CryptographicException) { return null; }
    }

    /// <summary>
    /// certbot's deploy hook: each renewal of the host's certificate is copied where the daemons
    /// read it (root's /etc/letsencrypt is closed to them) and they reload. The path of the hook.
    /// </summary>
    private static string WriteDeployHook(string letsencrypt, string host, string certPath, string keyPath)
    {
        var dir = Path.Combine(letsencrypt, "renewal-hooks", "deploy");
        Directory.CreateDirectory(dir);
        var hook = Path.Combine(dir, "mail-suite");
        File.WriteAllText(hook, $"""
            #!/bin/sh
            # Written by `mailctl setup`: hands certbot's renewal of {host} to the mail suite.
            set -e
            case "$RENEWED_LINEAGE" in */live/{host}) ;; *) exit 0 ;; esac
            install -m 0644 "$RENEWED_LINEAGE/fullchain.pem" '{certPath}.new'
            install -m 0640 -g mail "$RENEWED_LINEAGE/privkey.pem" '{keyPath}.new' 2>/dev/null || install -m 0600 "$RENEWED_LINEAGE/privkey.pem" '{keyPath}.new'
            mv '{certPath}.new' '{certPath}'
            mv '{keyPath}.new' '{keyPath}'
            [ -n "$MAIL_SUITE_NO_RELOAD" ] || [ ! -d /run/systemd/system ] || systemctl reload mtad.service imappopd.service
            """.Replace("\r", "") + "\n");
        File.SetUnixFileMode(hook, (UnixFileMode)Convert.ToInt32("755", 8));
        return hook;
    }
}
