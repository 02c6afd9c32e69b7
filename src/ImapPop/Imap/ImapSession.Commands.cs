// The IMAP command table, as Dovecot's imap-commands.c: each command with the
// states it is allowed in (RFC 9051 3), whether it has a UID form, and how it
// treats message sequence numbers (RFC 9051 7.5.1: no EXPUNGE may be sent
// while a command that uses them runs). The session looks a command up here
// and checks its state before anything of the command runs.
using System.Collections.Frozen;

namespace Mail.ImapPop.Imap;

[Flags]
internal enum ImapState { NotAuthenticated = 1, Authenticated = 2, Selected = 4, Any = NotAuthenticated | Authenticated | Selected }

[Flags]
internal enum ImapCommandFlags
{
    None = 0,
    /// <summary>Has a UID form (RFC 9051 6.4.9).</summary>
    Uid = 1,
    /// <summary>Takes message sequence numbers: pending expunges wait until it is done.</summary>
    UsesSequences = 2,
    /// <summary>Changes sequence numbers (expunges).</summary>
    BreaksSequences = 4,
    /// <summary>Changes which mailbox is selected, or the mailbox list.</summary>
    BreaksMailbox = 8,
}

/// <summary>A command: its name, states and flags, and its handler (tag, arguments, UID form) returning the tagged response.</summary>
internal sealed record ImapCommand(string Name, ImapState States, ImapCommandFlags Flags, Func<ImapSession, string, Args, bool, Task<ImapResponse>> Run);

internal sealed partial class ImapSession
{
    private const ImapState Authed = ImapState.Authenticated | ImapState.Selected;

    private static readonly FrozenDictionary<string, ImapCommand> Commands = new ImapCommand[]
    {
        new("CAPABILITY", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.CapabilityAsync(a)),
        new("NOOP", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.NoopAsync(a)),
        new("LOGOUT", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.LogoutAsync(a)),
        new("ID", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.IdAsync(a)),
        new("STARTTLS", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.StartTlsAsync(t, a)),
        new("LOGIN", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.LoginAsync(a)),
        new("AUTHENTICATE", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.AuthenticateAsync(a)),
        new("COMPRESS", Authed, ImapCommandFlags.None, (s, t, a, _) => s.CompressAsync(t, a)),
        new("NOTIFY", Authed, ImapCommandFlags.None, (s, t, a, _) => s.NotifyAsync(a)),
        new("ENABLE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.EnableAsync(a)),
        new("NAMESPACE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.NamespaceAsync(a)),
        new("SELECT", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.SelectAsync(a, readOnly: false)),
        new("EXAMINE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.SelectAsync(a, readOnly: true)),
        new("CREATE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.CreateAsync(a)),
        new("DELETE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.DeleteAsync(a)),
        new("RENAME", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.RenameAsync(a)),
        new("SUBSCRIBE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.SubscribeAsync(a, subscribe: true)),
        new("UNSUBSCRIBE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.SubscribeAsync(a, subscribe: false)),
        new("LIST", Authed, ImapCommandFlags.None, (s, t, a, _) => s.ListAsync(a, lsub: false)),
        new("LSUB", Authed, ImapCommandFlags.None, (s, t, a, _) => s.ListAsync(a, lsub: true)),
        new("STATUS", Authed, ImapCommandFlags.None, (s, t, a, _) => s.StatusAsync(a)),
        new("APPEND", Authed, ImapCommandFlags.None, (s, t, a, _) => s.AppendAsync(a)),
        new("IDLE", Authed, ImapCommandFlags.None, (s, _, a, _) => { a.End(); return s.IdleAsync(); }),
        new("GETMETADATA", Authed, ImapCommandFlags.None, (s, t, a, _) => s.GetMetadataAsync(a)),
        new("SETMETADATA", Authed, ImapCommandFlags.None, (s, t, a, _) => s.SetMetadataAsync(a)),
        new("GETQUOTAROOT", Authed, ImapCommandFlags.None, (s, t, a, _) => s.GetQuotaRootAsync(a)),
        new("GETQUOTA", Authed, ImapCommandFlags.None, (s, t, a, _) => s.GetQuotaAsync(a)),
        new("SETQUOTA", Authed, ImapCommandFlags.None, (_, _, _, _) => Task.FromResult(ImapResponse.No("[NOPERM] Quotas are set in the user directory (mailctl user add --quota)."))),
        new("CHECK", ImapState.Selected, ImapCommandFlags.None, (s, t, a, _) => s.CheckAsync(a)),
        new("CLOSE", ImapState.Selected, ImapCommandFlags.BreaksMailbox | ImapCommandFlags.BreaksSequences, (s, t, a, _) => s.CloseAsync(a, expunge: true)),
        new("UNSELECT", ImapState.Selected, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.CloseAsync(a, expunge: false)),
        new("EXPUNGE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.BreaksSequences, (s, t, a, u) => s.ExpungeAsync(a, u)),
        new("FETCH", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.FetchAsync(a, u)),
        new("STORE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.StoreAsync(a, u)),
        new("SEARCH", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.SearchAsync(t, a, u)),
        new("CANCELUPDATE", ImapState.Selected, ImapCommandFlags.None, (s, t, a, _) => s.CancelUpdateAsync(a)),
        new("SORT", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.SortAsync(t, a, u)),
        new("THREAD", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.ThreadAsync(a, u)),
        new("COPY", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.CopyAsync(a, u, move: false)),
        new("MOVE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences | ImapCommandFlags.BreaksSequences, (s, t, a, u) => s.CopyAsync(a, u, move: true)),
    }.ToFrozenDictionary(c => c.Name, StringComparer.Ordinal);

    private ImapState State => _user == null ? ImapState.NotAuthenticated : _selected == null ? ImapState.Authenticated : ImapState.Selected;

    /// <summary>
    /// Looks the command up, checks its state (RFC 9051 3) before anything of it runs, runs it,
    /// and then tells the client what changed in the selected mailbox meanwhile: with the
    /// expunges unless the command took sequence numbers (RFC 9051 7.5.1: no EXPUNGE after
    /// FETCH, STORE, SEARCH, COPY or MOVE, whose numbers the client must be able to trust;
    /// with CONDSTORE new messages and flag changes are told after them too).
    /// </summary>
    private async Task<ImapResponse> DispatchAsync(string tag, string name, Args args, bool uid)
    {
        Commands.TryGetValue(name, out var command);
        if (uid && (command == null || (command.Flags & ImapCommandFlags.Uid) == 0)) return ImapResponse.Bad("Unknown UID command");
        if (command == null) return ImapResponse.Bad("Unknown command.");
        var state = State;
        if ((command.States & state) == 0)
            return ImapResponse.Bad(state == ImapState.NotAuthenticated ? "Not authenticated."
                : command.States == ImapState.NotAuthenticated ? "Already authenticated."
                : "No mailbox selected.");
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var response = await command.Run(this, tag, args, uid);
        if (command.Name != "IDLE")
            ImapMetrics.Command(uid ? "UID " + command.Name : command.Name, response, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        if (!response.Closes && (command.Flags & (ImapCommandFlags.UsesSequences | ImapCommandFlags.BreaksMailbox)) == 0)
            await SendUpdatesAsync(allowExpunge: true);
        else if (!response.Closes && _condstore && (command.Flags & ImapCommandFlags.UsesSequences) != 0)
            // With CONDSTORE, new messages and flag changes, but no expunge (as Dovecot): a client
            // that sees a MODSEQ in a STORE or FETCH reply also hears of every message born before
            // it, so a later SELECT (QRESYNC) from that mod-sequence is told only what it knew of.
            await SendUpdatesAsync(allowExpunge: false);
        else if (!response.Closes) SearchUpdates(); // what the command itself changed in searches kept up to date
        return response;
    }
}
