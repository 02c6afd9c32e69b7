// SASL SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel
// binding. Works for users whose stored hash holds SCRAM keys for the same
// hash function, or is plaintext. An unknown user gets a salt derived from a
// per-process secret, so the exchange looks the same until its last step.
using System.Security.Cryptography;
using System.Text;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;

namespace Mail.AuthD.Sasl;

internal sealed class ScramMechanism(Credentials credentials, HashAlgorithmName alg) : SaslMechanism
{
    private static readonly byte[] Secret = RandomNumberGenerator.GetBytes(32);
    private int _state;
    private string _gs2Header = "", _clientFirstBare = "", _serverFirst = "", _nonce = "";
    private byte[]? _storedKey, _serverKey;
    private string? _user;
    private DirectoryUser? _entry;

    public override async ValueTask<SaslStep> StepAsync(byte[]? response, CancellationToken ct)
    {
        if (_state == 0 && response == null)
        {
            _state = 1;
            return SaslStep.Continue([]);
        }
        if (response == null || response.Length > 4096 || !TryUtf8(response, out var text))
            return SaslStep.Malformed("bad SCRAM message");
        if (_state <= 1)
        {
            _state = 2;
            return await ClientFirstAsync(text, ct).ConfigureAwait(false);
        }
        if (_state == 2)
        {
            _state = 3;
            return ClientFinal(text);
        }
        return SaslStep.Malformed("unexpected SCRAM message");
    }

    private async ValueTask<SaslStep> ClientFirstAsync(string text, CancellationToken ct)
    {
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        int c1 = text.IndexOf(',');
        int c2 = c1 < 0 ? -1 : text.IndexOf(',', c1 + 1);
        if (c1 < 0 || c2 < 0) return SaslStep.Malformed("bad SCRAM gs2 header");
        var flag = text[..c1];
        if (flag.StartsWith("p=", StringComparison.Ordinal)) return SaslStep.Failure("channel binding not supported");
        if (flag is not ("n" or "y")) return SaslStep.Malformed("bad SCRAM channel binding flag");
        var authzid = text[(c1 + 1)..c2];
        _gs2Header = text[..(c2 + 1)];
        _clientFirstBare = text[(c2 + 1)..];
        string? user = null, cnonce = null;
        foreach (var attr in _clientFirstBare.Split(','))
        {
            if (attr.StartsWith("n=", StringComparison.Ordinal)) user = DecodeName(attr[2..]);
            else if (attr.StartsWith("r=", StringComparison.Ordinal)) cnonce = attr[2..];
            else if (attr.StartsWith("m=", StringComparison.Ordinal)) return SaslStep.Malformed("unsupported SCRAM extension");
        }
        if (string.IsNullOrEmpty(user) || user.Length > MaxUserLength || string.IsNullOrEmpty(cnonce) || cnonce.Length > 256 ||
            cnonce.Any(ch => ch < 0x21 || ch > 0x7e || ch == ','))
            return SaslStep.Malformed("bad SCRAM client-first-message");
        if (authzid.Length > 0 && (!authzid.StartsWith("a=", StringComparison.Ordinal) || DecodeName(authzid[2..]) != user))
            return SaslStep.Failure("authorization identity not allowed");
        AttemptedUser = user;

        var (entry, fault) = await credentials.FindAsync(user, ct).ConfigureAwait(false);
        if (fault != null) return fault.Value;
        byte[] salt;
        int iterations;
        if (entry != null && PasswordScheme.TryScramKeys(entry.PasswordHash, out var keys, out var storedAlg) && storedAlg == alg)
        {
            (salt, iterations, _storedKey, _serverKey) = (keys!.Salt, keys.Iterations, keys.StoredKey, keys.ServerKey);
        }
        else if (entry != null && PasswordScheme.TryPlaintext(entry.PasswordHash, out var plain))
        {
            salt = RandomNumberGenerator.GetBytes(16);
            iterations = 4096;
            (_storedKey, _serverKey) = PasswordScheme.ScramKeysFor(plain, salt, iterations, alg);
        }
        else
        {
            salt = HMACSHA256.HashData(Secret, Encoding.UTF8.GetBytes(user))[..16];
            iterations = 4096;
        }
        _user = entry?.Address;
        _entry = entry;
        _nonce = cnonce + Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
        _serverFirst = $"r={_nonce},s={Convert.ToBase64String(salt)},i={iterations}";
        return SaslStep.Continue(Encoding.UTF8.GetBytes(_serverFirst));
    }

    private SaslStep ClientFinal(string text)
    {
        int p = text.LastIndexOf(",p=", StringComparison.Ordinal);
        if (p < 0) return SaslStep.Malformed("SCRAM proof missing");
        var withoutProof = text[..p];
        string? channel = null, nonce = null;
        foreach (var attr in withoutProof.Split(','))
        {
            if (attr.StartsWith("c=", StringComparison.Ordinal)) channel = attr[2..];
            else if (attr.StartsWith("r=", StringComparison.Ordinal)) nonce = attr[2..];
        }
        byte[] proof;
        try { proof = Convert.FromBase64String(text[(p + 3)..]); }
        catch (FormatException) { return SaslStep.Malformed("bad SCRAM proof"); }
        if (channel != Convert.ToBase64String(Encoding.UTF8.GetBytes(_gs2Header))) return SaslStep.Malformed("SCRAM channel binding mismatch");
        if (nonce != _nonce) return SaslStep.Malformed("SCRAM nonce mismatch");
        if (_storedKey == null || _serverKey == null || _user == null)
            return SaslStep.Failure(_user == null ? "unknown user" : "stored hash does not allow SCRAM");
        var authMessage = Encoding.UTF8.GetBytes(_clientFirstBare + "," + _serverFirst + "," + withoutProof);
        var signature = PasswordScheme.Hmac(alg, _storedKey, authMessage);
        if (proof.Length != signature.Length) return SaslStep.Failure("password mismatch");
        var clientKey = new byte[proof.Length];
        for (int i = 0; i < proof.Length; i++) clientKey[i] = (byte)(proof[i] ^ signature[i]);
        var computed = alg == HashAlgorithmName.SHA1 ? SHA1.HashData(clientKey) : SHA256.HashData(clientKey);
        if (!PasswordScheme.FixedEquals(computed, _storedKey)) return SaslStep.Failure("password mismatch");
        if (Credentials.Admitted(_entry!) is { } refused) return refused;
        var serverSignature = PasswordScheme.Hmac(alg, _serverKey, authMessage);
        return SaslStep.Success(_user, Encoding.UTF8.GetBytes("v=" + Convert.ToBase64String(serverSignature)));
    }

    /// <summary>saslname: "=2C" is ',' and "=3D" is '='; any other '=' is malformed (RFC 5802 5.1).</summary>
    private static string? DecodeName(string s)
    {
        if (!s.Contains('=')) return s;
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '=') { sb.Append(s[i]); continue; }
            if (i + 2 >= s.Length) return null;
            var code = s.Substring(i + 1, 2);
            if (code == "2C") sb.Append(',');
            else if (code == "3D") sb.Append('=');
            else return null;
            i += 2;
        }
        return sb.ToString();
    }
}
