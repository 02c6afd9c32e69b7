// What several IMAP commands share: dates (INTERNALDATE, RFC 9051 9 date-time),
// flag lists and sizes.
using System.Globalization;
using System.Text;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private static readonly string[] Months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

    private static string InternalDate(DateTimeOffset d) =>
        $"\"{d.Day,2}-{Months[d.Month - 1]}-{d.Year:D4} {d:HH:mm:ss} {(d.Offset < TimeSpan.Zero ? '-' : '+')}{Math.Abs(d.Offset.Hours):D2}{Math.Abs(d.Offset.Minutes):D2}\"";

    /// <summary>A message file's time (its internal date); FileNotFoundException when the name is gone (renamed or expunged by another).</summary>
    private static DateTimeOffset ReceivedDate(string path)
    {
        using var handle = MessageView.OpenFile(path);
        return new DateTimeOffset(File.GetLastWriteTimeUtc(handle), TimeSpan.Zero);
    }

    /// <summary>The internal date of a message wherever another session's rename has put it; null if it is gone.</summary>
    private static DateTimeOffset? InternalDateOf(Mail.Shared.Maildir.MaildirFolder folder, Mail.Shared.Maildir.FolderMessage m)
    {
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var path = attempt == 0 ? m.Path : folder.Locate(m);
            if (path == null) return null;
            try { return ReceivedDate(path); }
            catch (FileNotFoundException) { }
            catch (DirectoryNotFoundException) { return null; }
        }
        return null;
    }

    /// <summary>Flag names to Maildir letters; keywords get letters from dovecot-keywords.</summary>
    private string? Letters(MaildirFolder folder, IEnumerable<string> flags, out string? error)
    {
        error = null;
        var sb = new StringBuilder();
        foreach (var f in flags)
        {
            switch (f.ToUpperInvariant())
            {
                case "\\SEEN": sb.Append('S'); break;
                case "\\ANSWERED": sb.Append('R'); break;
                case "\\FLAGGED": sb.Append('F'); break;
                case "\\DELETED": sb.Append('T'); break;
                case "\\DRAFT": sb.Append('D'); break;
                case "\\RECENT": break;
                default:
                    if (f.StartsWith('\\')) { error = "Invalid system flag " + f; return null; }
                    var letter = folder.KeywordLetter(f);
                    if (letter == null) { error = "[LIMIT] Too many keywords"; return null; }
                    sb.Append(letter.Value);
                    break;
            }
        }
        return sb.ToString();
    }

    private static List<string> FlagListArg(Args args)
    {
        var flags = new List<string>();
        if (args.TryChar('('))
        {
            while (!args.TryChar(')'))
            {
                if (flags.Count > 0) args.Space();
                if (flags.Count > 100) throw new ImapSyntaxException("Too many flags");
                flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
            }
        }
        else
        {
            flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
            while (args.TryChar(' ')) flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
        }
        return flags;
    }
}
