// ENABLE (RFC 5161): CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2 for the rest of the session.

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> EnableAsync(Args args)
    {
        var enabled = new List<string>();
        while (!args.AtEnd)
        {
            args.Space();
            var cap = args.Atom().ToUpperInvariant();
            if (enabled.Contains(cap)) continue;
            if (cap is "UTF8=ACCEPT" or "IMAP4REV2") { enabled.Add(cap); _utf8 = true; _rev2 |= cap == "IMAP4REV2"; }
            else if (cap == "CONDSTORE") { enabled.Add(cap); _condstore = true; }
            else if (cap == "QRESYNC") { enabled.Add(cap); _condstore = _qresync = true; }
            if (_selected != null) { _selected.CondStore = _condstore; _selected.Vanished = _qresync; _selected.Rev2 = _rev2; }
        }
        await Untagged("ENABLED" + string.Concat(enabled.Select(e => " " + e)));
        return ImapResponse.Ok("Enabled.");
    }
}
