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

    private static readonly HashSet<string> ListSelectionOptions = ["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"];
    private static readonly HashSet<string> ListReturnOptions = ["SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"];

    private static ListQuery ParseList(Args args, bool lsub)
    {
        args.Space();
        var selectOpts = new List<string>();
        if (!lsub && args.TryChar('('))
        {
            while (!args.TryChar(')')) { if (selectOpts.Count > 0) args.Space(); selectOpts.Add(args.Atom().ToUpperInvariant()); }
            args.Space();
            // RFC 5258 3: an unknown option is an error; RECURSIVEMATCH only modifies another.
            if (selectOpts.FirstOrDefault(o => !ListSelectionOptions.Contains(o)) is { } unknown)
                throw new ImapSyntaxException("Unknown LIST selection option " + Mail.Shared.Logging.MailLog.Safe(unknown, 30));
            if (selectOpts.Contains("RECURSIVEMATCH") && !selectOpts.Any(o => o is "SUBSCRIBED" or "SPECIAL-USE"))
                throw new ImapSyntaxException("RECURSIVEMATCH needs another selection option");
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
                if (!ListReturnOptions.Contains(opt)) throw new ImapSyntaxException("Unknown LIST return option " + Mail.Shared.Logging.MailLog.Safe(opt, 30));
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

    /// <summary>What LIST tells of a name: selected by the criteria, a parent with selected children beyond the pattern (CHILDINFO), or a level the pattern stops at.</summary>
    private sealed class ListEntry
    {
        public bool Selected, ChildInfo, Level;
    }

    /// <summary>The names a mailbox's hierarchy puts above it ("a/b/c": "a", "a/b").</summary>
    private static IEnumerable<string> Ancestors(string name)
    {
        for (int i = name.IndexOf(MailboxName.Separator); i > 0; i = name.IndexOf(MailboxName.Separator, i + 1)) yield return name[..i];
    }

    /// <summary>
    /// LIST and LSUB. The candidates are the existing mailboxes, or with SUBSCRIBED (and LSUB)
    /// the subscribed names, existing or not (\NonExistent: DELETE keeps a subscription, as
    /// Dovecot). A name above matching mailboxes that the pattern reaches while they lie beyond
    /// it ("%") is listed too: LIST shows a missing level as \Noselect; LSUB shows an unsubscribed
    /// parent of a subscribed mailbox as \Noselect (RFC 3501 6.3.9); with RECURSIVEMATCH a parent
    /// whose subscribed descendants the pattern does not reach carries CHILDINFO (RFC 5258 3.5).
    /// </summary>
    private async Task<ImapResponse> ListAsync(Args args, bool lsub)
    {
        var (selectOpts, reference, patterns, returnOpts, statusItems) = ParseList(args, lsub);
        if (patterns.Count == 1 && patterns[0].Length == 0 && !lsub)
        {
            await Untagged("LIST (\\Noselect) \"/\" \"\"");
            return ImapResponse.Ok("List completed.");
        }
        var folders = AllFolders();
        var exists = folders.ToHashSet(StringComparer.Ordinal);
        var subs = Subscriptions.Read(_user!.Maildir);
        bool subscribedOnly = lsub || selectOpts.Contains("SUBSCRIBED");
        bool specialOnly = selectOpts.Contains("SPECIAL-USE");
        bool recursive = selectOpts.Contains("RECURSIVEMATCH");
        var decodedRef = _utf8 ? reference : MailboxName.Decode(reference) ?? reference;
        var fullPatterns = patterns.Select(p => decodedRef + (_utf8 ? p : MailboxName.Decode(p) ?? p)).ToList();
        bool Match(string name) => fullPatterns.Any(p => Matches(name, p) || (name == "INBOX" && Matches("INBOX", p.ToUpperInvariant())));
        string? Special(string name) => SpecialUse.FirstOrDefault(s => s == name);
        bool Selected(string name) => (!subscribedOnly || subs.Contains(name)) && (!specialOnly || Special(name) != null) && (subscribedOnly || exists.Contains(name));

        // What the selection criteria pick, then the parents that the pattern reaches above them.
        var chosen = subscribedOnly ? subs.Where(n => lsub || !specialOnly || Special(n) != null) : folders.Where(Selected);
        var listed = new SortedDictionary<string, ListEntry>(Comparer<string>.Create((a, b) =>
            a == b ? 0 : a == "INBOX" ? -1 : b == "INBOX" ? 1 : string.CompareOrdinal(a, b)));
        ListEntry Entry(string name) => listed.TryGetValue(name, out var e) ? e : listed[name] = new ListEntry();
        foreach (var name in chosen)
        {
            if (Match(name)) { Entry(name).Selected = true; continue; }
            foreach (var parent in Ancestors(name))
            {
                if (!Match(parent)) continue;
                if (recursive) Entry(parent).ChildInfo = true;
                else if (lsub ? !subs.Contains(parent) : !subscribedOnly && !exists.Contains(parent)) Entry(parent).Level = true;
            }
        }
        foreach (var (name, entry) in listed)
        {
            var attrs = new List<string>();
            if (lsub)
            {
                if (!entry.Selected) attrs.Add("\\Noselect");
            }
            else
            {
                if (!exists.Contains(name)) attrs.Add(entry.Selected ? "\\NonExistent" : "\\Noselect");
                bool hasChildren = folders.Any(f => f.Length > name.Length + 1 && f[name.Length] == MailboxName.Separator && f.StartsWith(name, StringComparison.Ordinal));
                attrs.Add(hasChildren ? "\\HasChildren" : "\\HasNoChildren");
                if (Special(name) is { } special) attrs.Add("\\" + special);
                if ((subscribedOnly || returnOpts.Contains("SUBSCRIBED")) && subs.Contains(name)) attrs.Add("\\Subscribed");
            }
            var extended = entry.ChildInfo ? " (\"CHILDINFO\" (\"SUBSCRIBED\"))" : "";
            await Untagged($"{(lsub ? "LSUB" : "LIST")} ({string.Join(' ', attrs)}) \"/\" {Wire(name)}{extended}");
            if (statusItems.Length > 0 && exists.Contains(name)) await Untagged(StatusLine(name, statusItems));
        }
        return ImapResponse.Ok(lsub ? "Lsub completed." : "List completed.");
    }
}
