using System.Text.RegularExpressions;
using Mail.Shared.Net;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.MailCtl;

/// <summary>
/// `mailctl setup DOMAIN --hostname NAME` on a fresh configuration (files in a folder of the
/// test's): the domain, a postmaster whose printed password logs in, DKIM keys, certbot's
/// certificate copied with a deploy hook (or a self-signed one with a warning), the host named
/// in the daemons' files, and the DNS records printed; a second run changes nothing.
/// </summary>
public sealed class SetupCommandTests
{
    private string _dir = null!;

    [SetUp]
    public void Files()
    {
        _dir = Directory.CreateTempSubdirectory("setup-").FullName;
        File.WriteAllText(Path.Combine(_dir, "authd.conf"), "passwd_file = passwd\naliases_file = virtual\ndomains_file = domains\nmail_root = mail\n");
        foreach (var f in new[] { "passwd", "virtual", "domains" }) File.WriteAllText(Path.Combine(_dir, f), "");
        File.WriteAllText(Path.Combine(_dir, "mtad.conf"), "log_file = syslog\n#hostname = mail.example.org\ntls_cert = tls/cert.pem\ntls_key = tls/key.pem\ndkim_key_dir = dkim\n");
        File.WriteAllText(Path.Combine(_dir, "imappopd.conf"), "log_file = syslog\n");
    }

    [TearDown]
    public void Remove() => Directory.Delete(_dir, recursive: true);

    private RunResult Setup(params string[] more) => Run.Program(Repo.Program("mailctl"),
        ["--config", Path.Combine(_dir, "authd.conf"), "setup", "example.org", "--hostname", "mx.example.org", "--no-start",
         "--mta-config", Path.Combine(_dir, "mtad.conf"), "--imap-config", Path.Combine(_dir, "imappopd.conf"), "--letsencrypt", Path.Combine(_dir, "letsencrypt"), .. more]);

    [Test]
    public void Setup_with_certbot_certificate_prints_records_and_a_password_that_logs_in()
    {
        // certbot has a certificate for the host.
        var live = Path.Combine(_dir, "letsencrypt", "live", "mx.example.org");
        Directory.CreateDirectory(live);
        Certificates.EnsureSelfSigned(Path.Combine(live, "fullchain.pem"), Path.Combine(live, "privkey.pem"), "mx.example.org");

        var r = Setup();
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        var password = Regex.Match(r.Stdout, @"The password of postmaster@example\.org, shown this once: (\S+)").Groups[1].Value;
        Assert.That(password, Has.Length.EqualTo(20));
        var entry = File.ReadAllLines(Path.Combine(_dir, "passwd")).Single(l => l.StartsWith("postmaster@example.org:"));
        Assert.That(PasswordScheme.Verify(password, entry.Split(':')[1]), Is.True);
        Assert.That(File.ReadAllText(Path.Combine(_dir, "domains")), Does.Contain("example.org"));

        Assert.That(r.Stdout, Does.Contain("example.org. IN MX 10 mx.example.org."));
        Assert.That(r.Stdout, Does.Contain("example.org. IN TXT \"v=spf1 mx -all\""));
        Assert.That(Regex.Matches(r.Stdout, @"\._domainkey\.example\.org\. IN TXT ""v=DKIM1; k=(rsa|ed25519); p=").Count, Is.EqualTo(2));
        Assert.That(r.Stdout, Does.Contain("_dmarc.example.org. IN TXT"));
        Assert.That(r.Stdout, Does.Contain("IMAP  mx.example.org port 993"));

        Assert.That(File.ReadAllText(Path.Combine(_dir, "mtad.conf")), Does.Contain("\nhostname = mx.example.org\n").And.Not.Contain("#hostname"));
        Assert.That(File.ReadAllText(Path.Combine(_dir, "imappopd.conf")), Does.Contain("hostname = mx.example.org"));
        Assert.That(File.ReadAllText(Path.Combine(_dir, "tls", "cert.pem")), Is.EqualTo(File.ReadAllText(Path.Combine(live, "fullchain.pem"))));
        Assert.That(File.ReadAllText(Path.Combine(_dir, "tls", "key.pem")), Is.EqualTo(File.ReadAllText(Path.Combine(live, "privkey.pem"))));
        var hook = Path.Combine(_dir, "letsencrypt", "renewal-hooks", "deploy", "mail-suite");
        Assert.That(File.GetUnixFileMode(hook).HasFlag(UnixFileMode.UserExecute), Is.True);
        Assert.That(r.Stdout, Does.Not.Contain("WARNING"));

        // Again: everything is there, nothing new is made.
        var again = Setup();
        Assert.That(again.ExitCode, Is.EqualTo(0), again.Stdout + again.Stderr);
        Assert.That(again.Stdout, Does.Contain("mailbox postmaster@example.org exists").And.Contain("DKIM keys for example.org exist"));
        Assert.That(again.Stdout, Does.Not.Contain("shown this once"));
        Assert.That(Directory.GetFiles(Path.Combine(_dir, "dkim", "example.org")), Has.Length.EqualTo(2));
        Assert.That(File.ReadAllLines(Path.Combine(_dir, "passwd")).Single(l => l.StartsWith("postmaster@")), Is.EqualTo(entry));
    }

    [Test]
    public void Without_certbot_a_self_signed_certificate_comes_with_a_warning()
    {
        var r = Setup();
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        Assert.That(r.Stdout, Does.Contain("WARNING: TLS certificate is self-signed").And.Contain("certbot certonly --standalone -d mx.example.org"));
        using var cert = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(_dir, "tls", "cert.pem")));
        Assert.That(cert.Subject, Is.EqualTo("CN=mx.example.org"));
    }

    [Test]
    public void A_bad_domain_or_host_is_refused()
    {
        var r = Run.Program(Repo.Program("mailctl"), ["--config", Path.Combine(_dir, "authd.conf"), "setup", "not a domain", "--no-start"]);
        Assert.That(r.ExitCode, Is.EqualTo(64));
        Assert.That(r.Stderr, Does.Contain("is not a mail domain"));
        Assert.That(File.ReadAllText(Path.Combine(_dir, "domains")), Is.Empty);
    }
}
