// A SASL mechanism on the server side: a state machine fed the client's
// responses one at a time. Everything it is fed comes from the network, via
// the calling daemon; lengths are bounded and malformed input is an answer
// (Malformed), not an exception.
using System.Text;
using Mail.Shared.Auth;

namespace Mail.AuthD.Sasl;

internal readonly record struct SaslStep(SaslStatus Status, byte[]? Challenge = null, string? User = null,
    byte[]? FinalData = null, string? Reason = null)
{
    public static SaslStep Continue(byte[] challenge) => new(SaslStatus.Continue, challenge);
    public static SaslStep Success(string user, byte[]? final = null) => new(SaslStatus.Success, User: user, FinalData: final);
    public static SaslStep Failure(string reason) => new(SaslStatus.Failure, Reason: reason);
    public static SaslStep Malformed(string reason) => new(SaslStatus.Malformed, Reason: reason);
    public static SaslStep TempFail(string reason) => new(SaslStatus.Tempfail, Reason: reason);
}

internal abstract class SaslMechanism
{
    public const int MaxUserLength = 320;
    public const int MaxPasswordLength = 1024;

    /// <summary>The user name the client gave, for the log and the throttle, once known.</summary>
    public string? AttemptedUser { get; protected set; }

    /// <summary>
    /// One step: the initial response (null when the client sent none) on the
    /// first call, then each response to a challenge.
    /// </summary>
    public abstract ValueTask<SaslStep> StepAsync(byte[]? response, CancellationToken ct);

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    protected static bool TryUtf8(ReadOnlySpan<byte> bytes, out string text)
    {
        try { text = StrictUtf8.GetString(bytes); return true; }
        catch (DecoderFallbackException) { text = ""; return false; }
    }

    /// <summary>Names the mechanisms that send the password itself.</summary>
    public static bool IsPlaintext(string mechanism) => mechanism is "PLAIN" or "LOGIN";

    public static readonly string[] Known = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];

    public static SaslMechanism? Create(string name, Credentials credentials, string hostname) => name switch
    {
        "PLAIN" => new PlainMechanism(credentials),
        "LOGIN" => new LoginMechanism(credentials),
        "CRAM-MD5" => new CramMd5Mechanism(credentials, hostname),
        "SCRAM-SHA-1" => new ScramMechanism(credentials, System.Security.Cryptography.HashAlgorithmName.SHA1),
        "SCRAM-SHA-256" => new ScramMechanism(credentials, System.Security.Cryptography.HashAlgorithmName.SHA256),
        _ => null,
    };
}
