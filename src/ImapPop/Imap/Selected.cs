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

internal sealed class Selected(string name, MaildirFolder folder, bool readOnly, FolderState state, List<string> keywords)
{
    public string Name { get; } = name;
    public MaildirFolder Folder { get; } = folder;
    public bool ReadOnly { get; } = readOnly;
    public uint UidValidity { get; } = state.UidValidity;
    public uint UidNext { get; private set; } = state.NextUid;
    public List<SelectedMessage> Messages { get; } = state.Messages.Select(m => new SelectedMessage(m)).ToList();
    public List<string> Keywords { get; private set; } = keywords;

    public int Count => Messages.Count;
    public uint Max(bool uid) => Messages.Count == 0 ? 0 : uid ? Messages[^1].Uid : (uint)Messages.Count;

    /// <summary>The sequence numbers (1-based) of the messages a set names.</summary>
    public List<int> Resolve(SequenceSet set, bool uid)
    {
        var result = new List<int>();
        if (Messages.Count == 0) return result;
        uint max = Max(uid);
        for (int i = 0; i < Messages.Count; i++)
            if (set.Contains(uid ? Messages[i].Uid : (uint)(i + 1), max)) result.Add(i + 1);
        return result;
    }

    /// <summary>Syncs with the folder and returns the untagged responses that tell the client (EXPUNGE first).</summary>
    public List<string> Refresh(bool allowExpunge, Func<SelectedMessage, string> flagsOf)
    {
        var updates = new List<string>();
        var state = Folder.Sync(takeNew: !ReadOnly);
        Keywords = Folder.Keywords();
        var now = state.Messages.ToDictionary(m => m.Uid);
        if (allowExpunge)
        {
            for (int i = Messages.Count - 1; i >= 0; i--)
                if (!now.ContainsKey(Messages[i].Uid))
                {
                    updates.Add($"* {i + 1} EXPUNGE");
                    Messages.RemoveAt(i);
                }
        }
        var known = Messages.ToDictionary(m => m.Uid);
        for (int i = 0; i < Messages.Count; i++)
        {
            if (!now.TryGetValue(Messages[i].Uid, out var f)) continue;
            var old = Messages[i].File;
            Messages[i] = Messages[i] with { File = f };
            if (old.Flags != f.Flags) updates.Add($"* {i + 1} FETCH (UID {f.Uid} FLAGS ({flagsOf(Messages[i])}))");
        }
        int before = Messages.Count;
        foreach (var m in state.Messages)
            if (!known.ContainsKey(m.Uid) && m.Uid > Max(uid: true)) Messages.Add(new SelectedMessage(m));
        if (Messages.Count != before)
        {
            updates.Add($"* {Messages.Count} EXISTS");
            updates.Add($"* {Messages.Count(m => m.Recent)} RECENT");
        }
        UidNext = state.NextUid;
        return updates;
    }
}
