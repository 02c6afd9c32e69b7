// The selected mailbox of a session: the messages by sequence number as this
// session knows them, and the work of telling the client what changed
// (EXISTS, EXPUNGE, FETCH FLAGS, RECENT) when the folder is synced again.
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

/// <summary>A message as the session knows it: 16 bytes, the file record being shared by every session.</summary>
internal readonly record struct SelectedMessage(FolderMessage File, bool Recent)
{
    public SelectedMessage(FolderMessage m) : this(m, m.Recent) { }
    public uint Uid => File.Uid;
    public bool Deleted => File.Flags.Contains('T');
}

/// <summary>
/// The session's messages by sequence number. While the session's view equals the folder's
/// shared state, it is that state's list (a few bytes per session); the first change only
/// this session sees (an expunge not yet reported, a flag it set) gives it its own copy.
/// </summary>
internal sealed class MessageList : IEnumerable<SelectedMessage>
{
    private IReadOnlyList<FolderMessage>? _shared;
    private List<SelectedMessage>? _own;
    private readonly HashSet<uint> _recent = [];

    public MessageList(IReadOnlyList<FolderMessage> list) => Share(list);

    public void Share(IReadOnlyList<FolderMessage> list)
    {
        foreach (var m in list) if (m.Recent) _recent.Add(m.Uid);
        _shared = list;
        _own = null;
    }

    public bool IsShared(IReadOnlyList<FolderMessage> list) => _own == null && ReferenceEquals(_shared, list);

    /// <summary>The folder's shared state this view is, or null when the session has its own copy: a key for results that depend only on it.</summary>
    public object? Snapshot => _own == null ? _shared : null;

    public int Count => _own?.Count ?? _shared!.Count;

    public SelectedMessage this[int i]
    {
        get => _own != null ? _own[i] : new SelectedMessage(_shared![i], _recent.Count > 0 && _recent.Contains(_shared[i].Uid));
        set => Own()[i] = value;
    }

    private List<SelectedMessage> Own()
    {
        if (_own != null) return _own;
        var own = new List<SelectedMessage>(_shared!.Count);
        for (int i = 0; i < _shared.Count; i++) own.Add(this[i]);
        _own = own;
        _shared = null;
        return _own;
    }

    public void RemoveAt(int i) => Own().RemoveAt(i);

    /// <summary>Makes the messages from UID <paramref name="first"/> on Recent to this session (claimed from the folder).</summary>
    public void MarkRecent(uint first)
    {
        for (int i = Count - 1; i >= 0 && this[i].Uid >= first; i--)
        {
            if (_own != null) _own[i] = _own[i] with { Recent = true };
            _recent.Add(this[i].Uid);
        }
    }

    public void Add(SelectedMessage m)
    {
        if (m.Recent) _recent.Add(m.Uid);
        Own().Add(m);
    }

    public int FindIndex(Predicate<SelectedMessage> match)
    {
        for (int i = 0; i < Count; i++) if (match(this[i])) return i;
        return -1;
    }

    public IEnumerator<SelectedMessage> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return this[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

internal sealed class Selected(string name, MaildirFolder folder, bool readOnly, FolderState state, List<string> keywords, ModSeqStore modSeqs)
{
    public ModSeqStore ModSeqs { get; } = modSeqs;
    /// <summary>IMAP4rev2: no RECENT responses.</summary>
    public bool Rev2 { get; set; }
    /// <summary>CONDSTORE in use: flag changes carry MODSEQ.</summary>
    public bool CondStore { get; set; }
    /// <summary>QRESYNC enabled: expunges are reported as VANISHED, by UID.</summary>
    public bool Vanished { get; set; }
    public string Name { get; } = name;
    public MaildirFolder Folder { get; } = folder;
    public bool ReadOnly { get; } = readOnly;
    public uint UidValidity { get; } = state.UidValidity;
    public uint UidNext { get; private set; } = state.NextUid;
    public MessageList Messages { get; } = Claimed(new(state.Messages), folder, readOnly);
    public List<string> Keywords { get; private set; } = keywords;

    /// <summary>
    /// A read-write session takes the messages no session has seen yet as its \Recent ones;
    /// EXAMINE shows them as Recent but leaves them so (RFC 3501 6.3.2).
    /// </summary>
    private static MessageList Claimed(MessageList messages, MaildirFolder folder, bool readOnly)
    {
        if (messages.Count > 0) messages.MarkRecent(readOnly ? folder.RecentFrom : folder.ClaimRecent(messages[^1].Uid));
        return messages;
    }

    public int Count => Messages.Count;
    public uint Max(bool uid) => Messages.Count == 0 ? 0 : uid ? Messages[^1].Uid : (uint)Messages.Count;

    /// <summary>The result SEARCH RETURN (SAVE) kept, as UIDs: "$" names those not expunged since (RFC 5182).</summary>
    public HashSet<uint> Saved { get; set; } = [];

    /// <summary>The sequence numbers (1-based) of the messages a set names, in order.</summary>
    public List<int> Resolve(SequenceSet set, bool uid)
    {
        if (!set.IsSaved) return set.Resolve(Messages.Count, uid ? i => Messages[i].Uid : null);
        var result = new List<int>();
        if (Saved.Count == 0) return result;
        for (int i = 0; i < Messages.Count; i++) if (Saved.Contains(Messages[i].Uid)) result.Add(i + 1);
        return result;
    }

    /// <summary>Syncs with the folder and returns the untagged responses that tell the client (EXPUNGE first).</summary>
    public List<string> Refresh(bool allowExpunge, Func<SelectedMessage, string> flagsOf, Func<List<(int Seq, uint Uid)>, IEnumerable<string>>? removing = null)
    {
        var updates = new List<string>();
        var state = Folder.Sync(takeNew: !ReadOnly);
        ModSeqs.Observe(state);
        if (Messages.IsShared(state.Messages)) return updates; // nothing changed
        Keywords = Folder.Keywords();
        var now = state.Messages.ToDictionary(m => m.Uid);
        if (allowExpunge)
        {
            var vanished = new List<uint>();
            var gone = new List<(int Seq, uint Uid)>();
            for (int i = Messages.Count - 1; i >= 0; i--)
                if (!now.ContainsKey(Messages[i].Uid))
                {
                    gone.Add((i + 1, Messages[i].Uid));
                    if (Vanished) vanished.Add(Messages[i].Uid);
                    else updates.Add($"* {i + 1} EXPUNGE");
                    Messages.RemoveAt(i);
                }
            if (gone.Count > 0 && removing != null) updates.InsertRange(0, removing(gone));
            if (vanished.Count > 0) updates.Add("* VANISHED " + SequenceSet.Compact(vanished.Order()));
        }
        var known = Messages.ToDictionary(m => m.Uid);
        for (int i = 0; i < Messages.Count; i++)
        {
            if (!now.TryGetValue(Messages[i].Uid, out var f)) continue;
            var old = Messages[i].File;
            if (ReferenceEquals(old, f)) continue;
            Messages[i] = Messages[i] with { File = f };
            if (old.Flags != f.Flags)
                updates.Add($"* {i + 1} FETCH (UID {f.Uid} FLAGS ({flagsOf(Messages[i])}){(CondStore ? $" MODSEQ ({ModSeqs.Of(f.Uid)})" : "")})");
        }
        int before = Messages.Count;
        foreach (var m in state.Messages)
            if (!known.ContainsKey(m.Uid) && m.Uid > Max(uid: true)) Messages.Add(new SelectedMessage(m));
        if (Messages.Count != before)
        {
            Claimed(Messages, Folder, ReadOnly);
            updates.Add($"* {Messages.Count} EXISTS");
            if (!Rev2) updates.Add($"* {Messages.Count(m => m.Recent)} RECENT");
        }
        UidNext = state.NextUid;
        // In step with the folder again: share its state rather than keep a copy.
        if (Messages.Count == state.Messages.Count)
        {
            bool same = true;
            for (int i = 0; i < Messages.Count && same; i++) same = ReferenceEquals(Messages[i].File, state.Messages[i]);
            if (same) Messages.Share(state.Messages);
        }
        return updates;
    }
}
