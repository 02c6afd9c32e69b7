// ENABLE (RFC 5161): CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2 for the rest of the session.

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    /// <summary>The capabilities named, parsed to the end first: a bad one enables none of them.</summary>
    private static List<string> ParseEnable(Args args)
    {
        var caps = new List<string>();
        while (!args.AtEnd)
        {
            args.Space();
            if (caps.Count >= 20) throw new ImapSyntaxException("Too many capabilities");
            caps.Add(args.Atom().ToUpperInvariant());
        }
        if (caps.Count == 0) throw new ImapSyntaxException("Missing capability");
        return caps;
    }

    private async Task<ImapResponse> EnableAsync(Args args)
    {
        var enabled = new List<string>();
        foreach (var cap in ParseEnable(args))
        {
            if (enabled.Contains(cap)) continue;
            if (cap is "UTF8=ACCEPT" or "IMAP4REV2") { enabled.Add(cap); _utf8 = true; _rev2 |= cap == "IMAP4REV2"; }
            else if (cap == "CONDSTORE") { enabled.Add(cap); EnableCondStore(); }
            else if (cap == "QRESYNC") { enabled.Add(cap); EnableCondStore(); _qresync = true; }
        }
        if (_selected != null) { _selected.CondStore = _condstore; _selected.Vanished = _qresync; _selected.Rev2 = _rev2; }
        await Untagged("ENABLED" + string.Concat(enabled.Select(e => " " + e)));
        return ImapResponse.Ok("Enabled.");
    }
}
