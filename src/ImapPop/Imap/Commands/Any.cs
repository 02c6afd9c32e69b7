// Commands valid in any state (RFC 9051 6.1): CAPABILITY, NOOP, LOGOUT; and
// NAMESPACE (RFC 2342) and ID (RFC 2971), small enough to share the file.
using System.Collections.Frozen;
using Mail.Shared.Logging;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> IdAsync(Args args)
    {
        // ID ( "name" "value" ... ) or NIL: logged, answered with our name.
        args.Space();
        if (args.TryChar('('))
        {
            var pairs = new List<string>();
            while (!args.TryChar(')'))
            {
                if (pairs.Count > 60) throw new ImapSyntaxException("Too many ID fields");
                if (pairs.Count > 0) args.Space();
                pairs.Add(args.String());
                args.Space();
                pairs.Add(args.NString() ?? "NIL");
            }
            Log.Info($"{conn.SessionId}: ID {MailLog.Safe(string.Join(' ', pairs), 300)}");
        }
        else if (!args.Atom().Equals("NIL", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Expected a list or NIL");
        args.End();
        await Untagged("ID (\"name\" \"Mail suite\")");
        return ImapResponse.Ok("ID completed.");
    }

    private async Task<ImapResponse> CapabilityAsync(Args args)
    {
        args.End();
        await Untagged($"CAPABILITY {Capabilities()}");
        return ImapResponse.Ok("Capability completed.");
    }

    private async Task<ImapResponse> NoopAsync(Args args)
    {
        args.End();
        return ImapResponse.Ok("NOOP completed."); // the news follow every command
    }

    private async Task<ImapResponse> LogoutAsync(Args args)
    {
        args.End();
        conn.BufferLine("* BYE Logging out");
        return ImapResponse.Ok("Logout completed.").AndClose();
    }

    private async Task<ImapResponse> NamespaceAsync(Args args)
    {
        args.End();
        await Untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        return ImapResponse.Ok("Namespace completed.");
    }
}
