// APPEND (RFC 9051 6.3.12, UIDPLUS RFC 4315 APPENDUID, LITERAL+ RFC 7888), with
// MULTIAPPEND (RFC 3502: several messages, all or none) and CATENATE (RFC 4469: a
// message put together from literals and parts of stored messages named by IMAP
// URLs): through the Maildir library, converted once from CRLF.
using System.Globalization;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>One message of an APPEND: flags, date-time, and its literal or its CATENATE parts (a literal, or an IMAP URL).</summary>
    private sealed record AppendMessage(List<string> Flags, DateTimeOffset? Date, LiteralPart? Literal, List<object>? Catenate);

    /// <summary>An APPEND parsed: the mailbox and its messages (RFC 9051 6.3.12, RFC 3502, RFC 4469).</summary>
    private sealed record AppendQuery(MailboxArgument Mailbox, List<AppendMessage> Messages);

    private const int MaxCatenateParts = 50;

    private AppendQuery ParseAppend(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        var messages = new List<AppendMessage>();
        do
        {
            args.Space();
            var flags = new List<string>();
            if (args.Peek() == '(') { flags = FlagListArg(args); args.Space(); }
            DateTimeOffset? date = null;
            if (args.Peek() == '"')
            {
                date = AppendDate(args.Quoted());
                args.Space();
            }
            if (args.Peek() is 'C' or 'c')
            {
                if (!args.Atom().Equals("CATENATE", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected a literal or CATENATE");
                args.Space();
                args.Expect('(');
                var parts = new List<object>();
                while (!args.TryChar(')'))
                {
                    if (parts.Count > 0) args.Space();
                    if (parts.Count == MaxCatenateParts) throw new ImapSyntaxException("Too many CATENATE parts");
                    var kind = args.Atom().ToUpperInvariant();
                    args.Space();
                    parts.Add(kind switch
                    {
                        "TEXT" => args.Literal(),
                        "URL" => args.AString(),
                        _ => throw new ImapSyntaxException("Unknown CATENATE part " + MailLog.Safe(kind, 20)),
                    });
                }
                if (parts.Count == 0) throw new ImapSyntaxException("Empty CATENATE");
                messages.Add(new AppendMessage(flags, date, null, parts));
            }
            else messages.Add(new AppendMessage(flags, date, args.Literal(), null));
        }
        while (!args.AtEnd);
        return new AppendQuery(new(name, error), messages);
    }

    private static DateTimeOffset AppendDate(string text)
    {
        if (DateTimeOffset.TryParseExact(text.Trim(), ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var d))
            return d;
        // "zzz" wants +hh:mm; IMAP writes +hhmm.
        var fixedText = text.Trim();
        if (fixedText.Length > 5) fixedText = fixedText[..^2] + ":" + fixedText[^2..];
        return DateTimeOffset.TryParseExact(fixedText, ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out d)
            ? d : throw new ImapSyntaxException("Invalid date-time");
    }

    private async Task<ImapResponse> AppendAsync(Args args)
    {
        var ((name, error), messages) = ParseAppend(args);
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[TRYCREATE] Mailbox doesn't exist: " + name);
        var letters = new List<string>();
        foreach (var m in messages)
        {
            if (Letters(folder, m.Flags, out var flagError) is not { } l) return ImapResponse.No(flagError!);
            letters.Add(l);
        }
        // Each message's content: a literal, or its CATENATE parts put together (a bad URL refuses all).
        var contents = new List<Stream>();
        try
        {
            foreach (var m in messages)
            {
                if (m.Literal != null) { contents.Add(m.Literal.Binary ? SevenBit(m.Literal) : m.Literal.Open()); continue; }
                var (joined, refusal) = Catenated(m.Catenate!);
                if (joined == null) return refusal;
                contents.Add(joined);
            }
            long total = contents.Sum(c => c.Length);
            if (!WithinQuota(total, messages.Count)) return ImapResponse.No("[OVERQUOTA] Quota exceeded (mailbox for user is full)");
            // All or none (RFC 3502): what was stored before a failure is taken out again. Each
            // message gets its UID as it is stored, so UIDs follow the command's order whatever
            // dates the messages carry (a sync numbers new files by their time).
            var stored = new List<(string BaseName, long Size)>();
            var uids = new List<uint>();
            FolderState state = null!; // the parse gives at least one message
            try
            {
                for (int i = 0; i < messages.Count; i++)
                {
                    var added = await folder.AppendAsync(contents[i], messages[i].Date ?? DateTimeOffset.UtcNow, letters[i]);
                    stored.Add(added);
                    state = folder.Sync(takeNew: false);
                    uids.Add(state.Messages.FirstOrDefault(m => m.BaseName == added.BaseName)?.Uid ?? 0);
                }
            }
            catch
            {
                foreach (var (baseName, _) in stored) folder.Remove(baseName);
                throw;
            }
            MaildirQuota.Add(_user!.Maildir, stored.Sum(x => x.Size), stored.Count);
            foreach (var ((_, size), uid) in stored.Zip(uids))
                Log.Info($"{conn.SessionId}: append user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(name)}\" uid={uid} size={size}");
            if (_selected?.Name == name) await SendUpdatesAsync(allowExpunge: false);
            var uidSet = uids.All(u => u > 0) ? SequenceSet.Compact(uids) : string.Join(',', uids);
            return ImapResponse.Ok($"[APPENDUID {state.UidValidity} {uidSet}] Append completed.");
        }
        finally
        {
            foreach (var c in contents) c.Dispose();
        }
    }

    /// <summary>
    /// A CATENATE message (RFC 4469 5): its TEXT literals and the parts its URLs name, in order,
    /// as one stream; null with NO [BADURL] when a URL names nothing this user may read, or
    /// [TOOBIG] when the whole exceeds the largest message.
    /// </summary>
    private (Stream?, ImapResponse) Catenated(List<object> parts)
    {
        var joined = new MemoryStream();
        foreach (var part in parts)
        {
            if (part is LiteralPart literal)
            {
                using var text = literal.Open();
                text.CopyTo(joined);
            }
            else if (UrlPart((string)part) is { } bytes) joined.Write(bytes);
            else
            {
                joined.Dispose();
                return (null, ImapResponse.No($"[BADURL {MessageView.Quote(MailLog.Safe((string)part, 200))}] Unknown or invalid URL"));
            }
            if (joined.Length > options.MaxMessageSize)
            {
                joined.Dispose();
                return (null, ImapResponse.No("[TOOBIG] Message too big"));
            }
        }
        joined.Position = 0;
        return (joined, default);
    }

    /// <summary>
    /// The bytes an IMAP URL names (RFC 5092: "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]",
    /// or "/;UID=..." in the selected mailbox; "imap://user@host" before it is allowed), among this
    /// user's own mailboxes only; null if it names nothing.
    /// </summary>
    private byte[]? UrlPart(string url)
    {
        if (url.StartsWith("imap://", StringComparison.OrdinalIgnoreCase))
        {
            var slash = url.IndexOf('/', 7);
            if (slash < 0) return null;
            url = url[slash..];
        }
        if (!url.StartsWith('/')) return null;
        var pieces = url[1..].Split("/;", StringSplitOptions.None);
        string? mailboxText = pieces[0];
        uint? validity = null;
        int semi = mailboxText.IndexOf(";UIDVALIDITY=", StringComparison.OrdinalIgnoreCase);
        if (semi >= 0)
        {
            if (!uint.TryParse(mailboxText[(semi + 13)..], NumberStyles.None, CultureInfo.InvariantCulture, out var v)) return null;
            validity = v;
            mailboxText = mailboxText[..semi];
        }
        uint uid = 0;
        string? section = null;
        (long Offset, long? Length)? partial = null;
        foreach (var piece in pieces.Skip(1))
        {
            int eq = piece.IndexOf('=');
            if (eq < 0) return null;
            var value = Uri.UnescapeDataString(piece[(eq + 1)..]);
            switch (piece[..eq].ToUpperInvariant())
            {
                case "UID" when uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var u) && u > 0: uid = u; break;
                case "SECTION": section = value; break;
                case "PARTIAL":
                    var dot = value.IndexOf('.');
                    if (!long.TryParse(dot < 0 ? value : value[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var offset)) return null;
                    long? length = null;
                    if (dot >= 0) { if (!long.TryParse(value[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var l) || l == 0) return null; length = l; }
                    partial = (offset, length);
                    break;
                default: return null;
            }
        }
        if (uid == 0) return null;
        string mailbox;
        if (mailboxText.Length == 0)
        {
            if (_selected == null) return null;
            mailbox = _selected.Name;
        }
        else
        {
            var raw = Uri.UnescapeDataString(mailboxText);
            var decoded = _utf8 ? raw : MailboxName.Decode(raw);
            if (decoded == null) return null;
            mailbox = MailboxName.Normalize(decoded);
            if (mailbox != "INBOX" && MailboxName.Validate(mailbox) != null) return null;
        }
        var folder = FolderOf(mailbox);
        if (!folder.Exists) return null;
        var state = folder.Sync(takeNew: false);
        if (validity != null && validity != state.UidValidity) return null;
        var message = state.Messages.FirstOrDefault(m => m.Uid == uid);
        if (message == null || folder.Locate(message) is not { } path) return null;
        byte[]? bytes;
        try
        {
            var view = MessageView.Load(path);
            if (section == null) bytes = view.Section(new Section([], "", []));
            else
            {
                var args = new Args([new LinePart(section + "]")]);
                Section parsed;
                try { parsed = SectionArg(args); args.Expect(']'); }
                catch (ImapSyntaxException) { return null; }
                bytes = view.Section(parsed);
            }
        }
        catch (FileNotFoundException) { return null; }
        if (bytes == null) return null;
        if (partial is var (from, count))
        {
            var start = (int)Math.Min(from, bytes.Length);
            var take = (int)Math.Min(count ?? long.MaxValue, bytes.Length - start);
            bytes = bytes.AsSpan(start, take).ToArray();
        }
        return bytes;
    }

    /// <summary>
    /// A message APPENDed as a binary literal (RFC 3516 4.1) with its binary parts made base64, as
    /// Dovecot stores one: a Maildir keeps lines, so bare CRs, bare LFs and NULs of a binary part
    /// would not survive, and BODY[] must stay text. BINARY[part] decodes the base64 back to the
    /// exact bytes. A message with no binary part is stored as it came.
    /// </summary>
    private static Stream SevenBit(LiteralPart literal)
    {
        var input = literal.Open();
        MimeKit.MimeMessage message;
        try { message = MimeKit.MimeMessage.Load(input); }
        catch (FormatException) { input.Position = 0; return input; }
        bool changed = false;
        foreach (var part in message.BodyParts.OfType<MimeKit.MimePart>())
        {
            if (part.ContentTransferEncoding is not (MimeKit.ContentEncoding.Binary or MimeKit.ContentEncoding.EightBit or MimeKit.ContentEncoding.Default)) continue;
            if (part.ContentTransferEncoding != MimeKit.ContentEncoding.Binary && !HasNul(part)) continue;
            part.ContentTransferEncoding = MimeKit.ContentEncoding.Base64;
            changed = true;
        }
        if (!changed) { input.Position = 0; return input; }
        var converted = new MemoryStream();
        message.WriteTo(converted);
        converted.Position = 0;
        input.Dispose();
        return converted;
    }

    private static bool HasNul(MimeKit.MimePart part)
    {
        if (part.Content?.Stream is not { } content) return false;
        using var ms = new MemoryStream();
        content.Position = 0;
        content.CopyTo(ms);
        content.Position = 0;
        return ms.GetBuffer().AsSpan(0, (int)ms.Length).Contains((byte)0);
    }
}
