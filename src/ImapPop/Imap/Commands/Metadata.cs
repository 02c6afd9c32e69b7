// GETMETADATA and SETMETADATA (RFC 5464): server and mailbox entries, with
// MAXSIZE and DEPTH, and the limits of MetadataStore (value size, entry count).
using Mail.Shared.Logging;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> GetMetadataAsync(Args args)
    {
        args.Space();
        long? maxSize = null;
        int depth = 0; // 0, 1, or int.MaxValue for "infinity"
        if (args.TryChar('('))
        {
            bool first = true;
            while (!args.TryChar(')'))
            {
                if (!first) args.Space();
                first = false;
                var option = args.Atom().ToUpperInvariant();
                args.Space();
                if (option == "MAXSIZE") maxSize = (long)args.Number64();
                else if (option == "DEPTH")
                {
                    var d = args.Atom().ToLowerInvariant();
                    depth = d switch { "0" => 0, "1" => 1, "infinity" => int.MaxValue, _ => throw new ImapSyntaxException("DEPTH is 0, 1 or infinity") };
                }
                else throw new ImapSyntaxException("Unknown GETMETADATA option " + MailLog.Safe(option, 30));
            }
            args.Space();
        }
        var (mailbox, error) = MetadataMailboxArg(args);
        args.Space();
        var entries = new List<string>();
        if (args.TryChar('('))
        {
            while (!args.TryChar(')'))
            {
                if (entries.Count > 0) args.Space();
                if (entries.Count == 100) throw new ImapSyntaxException("Too many entries");
                entries.Add(args.AString());
            }
        }
        else entries.Add(args.AString());
        args.End();
        if (error != null) return error.Value;
        var names = new List<string>();
        foreach (var e in entries)
        {
            if (MetadataStore.Normalize(e) is not { } n) return ImapResponse.Bad("Invalid entry name " + MailLog.Safe(e, 64));
            names.Add(n);
        }
        var all = MetadataStore.Read(_user!.Maildir);
        var found = new List<(string Entry, byte[] Value)>();
        long longest = 0;
        foreach (var ((box, entry), value) in all)
        {
            if (box != mailbox) continue;
            bool wanted = names.Any(n => entry == n || (depth > 0 && entry.StartsWith(n + "/", StringComparison.Ordinal)
                && (depth == int.MaxValue || !entry[(n.Length + 1)..].Contains('/'))));
            if (!wanted) continue;
            if (maxSize is { } max && value.Length > max) { longest = Math.Max(longest, value.Length); continue; }
            found.Add((entry, value));
        }
        if (found.Count > 0)
        {
            conn.BufferText($"* METADATA {Wire(mailbox!)} (");
            for (int i = 0; i < found.Count; i++)
            {
                if (i > 0) conn.BufferText(" ");
                conn.BufferText(MessageView.Quote(found[i].Entry) + " ");
                var v = found[i].Value;
                // A value goes as a literal (it may hold any byte; a NUL only in a literal8).
                conn.BufferText($"{(v.AsSpan().Contains((byte)0) ? "~" : "")}{{{v.Length}}}\r\n");
                conn.BufferBytes(v);
            }
            conn.BufferText(")\r\n");
        }
        return ImapResponse.Ok((longest > 0 ? $"[METADATA LONGENTRIES {longest}] " : "") + "Getmetadata completed.");
    }

    private async Task<ImapResponse> SetMetadataAsync(Args args)
    {
        args.Space();
        var (mailbox, error) = MetadataMailboxArg(args);
        args.Space();
        args.Expect('(');
        var changes = new List<(string Entry, byte[]? Value)>();
        while (!args.TryChar(')'))
        {
            if (changes.Count > 0) args.Space();
            if (changes.Count == 100) throw new ImapSyntaxException("Too many entries");
            var entry = args.AString();
            args.Space();
            byte[]? value;
            if (args.IsLiteralNext)
            {
                var literal = args.Literal();
                if (literal.Length > MetadataStore.MaxValue) value = new byte[MetadataStore.MaxValue + 1]; // refused below
                else
                {
                    using var s = literal.Open();
                    using var ms = new MemoryStream();
                    s.CopyTo(ms);
                    value = ms.ToArray();
                }
            }
            else value = args.NString() is { } text ? System.Text.Encoding.UTF8.GetBytes(text) : null;
            changes.Add((entry, value));
        }
        args.End();
        if (error != null) return error.Value;
        var normalized = new List<(string, byte[]?)>();
        foreach (var (e, v) in changes)
        {
            if (MetadataStore.Normalize(e) is not { } n || n is "/private" or "/shared") return ImapResponse.Bad("Invalid entry name " + MailLog.Safe(e, 64));
            if (v != null && v.Length > MetadataStore.MaxValue) return ImapResponse.No($"[METADATA MAXSIZE {MetadataStore.MaxValue}] Value too long");
            normalized.Add((n, v));
        }
        var refused = MetadataStore.Update(_user!.Maildir, _user.Uid, _user.Gid, all =>
        {
            foreach (var (e, v) in normalized)
            {
                if (v == null) all.Remove((mailbox!, e));
                else all[(mailbox!, e)] = v;
            }
            // All or nothing: past the limit, nothing of the command is kept.
            return all.Count > MetadataStore.MaxEntries ? (false, true) : (true, false);
        });
        if (refused) return ImapResponse.No("[METADATA TOOMANY] Too many entries");
        Log.Info($"{conn.SessionId}: setmetadata user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(mailbox!)}\" entries={normalized.Count}");
        return ImapResponse.Ok("Setmetadata completed.");
    }

    /// <summary>The mailbox argument of a METADATA command: "" (the server) or an existing mailbox; else the refusal.</summary>
    private (string? Mailbox, ImapResponse? Refusal) MetadataMailboxArg(Args args)
    {
        if (args.Peek() == '"' && args.TryEmptyQuoted()) return ("", null);
        var name = MailboxArg(args, out var error);
        if (error != null) return (name, ImapResponse.No(error));
        if (!FolderOf(name).Exists) return (name, ImapResponse.No("[NONEXISTENT] Mailbox doesn't exist: " + name));
        return (name, null);
    }
}
