// The tagged status response that ends an IMAP command (RFC 9051 7.1): OK,
// NO or BAD, an optional response code in its text (RFC 5530), and whether
// the session ends after it. Handlers return it; the session writes it with
// the command's tag, logs every NO and BAD, and counts the BADs.
namespace Mail.ImapPop.Imap;

internal readonly record struct ImapResponse(string Status, string Text)
{
    /// <summary>The connection closes once this is written (LOGOUT, a failed TLS handshake).</summary>
    public bool Closes { get; init; }

    /// <summary>Nothing to write: the handler has answered already (STARTTLS's OK before the handshake).</summary>
    public static readonly ImapResponse None = new("", "");

    public bool IsNone => Status.Length == 0;
    public bool IsRefusal => Status is "NO" or "BAD";

    public static ImapResponse Ok(string text) => new("OK", text);
    public static ImapResponse No(string text) => new("NO", text);
    public static ImapResponse Bad(string text) => new("BAD", text);
    public ImapResponse AndClose() => this with { Closes = true };

    public override string ToString() => $"{Status} {Text}";
}
