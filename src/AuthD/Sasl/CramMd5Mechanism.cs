// SASL CRAM-MD5 (RFC 2195): the server's challenge, then "user hexdigest".
// Works for users whose stored hash is CRAM-MD5 or plaintext.
using System.Security.Cryptography;
using System.Text;
using Mail.Shared.Passwords;

namespace Mail.AuthD.Sasl;

internal sealed class CramMd5Mechanism(Credentials credentials, string hostname) : SaslMechanism
{
    private byte[]? _challenge;

    public override async ValueTask<SaslStep> StepAsync(byte[]? response, CancellationToken ct)
    {
        if (_challenge == null)
        {
            if (response is { Length: > 0 }) return SaslStep.Malformed("CRAM-MD5 takes no initial response");
            var nonce = RandomNumberGenerator.GetHexString(16, lowercase: true);
            _challenge = Encoding.ASCII.GetBytes($"<{nonce}.{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}@{hostname}>");
            return SaslStep.Continue(_challenge);
        }
        if (response == null || !TryUtf8(response, out var text)) return SaslStep.Malformed("bad CRAM-MD5 response");
        int sp = text.LastIndexOf(' ');
        if (sp <= 0 || sp > MaxUserLength || text.Length - sp - 1 != 32) return SaslStep.Malformed("bad CRAM-MD5 response");
        var user = text[..sp];
        var hex = text[(sp + 1)..].ToLowerInvariant();
        AttemptedUser = user;
        var (entry, fault) = await credentials.FindAsync(user, ct).ConfigureAwait(false);
        if (fault != null) return fault.Value;
        if (entry == null || !PasswordScheme.TryCramContext(entry.PasswordHash, out var context))
            return SaslStep.Failure(entry == null ? "unknown user" : "stored hash does not allow CRAM-MD5");
        var expected = Convert.ToHexStringLower(PasswordScheme.CramDigest(context, _challenge));
        if (!PasswordScheme.FixedEquals(expected, hex)) return SaslStep.Failure("password mismatch");
        return Credentials.Admitted(entry) ?? SaslStep.Success(entry.Address);
    }
}
