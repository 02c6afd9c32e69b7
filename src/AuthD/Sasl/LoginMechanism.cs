// SASL LOGIN (draft-murchison-sasl-login): "Username:" then "Password:".
// An initial response, if any, is the user name.
namespace Mail.AuthD.Sasl;

internal sealed class LoginMechanism(Credentials credentials) : SaslMechanism
{
    private static readonly byte[] UserPrompt = "Username:"u8.ToArray();
    private static readonly byte[] PasswordPrompt = "Password:"u8.ToArray();
    private int _state; // 0 start, 1 want user, 2 want password
    private string _user = "";

    public override async ValueTask<SaslStep> StepAsync(byte[]? response, CancellationToken ct)
    {
        switch (_state)
        {
            case 0 when response == null || response.Length == 0:
                _state = 1;
                return SaslStep.Continue(UserPrompt);
            case 0:
            case 1:
                if (response == null || !TryUtf8(response, out _user) || _user.Length == 0 || _user.Length > MaxUserLength)
                    return SaslStep.Malformed("bad LOGIN user name");
                AttemptedUser = _user;
                _state = 2;
                return SaslStep.Continue(PasswordPrompt);
            default:
                if (response == null || !TryUtf8(response, out var password) || password.Length > MaxPasswordLength)
                    return SaslStep.Malformed("bad LOGIN password");
                return await credentials.CheckPasswordAsync(_user, password, ct).ConfigureAwait(false);
        }
    }
}
