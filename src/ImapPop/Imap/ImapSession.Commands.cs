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

internal sealed record ImapCommand(string Name, ImapState States, ImapCommandFlags Flags, Func<ImapSession, string, Args, bool, Task<bool>> Run);

internal sealed partial class ImapSession
{
    private const ImapState Authed = ImapState.Authenticated | ImapState.Selected;

    private static readonly FrozenDictionary<string, ImapCommand> Commands = new ImapCommand[]
    {
        new("CAPABILITY", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.CapabilityAsync(t, a)),
        new("NOOP", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.NoopAsync(t, a)),
        new("LOGOUT", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.LogoutAsync(t, a)),
        new("ID", ImapState.Any, ImapCommandFlags.None, (s, t, a, _) => s.IdAsync(t, a)),
        new("STARTTLS", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.StartTlsAsync(t, a)),
        new("LOGIN", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.LoginAsync(t, a)),
        new("AUTHENTICATE", ImapState.NotAuthenticated, ImapCommandFlags.None, (s, t, a, _) => s.AuthenticateAsync(t, a)),
        new("ENABLE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.EnableAsync(t, a)),
        new("NAMESPACE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.NamespaceAsync(t, a)),
        new("SELECT", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.SelectAsync(t, a, readOnly: false)),
        new("EXAMINE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.SelectAsync(t, a, readOnly: true)),
        new("CREATE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.CreateAsync(t, a)),
        new("DELETE", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.DeleteAsync(t, a)),
        new("RENAME", Authed, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.RenameAsync(t, a)),
        new("SUBSCRIBE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.SubscribeAsync(t, a, subscribe: true)),
        new("UNSUBSCRIBE", Authed, ImapCommandFlags.None, (s, t, a, _) => s.SubscribeAsync(t, a, subscribe: false)),
        new("LIST", Authed, ImapCommandFlags.None, (s, t, a, _) => s.ListAsync(t, a, lsub: false)),
        new("LSUB", Authed, ImapCommandFlags.None, (s, t, a, _) => s.ListAsync(t, a, lsub: true)),
        new("STATUS", Authed, ImapCommandFlags.None, (s, t, a, _) => s.StatusAsync(t, a)),
        new("APPEND", Authed, ImapCommandFlags.None, (s, t, a, _) => s.AppendAsync(t, a)),
        new("IDLE", Authed, ImapCommandFlags.None, (s, t, a, _) => { a.End(); return s.IdleAsync(t); }),
        new("GETQUOTAROOT", Authed, ImapCommandFlags.None, (s, t, a, _) => s.GetQuotaRootAsync(t, a)),
        new("GETQUOTA", Authed, ImapCommandFlags.None, (s, t, a, _) => s.GetQuotaAsync(t, a)),
        new("SETQUOTA", Authed, ImapCommandFlags.None, (s, t, _, _) => s.No(t, "[NOPERM] Quotas are set in the user directory (mailctl user add --quota).")),
        new("CHECK", ImapState.Selected, ImapCommandFlags.None, (s, t, a, _) => s.CheckAsync(t, a)),
        new("CLOSE", ImapState.Selected, ImapCommandFlags.BreaksMailbox | ImapCommandFlags.BreaksSequences, (s, t, a, _) => s.CloseAsync(t, a, expunge: true)),
        new("UNSELECT", ImapState.Selected, ImapCommandFlags.BreaksMailbox, (s, t, a, _) => s.CloseAsync(t, a, expunge: false)),
        new("EXPUNGE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.BreaksSequences, (s, t, a, u) => s.ExpungeAsync(t, a, u)),
        new("FETCH", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.FetchAsync(t, a, u)),
        new("STORE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.StoreAsync(t, a, u)),
        new("SEARCH", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.SearchAsync(t, a, u)),
        new("COPY", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences, (s, t, a, u) => s.CopyAsync(t, a, u, move: false)),
        new("MOVE", ImapState.Selected, ImapCommandFlags.Uid | ImapCommandFlags.UsesSequences | ImapCommandFlags.BreaksSequences, (s, t, a, u) => s.CopyAsync(t, a, u, move: true)),
    }.ToFrozenDictionary(c => c.Name, StringComparer.Ordinal);

    private ImapState State => _user == null ? ImapState.NotAuthenticated : _selected == null ? ImapState.Authenticated : ImapState.Selected;

    /// <summary>Looks the command up and checks its state (RFC 9051 3) before it runs.</summary>
    private async Task<bool> DispatchAsync(string tag, string name, Args args, bool uid)
    {
        Commands.TryGetValue(name, out var command);
        if (uid && (command == null || (command.Flags & ImapCommandFlags.Uid) == 0)) return await Bad(tag, "Unknown UID command");
        if (command == null) return await Bad(tag, "Unknown command.");
        var state = State;
        if ((command.States & state) == 0)
            return await Bad(tag, state == ImapState.NotAuthenticated ? "Not authenticated."
                : command.States == ImapState.NotAuthenticated ? "Already authenticated."
                : "No mailbox selected.");
        return await command.Run(this, tag, args, uid);
    }

    private async Task<bool> CapabilityAsync(string tag, Args args)
    {
        args.End();
        await Untagged($"CAPABILITY {Capabilities()}");
        return await Ok(tag, "Capability completed.");
    }

    private async Task<bool> NoopAsync(string tag, Args args)
    {
        args.End();
        await SendUpdatesAsync(allowExpunge: true);
        return await Ok(tag, "NOOP completed.");
    }

    private async Task<bool> LogoutAsync(string tag, Args args)
    {
        args.End();
        conn.BufferLine("* BYE Logging out");
        await Ok(tag, "Logout completed.");
        return false;
    }

    private async Task<bool> NamespaceAsync(string tag, Args args)
    {
        args.End();
        await Untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        return await Ok(tag, "Namespace completed.");
    }

    private async Task<bool> CheckAsync(string tag, Args args)
    {
        args.End();
        await SendUpdatesAsync(allowExpunge: true);
        return await Ok(tag, "Check completed.");
    }

    private async Task<bool> CloseAsync(string tag, Args args, bool expunge)
    {
        args.End();
        if (expunge && !_selected!.ReadOnly) ExpungeDeleted(null);
        Unselect();
        return await Ok(tag, expunge ? "Close completed." : "Unselect completed.");
    }
}
