// Checks credentials against the directory for the SASL mechanisms. An
// unknown user costs the same hash computation as a known one and gets the
// same answer, so neither the reply nor its timing says who exists.
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;

namespace Mail.AuthD.Sasl;

internal sealed class Credentials(IMailDirectory directory)
{
    private readonly string _dummyHash = PasswordScheme.Hash(Guid.NewGuid().ToString(), "SHA512-CRYPT");

    public async ValueTask<SaslStep> CheckPasswordAsync(string user, string password, CancellationToken ct)
    {
        if (!MailAddress.TryParse(user, out var address))
        {
            PasswordScheme.Verify(password, _dummyHash);
            return SaslStep.Failure("unknown user");
        }
        DirectoryUser? entry;
        try
        {
            entry = await directory.FindUserAsync(address.ToString(), ct).ConfigureAwait(false);
        }
        catch (DirectoryUnavailableException e)
        {
            return SaslStep.TempFail(e.Message);
        }
        if (entry == null)
        {
            PasswordScheme.Verify(password, _dummyHash);
            return SaslStep.Failure("unknown user");
        }
        if (!PasswordScheme.Verify(password, entry.PasswordHash)) return SaslStep.Failure("password mismatch");
        if (!entry.Active) return SaslStep.Failure("account disabled");
        return SaslStep.Success(entry.Address);
    }

    /// <summary>The directory entry for a challenge-response mechanism; null entry for unknown users.</summary>
    public async ValueTask<(DirectoryUser? User, SaslStep? Fault)> FindAsync(string user, CancellationToken ct)
    {
        if (!MailAddress.TryParse(user, out var address)) return (null, null);
        try
        {
            return (await directory.FindUserAsync(address.ToString(), ct).ConfigureAwait(false), null);
        }
        catch (DirectoryUnavailableException e)
        {
            return (null, SaslStep.TempFail(e.Message));
        }
    }
}
