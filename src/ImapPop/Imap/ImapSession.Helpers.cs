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

    private static DateTimeOffset ReceivedDate(string path)
    {
        try { return new DateTimeOffset(File.GetLastWriteTimeUtc(path), TimeSpan.Zero); }
        catch (IOException) { return DateTimeOffset.UnixEpoch; }
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
