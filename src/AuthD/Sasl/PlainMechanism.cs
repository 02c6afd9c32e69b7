// SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. An authorization
// identity other than the user's own is refused: there are no master users.
using Mail.Shared.Smtp;
using Mail.Shared.UserDirectory;

namespace Mail.AuthD.Sasl;

internal sealed class PlainMechanism(Credentials credentials) : SaslMechanism
{
    private bool _challenged;

    public override async ValueTask<SaslStep> StepAsync(byte[]? response, CancellationToken ct)
    {
        if (response == null)
        {
            if (_challenged) return SaslStep.Malformed("no response");
            _challenged = true;
            return SaslStep.Continue([]);
        }
        int first = Array.IndexOf(response, (byte)0);
        int second = first < 0 ? -1 : Array.IndexOf(response, (byte)0, first + 1);
        if (first < 0 || second < 0 || Array.IndexOf(response, (byte)0, second + 1) >= 0)
            return SaslStep.Malformed("PLAIN response needs exactly two NULs");
        if (!TryUtf8(response.AsSpan(0, first), out var authzid) ||
            !TryUtf8(response.AsSpan(first + 1, second - first - 1), out var authcid) ||
            !TryUtf8(response.AsSpan(second + 1), out var password))
            return SaslStep.Malformed("PLAIN response is not UTF-8");
        if (authcid.Length == 0 || authcid.Length > MaxUserLength || password.Length > MaxPasswordLength || authzid.Length > MaxUserLength)
            return SaslStep.Malformed("PLAIN field too long or empty");
        AttemptedUser = authcid;
        var result = await credentials.CheckPasswordAsync(authcid, password, ct).ConfigureAwait(false);
        if (result.Status == Mail.Shared.Auth.SaslStatus.Success && authzid.Length > 0 &&
            !(MailAddress.TryParse(authzid, out var z) && z.ToString() == result.User))
            return SaslStep.Failure("authorization identity not allowed");
        return result;
    }
}
