// mailctl check spf|dkim|dmarc: the MX's checks run by hand, as spfquery and
// dkimverify do, with mtad.conf's settings (or --dns for another DNS server).
// Each prints its results and the header lines mtad would add; the checks
// are the mail-authentication library's, the same code mtad runs.
using System.CommandLine;
using System.Net;
using Mail.MailAuth;
using MimeKit;

namespace Mail.MailCtl;

internal static class CheckCommands
{
    private static readonly Option<string?> MtaConfig = new("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };
    private static readonly Option<string?> Dns = new("--dns") { Description = "DNS server to ask (address[:port]) instead of mtad.conf's dns_servers", Recursive = true };

    public static Command Build()
    {
        var cmd = new Command("check", "Run the MX's mail-authentication checks by hand (SPF, DKIM, DMARC)") { MtaConfig, Dns };

        var ip = new Argument<string>("ip") { Description = "The client's address" };
        var sender = new Argument<string>("sender") { Description = "MAIL FROM address (empty for a bounce)" };
        var helo = new Option<string?>("--helo") { Description = "The client's HELO name" };
        var spf = new Command("spf", "SPF for a client address and MAIL FROM, and for the HELO name (as spfquery)") { ip, sender, helo };
        spf.SetAction((p, ct) => RunAsync(p, async checks =>
        {
            var address = ParseIp(p.GetValue(ip)!);
            var from = p.GetValue(sender) ?? "";
            var heloName = p.GetValue(helo) ?? "unknown";
            var (mailFrom, heloResult) = await checks.CheckSpfAsync(address, from, heloName, ct);
            if (from.Length > 0) Console.WriteLine($"mailfrom: {SpfOutcome.Name(mailFrom.Result)} ({mailFrom.Mechanism}){(mailFrom.Explanation != null ? ": " + mailFrom.Explanation : "")}");
            Console.WriteLine($"helo: {SpfOutcome.Name(heloResult.Result)} ({heloResult.Mechanism})");
            var results = new AuthResults(checks.Hostname);
            InboundChecks.AddSpf(results, mailFrom, heloResult, from, heloName);
            Console.Write(checks.ReceivedSpfHeader(from.Length > 0 ? mailFrom : heloResult, address, heloName));
            Console.Write(results.Header);
            return 0;
        }));

        var file = new Argument<string>("file") { Description = "The message (RFC 5322), or - for standard input" };
        var dkim = new Command("dkim", "Verify every DKIM signature of a message (as dkimverify)") { file };
        dkim.SetAction((p, ct) => RunAsync(p, async checks =>
        {
            var message = await LoadAsync(p.GetValue(file)!, ct);
            var outcomes = await checks.VerifyDkimAsync(message, ct);
            foreach (var d in outcomes)
                Console.WriteLine($"d={d.Domain} s={d.Selector} a={d.Algorithm}: {d.Result}{(d.Reason != null ? " (" + d.Reason + ")" : "")}");
            if (outcomes.Count == 0) Console.WriteLine("no DKIM signature");
            var results = new AuthResults(checks.Hostname);
            InboundChecks.AddDkim(results, outcomes);
            Console.Write(results.Header);
            return outcomes.Any(d => d.Result == "pass") ? 0 : 1;
        }));

        var dmarcFile = new Argument<string>("file") { Description = "The message (RFC 5322), or - for standard input" };
        var clientIp = new Option<string>("--ip") { Description = "The client's address", Required = true };
        var mailFromOption = new Option<string>("--mail-from") { Description = "MAIL FROM address", Required = true };
        var dmarcHelo = new Option<string?>("--helo") { Description = "The client's HELO name" };
        var dmarc = new Command("dmarc", "Every check mtad runs on a message from a stranger, and what it would do with it") { dmarcFile, clientIp, mailFromOption, dmarcHelo };
        dmarc.SetAction((p, ct) => RunAsync(p, async checks =>
        {
            var message = await LoadAsync(p.GetValue(dmarcFile)!, ct);
            var address = ParseIp(p.GetValue(clientIp)!);
            var from = p.GetValue(mailFromOption)!;
            var heloName = p.GetValue(dmarcHelo) ?? "unknown";
            var (reverse, dnsbl) = await checks.CheckAddressAsync(address, ct);
            var heloExists = await checks.CheckHeloAsync(heloName, ct);
            var client = new ClientResults(address, heloName, reverse, heloExists, dnsbl);
            var (mailFrom, heloSpf) = await checks.CheckSpfAsync(address, from, heloName, ct);
            var atRcpt = checks.AtRcpt(client, mailFrom);
            var results = atRcpt.Refused
                ? null
                : await checks.CheckMessageAsync(message, client, from, mailFrom, heloSpf, atRcpt, ct);
            var refusal = atRcpt.Refusal ?? results?.Verdict.Refusal;
            if (results != null) Console.WriteLine(results.Verdict.Log);
            Console.WriteLine(refusal is { } r ? $"mtad would refuse it{(atRcpt.Refused ? " at RCPT" : " at the end of DATA")}: {r}"
                : results!.Verdict.Junk.Count > 0 ? "mtad would deliver it to Junk" : "mtad would deliver it");
            if (results != null) Console.Write(results.Headers);
            return refusal == null ? 0 : 1;
        }));
        foreach (var c in new[] { spf, dkim, dmarc }) cmd.Subcommands.Add(c);
        return cmd;
    }

    private static IPAddress ParseIp(string text) =>
        IPAddress.TryParse(text, out var ip) ? ip : throw new FormatException($"'{text}' is not an IP address");

    private static async Task<MimeMessage> LoadAsync(string path, CancellationToken ct)
    {
        if (path == "-")
        {
            using var buffer = new MemoryStream();
            await Console.OpenStandardInput().CopyToAsync(buffer, ct);
            buffer.Position = 0;
            return await MimeMessage.LoadAsync(buffer, ct);
        }
        return await MimeMessage.LoadAsync(path, ct);
    }

    private static async Task<int> RunAsync(ParseResult parse, Func<InboundChecks, Task<int>> body)
    {
        try
        {
            var config = CtlContext.LoadMtaConfig(parse.GetValue(MtaConfig));
            var dns = parse.GetValue(Dns);
            var checks = InboundChecksConfig.FromConfig(config, "mailctl", recordDmarc: false, dns == null ? null : [dns]);
            return await body(checks);
        }
        catch (Mail.Shared.Config.ConfigException e) { Console.Error.WriteLine(e.Message); return CtlContext.ExitConfig; }
        catch (FormatException e) { Console.Error.WriteLine("mailctl: " + e.Message); return CtlContext.ExitUsage; }
        catch (IOException e) { Console.Error.WriteLine("mailctl: " + e.Message); return CtlContext.ExitDataErr; }
    }
}
