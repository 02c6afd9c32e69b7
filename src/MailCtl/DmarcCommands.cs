// mailctl dmarc reports [DOMAIN]: the DMARC aggregate reports other servers
// sent about our domains, summed up: per domain, who reported, how many
// messages passed or failed DMARC, and from which addresses. The reports are
// the messages in a mailbox (the postmaster's by default, every folder),
// read from its Maildir; each is a stranger's file, read by DmarcFeedback.
using System.CommandLine;
using Mail.MailAuth;
using Mail.Shared.Auth;
using MimeKit;

namespace Mail.MailCtl;

internal static class DmarcCommands
{
    private const int MaxMessages = 20_000;
    private const long MaxMessageSize = 20 << 20;

    public static Command Build()
    {
        var mtaConfig = new Option<string?>("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };
        var domain = new Argument<string?>("domain") { Description = "Only this domain's reports", Arity = ArgumentArity.ZeroOrOne };
        var mailbox = new Option<string?>("--mailbox") { Description = "The address that receives the reports (default: mtad.conf's postmaster_address)" };
        var maildir = new Option<string?>("--maildir") { Description = "Read this Maildir instead of asking AuthD where the mailbox is" };
        var reports = new Command("reports", "Sum up the aggregate reports others sent: sources, pass and fail, by address") { domain, mailbox, maildir };
        reports.SetAction((p, ct) => CtlContext.RunAsync(async () =>
        {
            var path = p.GetValue(maildir);
            if (path == null)
            {
                var address = p.GetValue(mailbox) ?? Mail.Queue.MtaSettings.Postmaster(CtlContext.LoadMtaConfig(p.GetValue(mtaConfig)));
                using var client = CtlContext.ConnectAuth(CtlContext.LoadConfig(p));
                var resolved = await client.Api.ResolveRecipientAsync(new ResolveRecipientRequest { Address = address, Client = AuthCommands.Local("mailctl") }, cancellationToken: ct);
                var local = resolved.Targets.FirstOrDefault(t => t.Local);
                if (resolved.Status != RecipientStatus.Ok || local == null)
                {
                    Console.Error.WriteLine($"mailctl: {address} is not a local mailbox here: give --mailbox or --maildir");
                    return CtlContext.ExitDataErr;
                }
                var user = await client.Api.LookupUserAsync(new LookupUserRequest { User = local.Mailbox, Client = AuthCommands.Local("mailctl") }, cancellationToken: ct);
                path = user.User.Maildir;
            }
            var only = p.GetValue(domain)?.Trim().TrimEnd('.').ToLowerInvariant();
            var found = Read(path).Where(f => only == null || f.Domain == only).ToList();
            if (found.Count == 0)
            {
                Console.WriteLine($"no DMARC aggregate reports{(only != null ? " for " + only : "")} in {path}");
                return 1;
            }
            foreach (var group in found.GroupBy(f => f.Domain).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var rows = group.SelectMany(f => f.Rows).ToList();
                long total = rows.Sum(r => r.Count), passed = rows.Where(r => r.DkimAligned || r.SpfAligned).Sum(r => r.Count);
                var reporters = group.Select(f => f.Reporter).Where(r => r.Length > 0).Distinct().Order(StringComparer.Ordinal).Select(InboundChecks.Printable);
                Console.WriteLine($"{group.Key}: {group.Count()} report{(group.Count() == 1 ? "" : "s")} from {string.Join(", ", reporters)}; " +
                                  $"{total} messages: {passed} pass DMARC, {total - passed} fail");
                Console.WriteLine($"  {"source",-40}{"messages",9}{"pass",7}{"fail",7}  disposition");
                foreach (var source in rows.GroupBy(r => r.SourceIp).OrderByDescending(s => s.Sum(r => r.Count)))
                {
                    long n = source.Sum(r => r.Count), ok = source.Where(r => r.DkimAligned || r.SpfAligned).Sum(r => r.Count);
                    var dispositions = string.Join(",", source.Select(r => InboundChecks.Printable(r.Disposition)).Distinct());
                    Console.WriteLine($"  {source.Key,-40}{n,9}{ok,7}{n - ok,7}  {dispositions}");
                }
            }
            return 0;
        }));
        return new Command("dmarc", "DMARC aggregate reports received from other servers") { mtaConfig, reports };
    }

    /// <summary>The reports in every folder of a Maildir (a report may have been filed away by a filter).</summary>
    private static IEnumerable<DmarcFeedback> Read(string maildir)
    {
        var folders = new[] { maildir }.Concat(Directory.Exists(maildir) ? Directory.EnumerateDirectories(maildir, ".*") : []);
        var files = folders.SelectMany(f => new[] { "cur", "new" }.Select(d => Path.Combine(f, d))).Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d)).Take(MaxMessages);
        foreach (var file in files)
        {
            if (new FileInfo(file).Length > MaxMessageSize) continue;
            MimeMessage message;
            try { message = MimeMessage.Load(file); }
            catch (Exception e) when (e is FormatException or IOException) { continue; }
            foreach (var part in message.BodyParts.OfType<MimePart>())
            {
                var name = part.FileName ?? "";
                bool report = part.ContentType.MimeType is "application/gzip" or "application/x-gzip" or "application/zip" or "application/x-zip-compressed"
                    or "text/xml" or "application/xml" || name.EndsWith(".xml.gz", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".zip", StringComparison.OrdinalIgnoreCase);
                if (!report || part.Content == null) continue;
                using var decoded = new MemoryStream();
                part.Content.DecodeTo(decoded);
                if (DmarcFeedback.Read(decoded.ToArray()) is { } feedback) yield return feedback;
            }
        }
    }
}
