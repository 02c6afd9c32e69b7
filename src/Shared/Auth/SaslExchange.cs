// One SASL exchange (RFC 4422) over a line protocol, the same for SMTP AUTH
// (RFC 4954 4: "334 " challenges), IMAP AUTHENTICATE (RFC 9051 6.2.2: "+ ")
// and POP3 AUTH (RFC 5034 4: "+ "): the initial response ("=" for an empty
// one), each challenge in base64 behind the protocol's prefix, the client's
// answer in base64 or "*" to cancel. AuthD runs the mechanism; the exchange
// only carries it. Nothing of the payload is logged.
using Grpc.Core;
using Mail.Shared.Net;

namespace Mail.Shared.Auth;

/// <summary>How an exchange ended: AuthD's status, and what was wrong on our side of it.</summary>
/// <param name="Unreachable">AuthD could not be asked (the status is then Tempfail); for the error log.</param>
public readonly record struct SaslOutcome(SaslStatus Status, string User, string? Unreachable = null)
{
    public bool Succeeded => Status == SaslStatus.Success;
}

public static class SaslExchange
{
    /// <summary>Runs the exchange; <paramref name="initialResponse"/> is the command's base64 argument, if any.</summary>
    public static Task<SaslOutcome> RunAsync(AuthClient auth, LineConnection conn, string challengePrefix,
        string mechanism, string? initialResponse, ClientInfo client) =>
        RunAsync(auth, mechanism, initialResponse, client, async challenge =>
        {
            await conn.WriteLineAsync(challengePrefix + challenge);
            var line = await conn.ReadLineAsync();
            return line.IsLine ? line.Text : null;
        });

    /// <summary>
    /// The exchange over any framing: <paramref name="challenge"/> sends a base64 challenge in the
    /// protocol's form and returns the client's base64 answer ("*" cancels; null: the client is gone).
    /// </summary>
    public static async Task<SaslOutcome> RunAsync(AuthClient auth, string mechanism, string? initialResponse, ClientInfo client,
        Func<string, Task<string?>> challenge) =>
        Counted(await ExchangeAsync(auth, mechanism, initialResponse, client, challenge).ConfigureAwait(false), client);

    private static async Task<SaslOutcome> ExchangeAsync(AuthClient auth, string mechanism, string? initialResponse, ClientInfo client,
        Func<string, Task<string?>> challenge)
    {
        byte[]? initial = null;
        if (initialResponse != null)
        {
            if (initialResponse == "=") initial = []; // RFC 4954 4: an empty initial response
            else if (!TryBase64(initialResponse, out initial)) return new(SaslStatus.Malformed, "");
        }
        bool malformed = false, cancelled = false;
        try
        {
            var result = await auth.AuthenticateInteractiveAsync(mechanism, initial, client, async bytes =>
            {
                var answer = await challenge(Convert.ToBase64String(bytes));
                if (answer == null || answer == "*") { cancelled = true; return null; }
                if (TryBase64(answer, out var decoded)) return decoded;
                malformed = true;
                return null;
            });
            var status = cancelled ? SaslStatus.Aborted : malformed ? SaslStatus.Malformed : result.Status;
            return new(status, status == SaslStatus.Success ? result.User : "");
        }
        catch (RpcException e)
        {
            return new(SaslStatus.Tempfail, "", e.Status.Detail);
        }
    }

    /// <summary>A user name and password given in the protocol's own command (IMAP LOGIN, POP3 USER/PASS): PLAIN (RFC 4616).</summary>
    public static async Task<SaslOutcome> PlainAsync(AuthClient auth, string user, string password, ClientInfo client)
    {
        try
        {
            var result = await auth.AuthenticatePlainAsync(user, password, client);
            return Counted(new(result.Status, result.Status == SaslStatus.Success ? result.User : ""), client);
        }
        catch (RpcException e)
        {
            return Counted(new(SaslStatus.Tempfail, "", e.Status.Detail), client);
        }
    }

    /// <summary>The login counted by service and outcome (mail_logins_total).</summary>
    private static SaslOutcome Counted(SaslOutcome outcome, ClientInfo client)
    {
        Metrics.MailMetrics.Logins.WithLabels(client.Service.Length > 0 ? client.Service : "unknown", Outcome(outcome.Status)).Inc();
        return outcome;
    }

    /// <summary>A SASL status as the metrics name it.</summary>
    public static string Outcome(SaslStatus status) => status switch
    {
        SaslStatus.Success => "ok",
        SaslStatus.Failure => "failed",
        SaslStatus.Tempfail => "tempfail",
        SaslStatus.BadMechanism => "bad_mechanism",
        SaslStatus.Malformed => "malformed",
        SaslStatus.Aborted => "aborted",
        _ => "other",
    };

    private static bool TryBase64(string s, out byte[] bytes)
    {
        bytes = new byte[s.Length];
        if (!Convert.TryFromBase64String(s, bytes, out var n)) return false;
        bytes = bytes[..n];
        return true;
    }
}
