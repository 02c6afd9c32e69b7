// mailctl lookup ADDRESS: where mail for an address goes, as `postmap -q`
// against virtual_alias_maps and virtual_mailbox_maps would tell.
using System.CommandLine;
using Mail.Shared.Auth;

namespace Mail.MailCtl;

internal static class LookupCommand
{
    public static Command Build()
    {
        var address = new Argument<string>("address") { Description = "The recipient address" };
        var cmd = new Command("lookup", "Resolve a recipient: our domain?, alias expansion, mailbox") { address };
        cmd.SetAction((parse, ct) => CtlContext.RunAsync(async () =>
        {
            var config = CtlContext.LoadConfig(parse);
            using var client = CtlContext.ConnectAuth(config);
            var text = parse.GetValue(address)!;
            var reply = await client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = text, Client = AuthCommands.Local("mailctl") }, cancellationToken: ct);
            Console.WriteLine($"address: {text}");
            switch (reply.Status)
            {
                case RecipientStatus.Ok:
                    Console.WriteLine("domain: ours");
                    foreach (var t in reply.Targets)
                        Console.WriteLine(t.Local
                            ? $"  -> {t.Address}  mailbox={t.Mailbox}{(t.Detail.Length > 0 ? "  folder-detail=" + t.Detail : "")}"
                            : $"  -> {t.Address}  (remote)");
                    return 0;
                case RecipientStatus.NotOurDomain:
                    Console.WriteLine("domain: not ours (relay decision belongs to the MTA)");
                    return 1;
                case RecipientStatus.Tempfail:
                    Console.Error.WriteLine($"mailctl: temporary failure: {reply.Reason}");
                    return CtlContext.ExitTempFail;
                default:
                    Console.WriteLine("domain: ours");
                    Console.WriteLine($"result: {reply.Status switch { RecipientStatus.Inactive => "mailbox disabled", RecipientStatus.Loop => "alias loop", _ => "unknown user" }}");
                    return 1;
            }
        }));
        return cmd;
    }
}
