// APPEND (RFC 9051 6.3.12, UIDPLUS RFC 4315 APPENDUID, LITERAL+ RFC 7888):
// through the Maildir library, converted once from CRLF.
using System.Globalization;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>An APPEND parsed: mailbox, flags, date-time and the message's literal (RFC 9051 6.3.12).</summary>
    private sealed record AppendQuery(MailboxArgument Mailbox, List<string> Flags, DateTimeOffset? Date, LiteralPart Literal);

    private AppendQuery ParseAppend(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.Space();
        var flags = new List<string>();
        if (args.Peek() == '(') { flags = FlagListArg(args); args.Space(); }
        DateTimeOffset? date = null;
        if (args.Peek() == '"')
        {
            var text = args.Quoted();
            if (!DateTimeOffset.TryParseExact(text.Trim(), ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var d))
            {
                // "zzz" wants +hh:mm; IMAP writes +hhmm.
                var fixedText = text.Trim();
                if (fixedText.Length > 5) fixedText = fixedText[..^2] + ":" + fixedText[^2..];
                if (!DateTimeOffset.TryParseExact(fixedText, ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out d))
                    throw new ImapSyntaxException("Invalid date-time");
            }
            date = d;
            args.Space();
        }
        var literal = args.Literal();
        args.End();
        return new AppendQuery(new(name, error), flags, date, literal);
    }

    private async Task<ImapResponse> AppendAsync(Args args)
    {
        var ((name, error), flags, date, literal) = ParseAppend(args);
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[TRYCREATE] Mailbox doesn't exist: " + name);
        var letters = Letters(folder, flags, out var flagError);
        if (letters == null) return ImapResponse.No(flagError!);
        if (!WithinQuota(literal.Length, 1)) return ImapResponse.No("[OVERQUOTA] Quota exceeded (mailbox for user is full)");
        string baseName;
        long size;
        using (var input = literal.Binary ? SevenBit(literal) : literal.Open())
            (baseName, size) = await folder.AppendAsync(input, date ?? DateTimeOffset.UtcNow, letters);
        MaildirQuota.Add(_user!.Maildir, size, 1);
        var state = folder.Sync(takeNew: false);
        var uid = state.Messages.FirstOrDefault(m => m.BaseName == baseName)?.Uid ?? 0;
        Log.Info($"{conn.SessionId}: append user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(name)}\" uid={uid} size={size}");
        if (_selected?.Name == name) await SendUpdatesAsync(allowExpunge: false);
        return ImapResponse.Ok($"[APPENDUID {state.UidValidity} {uid}] Append completed.");
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
        if (part.Content == null) return false;
        using var ms = new MemoryStream();
        part.Content.Stream.Position = 0;
        part.Content.Stream.CopyTo(ms);
        part.Content.Stream.Position = 0;
        return ms.GetBuffer().AsSpan(0, (int)ms.Length).Contains((byte)0);
    }
}
