// NOTIFY (RFC 5465): the client names mailboxes (SELECTED, INBOXES, PERSONAL,
// SUBSCRIBED, SUBTREE, MAILBOXES) and events (MessageNew, MessageExpunge,
// FlagChange, MailboxName, SubscriptionChange); between commands the session
// tells what happened as it happens: EXISTS, EXPUNGE and FETCH for the selected
// mailbox, STATUS for the others, LIST for mailboxes created, deleted or
// (un)subscribed. The folders are watched through the MailboxHub (inotify),
// the Maildir's root for names and subscriptions; nothing polls.
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>One event group: which mailboxes (a filter and its names) and which events, with MessageNew's fetch attributes.</summary>
    private sealed record NotifyGroup(string Filter, List<string> Mailboxes, HashSet<string> Events, string? FetchItems);

    /// <summary>The NOTIFY in force: its groups, the watches, what each watched mailbox last looked like, and the wake-up of the command loop.</summary>
    private sealed class NotifyState
    {
        public List<NotifyGroup> Groups { get; } = [];
        public List<IDisposable> Watches { get; } = [];
        public IDisposable? SelectedWatch { get; set; }
        public Dictionary<string, string> LastStatus { get; } = new(StringComparer.Ordinal);
        public HashSet<string> Folders { get; set; } = [];
        public HashSet<string> Subscribed { get; set; } = [];
        public object Key { get; } = new();
        private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Wake => Volatile.Read(ref _wake);
        public void Fire() => Volatile.Read(ref _wake).TrySetResult();
        /// <summary>Arms the next wake-up (before looking at what changed, so that nothing is missed).</summary>
        public void Rearm() => Volatile.Write(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }

    private NotifyState? _notify;
    private const int MaxNotifyMailboxes = 100;
    private static readonly HashSet<string> NotifyEvents = ["MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "MAILBOXNAME", "SUBSCRIPTIONCHANGE"];
    private static readonly HashSet<string> KnownUnsupportedEvents = ["ANNOTATIONCHANGE", "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"];

    private (bool Status, List<NotifyGroup> Groups)? ParseNotify(Args args, out ImapResponse refusal)
    {
        refusal = default;
        args.Space();
        var verb = args.Atom().ToUpperInvariant();
        if (verb == "NONE") { args.End(); return (false, []); }
        if (verb != "SET") throw new ImapSyntaxException("Expected SET or NONE");
        args.Space();
        bool status = false;
        if (args.Peek() is 'S' or 's') { if (!args.Atom().Equals("STATUS", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected STATUS"); status = true; args.Space(); }
        var groups = new List<NotifyGroup>();
        int mailboxes = 0;
        do
        {
            if (groups.Count > 0) args.Space();
            args.Expect('(');
            var filter = args.Atom().ToUpperInvariant();
            var names = new List<string>();
            if (filter is "SUBTREE" or "MAILBOXES")
            {
                args.Space();
                bool list = args.TryChar('(');
                do
                {
                    if (names.Count > 0) args.Space();
                    var name = MailboxArg(args, out var error);
                    if (error != null) throw new ImapSyntaxException(error);
                    if (++mailboxes > MaxNotifyMailboxes) throw new ImapSyntaxException("Too many mailboxes");
                    names.Add(name);
                }
                while (list && !args.TryChar(')'));
            }
            else if (filter is not ("SELECTED" or "SELECTED-DELAYED" or "INBOXES" or "PERSONAL" or "SUBSCRIBED"))
                throw new ImapSyntaxException("Unknown mailbox filter " + MailLog.Safe(filter, 30));
            args.Space();
            var events = new HashSet<string>(StringComparer.Ordinal);
            string? fetch = null;
            if (!args.TryChar('('))
            {
                if (!args.Atom().Equals("NONE", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected events or NONE");
            }
            else
                while (!args.TryChar(')'))
                {
                    if (events.Count > 0) args.Space();
                    var e = args.Atom().ToUpperInvariant();
                    if (KnownUnsupportedEvents.Contains(e) || !NotifyEvents.Contains(e))
                    {
                        if (!KnownUnsupportedEvents.Contains(e) && !e.All(char.IsAsciiLetterOrDigit)) throw new ImapSyntaxException("Invalid event");
                        refusal = ImapResponse.No("[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported event " + MailLog.Safe(e, 30));
                        return null;
                    }
                    events.Add(e);
                    if (e == "MESSAGENEW" && args.NextIs(" ("))
                    {
                        // MessageNew (fetch-att ...): what to FETCH of each new message in the selected mailbox.
                        args.Space();
                        args.Expect('(');
                        var items = new List<string>();
                        while (!args.TryChar(')')) { if (items.Count > 0) args.Space(); if (items.Count == 20) throw new ImapSyntaxException("Too many fetch attributes"); items.Add(args.Atom("[]<>")); }
                        fetch = string.Join(' ', items);
                    }
                }
            // RFC 5465 5: MessageNew and MessageExpunge go together; FlagChange needs them.
            if (events.Contains("FLAGCHANGE") && !(events.Contains("MESSAGENEW") && events.Contains("MESSAGEEXPUNGE")) && filter is "SELECTED" or "SELECTED-DELAYED")
                throw new ImapSyntaxException("FlagChange needs MessageNew and MessageExpunge");
            args.Expect(')');
            groups.Add(new NotifyGroup(filter, names, events, fetch));
        }
        while (!args.AtEnd);
        if (groups.Count(g => g.Filter is "SELECTED" or "SELECTED-DELAYED") > 1) throw new ImapSyntaxException("SELECTED given twice");
        return (status, groups);
    }

    private async Task<ImapResponse> NotifyAsync(Args args)
    {
        if (ParseNotify(args, out var refusal) is not var (status, groups)) return refusal;
        StopNotify();
        if (groups.Count == 0) return ImapResponse.Ok("NOTIFY completed.");
        var state = new NotifyState();
        state.Groups.AddRange(groups);
        state.Folders = AllFolders().ToHashSet(StringComparer.Ordinal);
        state.Subscribed = Subscriptions.Read(_user!.Maildir);
        var watched = WatchedMailboxes(state);
        if (watched.Count > MaxNotifyMailboxes) return ImapResponse.No("[LIMIT] NOTIFY watches at most 100 mailboxes");
        _notify = state;
        foreach (var name in watched)
        {
            var path = FolderOf(name).Path;
            options.Hub.Join(path, state.Key);
            state.Watches.Add(new Joined(options.Hub, path, state.Key));
            state.Watches.Add(options.Hub.Subscribe(path, state.Fire));
            var events = EventsFor(state, name)!;
            var line = NotifyStatus(name, events);
            if (line != null)
            {
                state.LastStatus[name] = line;
                if (status) conn.BufferLine("* " + line);
            }
        }
        NotifySelected();
        if (groups.Any(g => g.Events.Contains("MAILBOXNAME") || g.Events.Contains("SUBSCRIPTIONCHANGE")))
        {
            var root = new FileSystemWatcher(_user.Maildir) { NotifyFilter = NotifyFilters.DirectoryName | NotifyFilters.FileName, IncludeSubdirectories = false };
            root.Created += (_, _) => state.Fire();
            root.Deleted += (_, _) => state.Fire();
            root.Renamed += (_, _) => state.Fire();
            root.EnableRaisingEvents = true;
            state.Watches.Add(root);
        }
        Log.Info($"{conn.SessionId}: notify user=<{MailLog.Safe(_user.User)}> mailboxes={watched.Count}");
        return ImapResponse.Ok("NOTIFY completed.");
    }

    /// <summary>A Join of the hub undone on dispose.</summary>
    private sealed class Joined(MailboxHub hub, string path, object key) : IDisposable
    {
        public void Dispose() => hub.Leave(path, key);
    }

    private void StopNotify()
    {
        if (_notify == null) return;
        _notify.SelectedWatch?.Dispose();
        foreach (var w in Enumerable.Reverse(_notify.Watches)) w.Dispose();
        _notify = null;
    }

    /// <summary>The selected mailbox changed (SELECT, UNSELECT): its watch follows, when its events are asked for.</summary>
    private void NotifySelected()
    {
        if (_notify == null) return;
        _notify.SelectedWatch?.Dispose();
        _notify.SelectedWatch = _selected != null && EventsFor(_notify, _selected.Name, selected: true) is { Count: > 0 }
            ? options.Hub.Subscribe(_selected.Folder.Path, _notify.Fire) : null;
    }

    /// <summary>The events a mailbox is watched for: those of the first group whose filter names it (RFC 5465 6).</summary>
    private static HashSet<string>? EventsFor(NotifyState state, string name, bool selected = false, IReadOnlySet<string>? subscribed = null)
    {
        foreach (var g in state.Groups)
        {
            bool matches = g.Filter switch
            {
                "SELECTED" or "SELECTED-DELAYED" => selected,
                "INBOXES" => name == "INBOX",
                "PERSONAL" => true,
                "SUBSCRIBED" => (subscribed ?? state.Subscribed).Contains(name),
                "SUBTREE" => g.Mailboxes.Any(m => name == m || name.StartsWith(m + "/", StringComparison.Ordinal)),
                _ => g.Mailboxes.Contains(name),
            };
            if (matches) return g.Events;
        }
        return null;
    }

    /// <summary>The mailboxes other than the selected one that the groups name and ask message events for.</summary>
    private List<string> WatchedMailboxes(NotifyState state) =>
        state.Folders.Where(f => f != _selected?.Name && EventsFor(state, f) is { } e && (e.Contains("MESSAGENEW") || e.Contains("MESSAGEEXPUNGE") || e.Contains("FLAGCHANGE"))).ToList();

    /// <summary>The STATUS a watched mailbox's events call for (RFC 5465 5.2-5.4), or null if it has none.</summary>
    private string? NotifyStatus(string name, HashSet<string> events)
    {
        var items = new List<string>();
        if (events.Contains("MESSAGENEW")) items.AddRange(["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]);
        else if (events.Contains("MESSAGEEXPUNGE")) items.Add("MESSAGES");
        if (events.Contains("FLAGCHANGE")) { if (!items.Contains("UIDVALIDITY")) items.Add("UIDVALIDITY"); items.Add("HIGHESTMODSEQ"); if (!items.Contains("UNSEEN")) items.Add("UNSEEN"); }
        if (items.Count == 0 || !FolderOf(name).Exists) return null;
        return StatusLine(name, [.. items]);
    }

    /// <summary>Tells what changed since the last look: the selected mailbox's news, other mailboxes' STATUS, LIST for names and subscriptions.</summary>
    private async Task SendNotificationsAsync()
    {
        var state = _notify!;
        state.Rearm();
        if (_selected != null && EventsFor(state, _selected.Name, selected: true) is { Count: > 0 } selectedEvents)
        {
            int before = _selected.Count;
            await SendUpdatesAsync(allowExpunge: true);
            var fetch = state.Groups.FirstOrDefault(g => g.Filter is "SELECTED" or "SELECTED-DELAYED")?.FetchItems;
            if (fetch != null && selectedEvents.Contains("MESSAGENEW") && _selected.Count > before)
                await FetchAsync(new Args([new LinePart($" {before + 1}:* ({fetch})")]), uid: false);
        }
        foreach (var (name, last) in state.LastStatus.ToList())
        {
            if (EventsFor(state, name) is not { } events) continue;
            var now = NotifyStatus(name, events);
            if (now == null || now == last) continue;
            state.LastStatus[name] = now;
            conn.BufferLine("* " + now);
        }
        if (state.Groups.Any(g => g.Events.Contains("MAILBOXNAME")))
        {
            var folders = AllFolders().ToHashSet(StringComparer.Ordinal);
            foreach (var gone in state.Folders.Except(folders).Order(StringComparer.Ordinal))
                if (EventsFor(state, gone) is { } e && e.Contains("MAILBOXNAME")) conn.BufferLine($"* LIST (\\NonExistent) \"/\" {Wire(gone)}");
            foreach (var added in folders.Except(state.Folders).Order(StringComparer.Ordinal))
                if (EventsFor(state, added) is { } e && e.Contains("MAILBOXNAME")) conn.BufferLine($"* LIST () \"/\" {Wire(added)}");
            state.Folders = folders;
        }
        if (state.Groups.Any(g => g.Events.Contains("SUBSCRIPTIONCHANGE")))
        {
            var subscribed = Subscriptions.Read(_user!.Maildir);
            foreach (var name in subscribed.Except(state.Subscribed).Order(StringComparer.Ordinal))
                if (EventsFor(state, name, subscribed: subscribed) is { } e && e.Contains("SUBSCRIPTIONCHANGE")) conn.BufferLine($"* LIST (\\Subscribed) \"/\" {Wire(name)}");
            foreach (var name in state.Subscribed.Except(subscribed).Order(StringComparer.Ordinal))
                if (EventsFor(state, name) is { } e && e.Contains("SUBSCRIPTIONCHANGE")) conn.BufferLine($"* LIST () \"/\" {Wire(name)}");
            state.Subscribed = subscribed;
        }
        await conn.FlushAsync();
    }
}
