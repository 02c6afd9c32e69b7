// Checks credentials against the directory for the SASL mechanisms. An
// unknown user costs the same hash computation as a known one and gets the
// same answer, so neither the reply nor its timing says who exists.
using Mail.Shared.Smtp;
using Mail.Shared.Logging;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;
using NLog;

namespace Mail.AuthD.Sasl;

internal sealed class Credentials(IMailDirectory directory, LoginCache cache)
{
    private static readonly Logger Log = MailLog.For("auth");
    private readonly string _dummyHash = PasswordScheme.Hash(Guid.NewGuid().ToString(), "SHA512-CRYPT");

    public async ValueTask<SaslStep> CheckPasswordAsync(string user, string password, CancellationToken ct)
    {
        if (!MailAddress.TryParse(user, out var address))
        {
            await CheckAsync(password, _dummyHash).ConfigureAwait(false);
            return SaslStep.Failure("unknown user");
        }
        var (entry, fault) = await FindAsync(user, ct).ConfigureAwait(false);
        if (fault != null) return fault.Value;
        if (entry == null)
        {
            await CheckAsync(password, _dummyHash).ConfigureAwait(false);
            return SaslStep.Failure("unknown user");
        }
        switch (await CheckAsync(password, entry.PasswordHash).ConfigureAwait(false))
        {
            case PasswordCheck.UnknownScheme:
                // Nobody can log in with this hash: the administrator has to hear of it.
                Log.Warn($"user=<{MailLog.Safe(entry.Address)}>: unknown password scheme {{{MailLog.Safe(PasswordScheme.Split(entry.PasswordHash).Scheme, 40)}}} in the directory");
                return SaslStep.Failure("unknown password scheme");
            case PasswordCheck.Mismatch:
                return SaslStep.Failure("password mismatch");
        }
        return Admitted(entry) ?? SaslStep.Success(entry.Address);
    }

    /// <summary>
    /// Checks a password where it costs least: a one-digest scheme on the calling thread (AuthD's
    /// socket I/O thread, see Program.cs), a key-stretching one on the thread pool, so that a bcrypt or
    /// Argon2 check never holds up the other connections' reads.
    /// </summary>
    private static ValueTask<PasswordCheck> CheckAsync(string password, string stored) =>
        PasswordScheme.IsCheap(stored) ? ValueTask.FromResult(PasswordScheme.Check(password, stored))
            : new ValueTask<PasswordCheck>(Task.Run(() => PasswordScheme.Check(password, stored)));

    /// <summary>The refusal of a user whose password was right but who may not log in now, or null.</summary>
    public static SaslStep? Admitted(DirectoryUser entry)
    {
        if (!entry.Active) return SaslStep.Failure("account disabled");
        if (entry.PasswordExpired) return SaslStep.Failure("password expired");
        return null;
    }

    /// <summary>The directory entry for a challenge-response mechanism; null entry for unknown users.</summary>
    public async ValueTask<(DirectoryUser? User, SaslStep? Fault)> FindAsync(string user, CancellationToken ct)
    {
        if (!MailAddress.TryParse(user, out var address)) return (null, null);
        var key = address.ToString();
        try
        {
            var entry = await directory.FindUserAsync(key, ct).ConfigureAwait(false);
            cache.Remember(key, entry);
            return (entry, null);
        }
        catch (DirectoryUnavailableException e)
        {
            var cached = cache.Recall(key);
            if (cached == null) return (null, SaslStep.TempFail(e.Message));
            Log.Warn($"directory unavailable ({MailLog.Safe(e.Message)}); using the cached entry of {key}");
            return (cached, null);
        }
    }
}
