using System.Text;
using Mail.Shared.Passwords;
using Mail.Tests.Support;

namespace Mail.Tests.Passwords;

/// <summary>
/// Hash compatibility with Dovecot, checked against the real `doveadm pw`:
/// its hashes verify here, and ours verify there.
/// </summary>
public sealed class PasswordSchemeTests
{
    private const string Password = "correct horse ñ 42";

    private static readonly string[] DovecotSchemes =
    [
        "PLAIN", "CRYPT", "DES-CRYPT", "MD5-CRYPT", "MD5", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID",
        "PBKDF2", "SSHA", "SSHA256", "SSHA512", "SHA", "SHA256", "SHA512", "SMD5", "PLAIN-MD5", "LDAP-MD5", "CRAM-MD5",
        "SCRAM-SHA-1", "SCRAM-SHA-256", "SHA512-CRYPT.B64", "SSHA256.HEX", "PLAIN-MD5.B64",
    ];

    private static string Doveadm(params string[] args)
    {
        var doveadm = Peers.Require("doveadm");
        var r = Run.Program(doveadm, args);
        Assert.That(r.ExitCode, Is.EqualTo(0), $"doveadm {string.Join(' ', args)}: {r.Stderr}");
        return r.Stdout.Trim();
    }

    /// <summary>
    /// AuthD checks one-digest hashes on its socket thread and hands key-stretching ones to the pool:
    /// Dovecot's own hashes are told apart (its MD5 is MD5-crypt, a thousand rounds).
    /// </summary>
    [Test]
    public void Key_stretching_hashes_are_told_from_single_digests()
    {
        var digests = new HashSet<string> { "PLAIN", "SSHA", "SSHA256", "SSHA512", "SHA", "SHA256", "SHA512", "SMD5", "PLAIN-MD5",
            "LDAP-MD5", "CRAM-MD5", "SSHA256.HEX", "PLAIN-MD5.B64" };
        foreach (var scheme in DovecotSchemes)
        {
            var hash = Doveadm("pw", "-s", scheme, "-p", scheme == "DES-CRYPT" ? "s3cr3t!x" : Password);
            Assert.That(PasswordScheme.IsCheap(hash), Is.EqualTo(digests.Contains(scheme)), hash);
        }
        Assert.That(PasswordScheme.IsCheap("{MD5}" + Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData("x"u8))), Is.True,
            "PostfixAdmin's md5 (a hex digest)");
        Assert.That(PasswordScheme.IsCheap("{NOSUCH}abc"), Is.False, "an unknown scheme goes to the pool");
    }

    [TestCaseSource(nameof(DovecotSchemes))]
    public void Hash_made_by_doveadm_verifies(string scheme)
    {
        // DES crypt keeps only the first 8 characters: use a password that fits.
        var password = scheme == "DES-CRYPT" ? "s3cr3t!x" : Password;
        var hash = Doveadm("pw", "-s", scheme, "-p", password);
        Assert.That(hash, Does.StartWith("{" + scheme + "}"));
        Assert.That(PasswordScheme.Verify(password, hash), Is.True, hash);
        Assert.That(PasswordScheme.Verify("x" + password, hash), Is.False, hash);
        Assert.That(PasswordScheme.Verify("", hash), Is.False, hash);
    }

    [TestCaseSource(nameof(DovecotSchemes))]
    public void Hash_we_make_is_accepted_by_doveadm(string scheme)
    {
        var password = scheme == "DES-CRYPT" ? "s3cr3t!x" : Password;
        var hash = PasswordScheme.Hash(password, scheme);
        Assert.That(hash, Does.StartWith("{" + scheme + "}"));
        var doveadm = Peers.Require("doveadm");
        var ok = Run.Program(doveadm, ["pw", "-t", hash, "-p", password]);
        Assert.That(ok.ExitCode, Is.EqualTo(0), $"{hash}: {ok.Stderr}");
        Assert.That(ok.Stdout, Does.Contain("(verified)"));
        var bad = Run.Program(doveadm, ["pw", "-t", hash, "-p", "wrong password"]);
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0), hash);
        Assert.That(PasswordScheme.Verify(password, hash), Is.True);
    }

    [TestCase("MD5-CRYPT", "$1$")]
    [TestCase("SHA256-CRYPT", "$5$")]
    [TestCase("SHA512-CRYPT", "$6$")]
    [TestCase("BLF-CRYPT", "$2y$")]
    public void Bare_crypt_strings_as_postfixadmin_stores_them_verify(string scheme, string prefix)
    {
        var hash = Doveadm("pw", "-s", scheme, "-p", Password);
        var bare = hash[(hash.IndexOf('}') + 1)..];
        Assert.That(bare, Does.StartWith(prefix));
        Assert.That(PasswordScheme.Verify(Password, bare), Is.True);
        Assert.That(PasswordScheme.Verify("nope", bare), Is.False);
    }

    [Test]
    public void Bare_password_takes_the_default_pass_scheme()
    {
        var md5 = Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(Encoding.UTF8.GetBytes(Password)));
        Assert.That(PasswordScheme.Verify(Password, PasswordScheme.Qualified(md5, "MD5")), Is.True);
        Assert.That(PasswordScheme.Verify(Password, PasswordScheme.Qualified(md5, "CRYPT")), Is.False);
        Assert.That(PasswordScheme.Verify(Password, PasswordScheme.Qualified(Password, "PLAIN")), Is.True);
        Assert.That(PasswordScheme.Qualified("{SHA512-CRYPT}$6$x", "PLAIN"), Is.EqualTo("{SHA512-CRYPT}$6$x"), "a prefix wins");
        Assert.That(PasswordScheme.Check(Password, "{WHIRLPOOL}abc"), Is.EqualTo(PasswordCheck.UnknownScheme));
        Assert.That(PasswordScheme.Check(Password, "{SHA512.XYZ}abc"), Is.EqualTo(PasswordCheck.UnknownScheme));
        Assert.That(PasswordScheme.Check("x", PasswordScheme.Hash(Password, "PBKDF2")), Is.EqualTo(PasswordCheck.Mismatch));
    }

    [TestCase("{PBKDF2}$1$salt$99999999999$af24ca7e494346d0c570aed31c9975a5db4e7a6c")]
    [TestCase("{PBKDF2}$1$salt$0$af24ca7e494346d0c570aed31c9975a5db4e7a6c")]
    [TestCase("{PBKDF2}$2$salt$5000$af24ca7e494346d0c570aed31c9975a5db4e7a6c")]
    [TestCase("{PBKDF2}$1$salt$5000$zz")]
    [TestCase("{SHA512-CRYPT.B64}!!!")]
    public void Malformed_new_scheme_hashes_verify_nothing(string stored)
    {
        Assert.That(PasswordScheme.Check("secret", stored), Is.EqualTo(PasswordCheck.Mismatch));
    }

    [Test]
    public void Digest_schemes_accept_hex_and_base64_as_dovecot_does()
    {
        var md5 = System.Security.Cryptography.MD5.HashData(Encoding.UTF8.GetBytes(Password));
        Assert.That(PasswordScheme.Verify(Password, "{PLAIN-MD5}" + Convert.ToHexStringLower(md5)), Is.True);
        Assert.That(PasswordScheme.Verify(Password, "{PLAIN-MD5}" + Convert.ToBase64String(md5)), Is.True);
        var sha = System.Security.Cryptography.SHA512.HashData(Encoding.UTF8.GetBytes(Password));
        Assert.That(PasswordScheme.Verify(Password, "{SHA512.HEX}" + Convert.ToHexStringLower(sha)), Is.True);
        Assert.That(PasswordScheme.Verify(Password, "{SHA512.HEX}" + Convert.ToBase64String(sha)), Is.False);
    }

    [TestCase("{SHA512-CRYPT}")]
    [TestCase("{SHA512-CRYPT}$6$")]
    [TestCase("{SSHA}!!!notbase64")]
    [TestCase("{SSHA}AAAA")]
    [TestCase("{ARGON2ID}$argon2id$v=19$m=bogus")]
    [TestCase("{CRAM-MD5}zz")]
    [TestCase("{SCRAM-SHA-256}4096,??,??,??")]
    [TestCase("{NO-SUCH-SCHEME}x")]
    [TestCase("")]
    [TestCase("*")]
    [TestCase("!locked")]
    public void Malformed_stored_hash_verifies_nothing(string stored)
    {
        Assert.That(PasswordScheme.Verify("", stored), Is.False);
        Assert.That(PasswordScheme.Verify("x", stored), Is.False);
    }

    [Test]
    public void Cram_md5_digest_matches_rfc_2195_example()
    {
        // RFC 2195 section 2: tim / tanstaaftanstaaf.
        var context = PasswordScheme.CramContext("tanstaaftanstaaf");
        var digest = PasswordScheme.CramDigest(context, "<1896.697170952@postoffice.reston.mci.net>"u8);
        Assert.That(Convert.ToHexStringLower(digest), Is.EqualTo("b913a602c7eda7a495b4e6e7334d3890"));
    }

    [Test]
    public void Mailctl_pw_makes_and_tests_hashes()
    {
        var made = Run.Program(Repo.Program("mailctl"), ["pw", "-s", "SHA256-CRYPT"], stdin: Password + "\n");
        Assert.That(made.ExitCode, Is.EqualTo(0), made.Stderr);
        var hash = made.Stdout.Trim();
        Assert.That(hash, Does.StartWith("{SHA256-CRYPT}$5$"));
        var ok = Run.Program(Repo.Program("mailctl"), ["pw", "-t", hash], stdin: Password + "\n");
        Assert.That(ok.ExitCode, Is.EqualTo(0));
        Assert.That(ok.Stdout, Does.Contain("(verified)"));
        var bad = Run.Program(Repo.Program("mailctl"), ["pw", "-t", hash], stdin: "wrong\n");
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
    }
}
