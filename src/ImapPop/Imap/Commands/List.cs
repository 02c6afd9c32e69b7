// LIST and LSUB (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
// SPECIAL-USE RFC 6154).
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>Every folder of the user, INBOX first.</summary>
    private List<string> AllFolders()
    {
        var list = new List<string> { "INBOX" };
        foreach (var dir in Directory.EnumerateDirectories(_user!.Maildir, ".*"))
        {
            var name = MailboxName.FromDirectory(Path.GetFileName(dir));
            if (name != null && Directory.Exists(Path.Combine(dir, "cur"))) list.Add(name);
        }
        list.Sort((a, b) => a == "INBOX" ? -1 : b == "INBOX" ? 1 : string.CompareOrdinal(a, b));
        return list;
    }

    /// <summary>IMAP's list wildcards: "*" matches anything, "%" anything but the separator.</summary>
    private static bool Matches(string name, string pattern)
    {
        var rx = "^" + string.Concat(pattern.Select(c => c switch
        {
            '*' => ".*",
            '%' => "[^/]*",
            _ => System.Text.RegularExpressions.Regex.Escape(c.ToString()),
        })) + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(name, rx, System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1));
    }

    /// <summary>A LIST or LSUB parsed (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258 selection and return options, LIST-STATUS RFC 5819).</summary>
    private sealed record ListQuery(List<string> SelectOptions, string Reference, List<string> Patterns, List<string> ReturnOptions, string[] StatusItems);

    private static ListQuery ParseList(Args args, bool lsub)
    {
        args.Space();
        var selectOpts = new List<string>();
        if (!lsub && args.TryChar('('))
        {
            while (!args.TryChar(')')) { if (selectOpts.Count > 0) args.Space(); selectOpts.Add(args.Atom().ToUpperInvariant()); }
            args.Space();
        }
        var reference = args.AString();
        args.Space();
        var patterns = new List<string>();
        if (!lsub && args.TryChar('('))
        {
            while (!args.TryChar(')')) { if (patterns.Count > 0) args.Space(); patterns.Add(args.ListMailbox()); }
        }
        else patterns.Add(args.ListMailbox());
        var returnOpts = new List<string>();
        string[] statusItems = [];
        if (!lsub && !args.AtEnd)
        {
            args.Space();
            if (!args.Atom().Equals("RETURN", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected RETURN");
            args.Space();
            args.Expect('(');
            while (!args.TryChar(')'))
            {
                if (returnOpts.Count > 0) args.Space();
                var opt = args.Atom().ToUpperInvariant();
                returnOpts.Add(opt);
                if (opt == "STATUS")
                {
                    args.Space();
                    args.Expect('(');
                    var items = new List<string>();
                    while (!args.TryChar(')')) { if (items.Count > 0) args.Space(); items.Add(args.Atom().ToUpperInvariant()); }
                    statusItems = [.. items];
                }
            }
        }
        args.End();
        return new ListQuery(selectOpts, reference, patterns, returnOpts, statusItems);
    }

    private async Task<ImapResponse> ListAsync(Args args, bool lsub)
    {
        var (selectOpts, reference, patterns, returnOpts, statusItems) = ParseList(args, lsub);
        if (patterns.Count == 1 && patterns[0].Length == 0 && !lsub)
        {
            await Untagged("LIST (\\Noselect) \"/\" \"\"");
            return ImapResponse.Ok("List completed.");
        }
        var folders = AllFolders();
        var subs = Subscriptions.Read(_user!.Maildir);
        bool subscribedOnly = lsub || selectOpts.Contains("SUBSCRIBED");
        bool specialOnly = selectOpts.Contains("SPECIAL-USE");
        foreach (var name in folders)
        {
            var decodedRef = _utf8 ? reference : MailboxName.Decode(reference) ?? reference;
            if (!patterns.Any(p => Matches(name, decodedRef + (_utf8 ? p : MailboxName.Decode(p) ?? p)) ||
                                   (name == "INBOX" && Matches("INBOX", (decodedRef + p).ToUpperInvariant())))) continue;
            if (subscribedOnly && !subs.Contains(name)) continue;
            var attrs = new List<string>();
            bool hasChildren = folders.Any(f => f.StartsWith(name + "/", StringComparison.Ordinal));
            attrs.Add(hasChildren ? "\\HasChildren" : "\\HasNoChildren");
            var special = SpecialUse.FirstOrDefault(s => s == name);
            if (special != null) attrs.Add("\\" + special);
            if (specialOnly && special == null) continue;
            if ((selectOpts.Contains("SUBSCRIBED") || returnOpts.Contains("SUBSCRIBED")) && subs.Contains(name)) attrs.Add("\\Subscribed");
            if (lsub) attrs.RemoveAll(a => a is "\\HasChildren" or "\\HasNoChildren");
            await Untagged($"{(lsub ? "LSUB" : "LIST")} ({string.Join(' ', attrs)}) \"/\" {Wire(name)}");
            if (statusItems.Length > 0) await Untagged(StatusLine(name, statusItems));
        }
        return ImapResponse.Ok(lsub ? "Lsub completed." : "List completed.");
    }
}
