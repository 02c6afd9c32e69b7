// The administrator's scripts the suite installs: the spam-to-Junk rule is a
// sieve_before script (as Dovecot administrators write it) rather than a rule
// built into lmtpd, so it can be read, changed or removed like any other.
namespace Mail.Sieve;

public static class SieveDefaults
{
    /// <summary>The file name of the rule in a sieve_before folder.</summary>
    public const string SpamToJunkName = "10-spam-to-junk.sieve";

    /// <summary>Mail the MX's checks marked as spam (X-Spam-Flag: YES) goes to Junk, made when missing; the user's script does not run for it.</summary>
    public const string SpamToJunk = """
        # Mail the MX's checks (or SpamAssassin) marked as spam goes to the Junk folder.
        require ["fileinto", "mailbox"];
        if header :is "X-Spam-Flag" "YES" {
          fileinto :create "Junk";
          stop;
        }

        """;

    /// <summary>Writes the spam-to-Junk rule into <paramref name="folder"/> unless a file of that name is there.</summary>
    public static void InstallSpamToJunk(string folder)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, SpamToJunkName);
        if (!File.Exists(path)) File.WriteAllText(path, SpamToJunk);
    }
}
