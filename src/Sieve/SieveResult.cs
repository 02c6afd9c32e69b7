// What a script decided for one message: the actions in order, whether the
// implicit keep still stands (and with which flags), the fault that stopped
// it (then only the implicit keep remains, as Pigeonhole does), and the
// duplicate-tracking marks to record once the actions have been carried out.
// The caller carries the actions out; the interpreter changes nothing.
namespace Mail.Sieve;

public abstract record SieveAction(int Line);

/// <summary>keep, or fileinto INBOX.</summary>
public sealed record KeepAction(IReadOnlyList<string> Flags, int Line) : SieveAction(Line);

public sealed record FileIntoAction(string Mailbox, IReadOnlyList<string> Flags, bool Create, bool Copy, int Line) : SieveAction(Line);

public sealed record RedirectAction(string Address, bool Copy, int Line) : SieveAction(Line);

/// <summary>reject (RFC 5429 2.2) or ereject (2.1): refused at delivery with <paramref name="Reason"/>.</summary>
public sealed record RejectAction(string Reason, bool Extended, int Line) : SieveAction(Line);

public sealed record DiscardAction(int Line) : SieveAction(Line);

/// <summary>
/// A vacation reply (RFC 5230): to <paramref name="To"/>, unless <paramref name="Suppressed"/>
/// says why not (a list, an automatic message, not addressed to the recipient ...). The caller
/// sends it at most once per <paramref name="Period"/> for the same sender and handle.
/// </summary>
public sealed record VacationAction(string To, string From, string Subject, string Reason, bool Mime, string Handle, TimeSpan Period,
    string? InReplyTo, string? References, string? Suppressed, int Line) : SieveAction(Line);

/// <summary>A duplicate-tracking record (RFC 7352) to keep for <paramref name="Period"/> once the delivery succeeded.</summary>
public sealed record DuplicateMark(string Key, TimeSpan Period);

public sealed class SieveResult
{
    public List<SieveAction> Actions { get; } = [];

    /// <summary>No action cancelled the implicit keep (RFC 5228 2.10.2): the message goes to INBOX.</summary>
    public bool ImplicitKeep { get; internal set; } = true;

    /// <summary>The flags of the implicit keep (imap4flags' internal variable at the end).</summary>
    public IReadOnlyList<string> ImplicitKeepFlags { get; internal set; } = [];

    /// <summary>The fault that stopped the script: the actions are dropped and the implicit keep stands.</summary>
    public SieveError? Error { get; internal set; }

    public List<DuplicateMark> DuplicateMarks { get; } = [];

    /// <summary>Things that did not stop the script but the user should hear of (an ignored flag, a protected header).</summary>
    public List<string> Warnings { get; } = [];

    /// <summary>The action lines as sieve-test prints them, one per action, then the implicit keep.</summary>
    public IEnumerable<string> Describe()
    {
        if (Error != null) yield return $"error: {Error}";
        foreach (var a in Actions)
        {
            yield return a switch
            {
                KeepAction k => "keep" + Flags(k.Flags),
                FileIntoAction f => $"fileinto \"{f.Mailbox}\"" + (f.Create ? " :create" : "") + (f.Copy ? " :copy" : "") + Flags(f.Flags),
                RedirectAction r => $"redirect <{r.Address}>" + (r.Copy ? " :copy" : ""),
                RejectAction r => $"{(r.Extended ? "ereject" : "reject")} \"{r.Reason}\"",
                DiscardAction => "discard",
                VacationAction v => $"vacation to <{v.To}> from \"{v.From}\" subject \"{v.Subject}\" period {(long)v.Period.TotalSeconds}s"
                    + (v.Suppressed != null ? $" (not sent: {v.Suppressed})" : ""),
                _ => a.ToString(),
            };
        }
        if (ImplicitKeep) yield return "implicit keep" + Flags(ImplicitKeepFlags);
        foreach (var w in Warnings) yield return "warning: " + w;
    }

    private static string Flags(IReadOnlyList<string> flags) => flags.Count == 0 ? "" : " flags " + string.Join(' ', flags);
}
