// mailctl dns DOMAIN: every DNS record to publish for a domain this server
// handles (MX, SPF, DKIM per live key, DMARC, the client SRV records, the
// server's address and its PTR), as zone-file lines. mailctl dns check DOMAIN:
// what is published, line by line: missing or wrong records, SPF that does
// not pass for the server (over 10 look-ups is a permerror), DKIM records that
// do not match the key (a key cut at 255 characters), no PTR or one that does
// not resolve back, the server's addresses on the DNS lists mtad is set up with.
// DNS answers are a stranger's text: printed through Printable.
using System.CommandLine;
using System.Net;
using Mail.MailAuth;
using Mail.Shared.Config;

namespace Mail.MailCtl;

internal static class DnsCommands
{
    private static readonly Option<string?> MtaConfig = new("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };
    private static readonly Option<string[]> Addresses = new("--address")
    {
        Description = "The server's public address (repeatable); default: the addresses of mtad.conf's hostname in DNS",
        Recursive = true, AllowMultipleArgumentsPerToken = true,
    };

    /// <summary>The SRV records of RFC 6186 and RFC 8314 by which mail clients find the servers.</summary>
    private static readonly (string Service, int Port)[] Services =
        [("_submissions._tcp", 465), ("_submission._tcp", 587), ("_imaps._tcp", 993), ("_imap._tcp", 143), ("_pop3s._tcp", 995)];

    public static Command Build()
    {
        var domain = new Argument<string>("domain") { Description = "A domain this server receives mail for" };
        var dns = new Option<string?>("--dns") { Description = "DNS server to ask (address[:port]) instead of mtad.conf's dns_servers" };
        var cmd = new Command("dns", "Print the DNS records to publish for a domain; `dns check` checks what is published") { MtaConfig, Addresses, domain, dns };
        cmd.SetAction((p, ct) => RunAsync(p, p.GetValue(dns), async (ctx) =>
        {
            var name = Domain(p.GetValue(domain)!);
            var addresses = await ctx.ServerAddressesAsync(p.GetValue(Addresses), ct);
            foreach (var line in Records(name, ctx.Hostname, ctx.Keyring?.KeysOf(name) ?? [], addresses)) Console.WriteLine(line);
            return 0;
        }));

        var checkDomain = new Argument<string>("domain") { Description = "The domain whose records to check" };
        var checkDns = new Option<string?>("--dns") { Description = "DNS server to ask (address[:port]) instead of mtad.conf's dns_servers" };
        var check = new Command("check", "Check a domain's published records against this server and its keys") { checkDomain, checkDns };
        check.SetAction((p, ct) => RunAsync(p, p.GetValue(checkDns), async ctx =>
        {
            var report = new Report();
            await CheckAsync(ctx, Domain(p.GetValue(checkDomain)!), p.GetValue(Addresses), report, ct);
            Console.WriteLine(report.Failures == 0 ? "all records are right" : $"{report.Failures} problem{(report.Failures == 1 ? "" : "s")} found");
            return report.Failures == 0 ? 0 : 1;
        }));
        cmd.Subcommands.Add(check);
        return cmd;
    }

    /// <summary>What the commands need from mtad.conf.</summary>
    private sealed record Context(string Hostname, DkimKeyring? Keyring, DnsResolver Dns, IReadOnlyList<DnsblSite> DnsLists)
    {
        /// <summary>The addresses given, or those of the hostname in DNS.</summary>
        public async Task<List<IPAddress>> ServerAddressesAsync(string[]? given, CancellationToken ct)
        {
            if (given is { Length: > 0 })
                return given.Select(a => IPAddress.TryParse(a, out var ip) ? ip : throw new FormatException($"'{a}' is not an IP address")).ToList();
            var v4 = await Dns.AddressesAsync(Hostname, ipv6: false, ct);
            var v6 = await Dns.AddressesAsync(Hostname, ipv6: true, ct);
            return [.. v4.Records, .. v6.Records];
        }
    }

    /// <summary>The records to publish, as zone-file lines with comments.</summary>
    internal static IEnumerable<string> Records(string domain, string hostname, IReadOnlyList<DkimSigningKey> keys, IReadOnlyList<IPAddress> addresses)
    {
        yield return $"; DNS records for {domain}, whose mail this server ({hostname}) receives and sends.";
        if (!hostname.Contains('.')) yield return $"; WARNING: hostname = {hostname} in mtad.conf is not a name others can look up: set it to the server's name.";
        yield return "; Mail for the domain goes to this server:";
        yield return $"{domain}. IN MX 10 {hostname}.";
        foreach (var ip in addresses)
            yield return $"{hostname}. IN {(ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "A" : "AAAA")} {ip}";
        if (addresses.Count == 0) yield return $"; (give the server's addresses with --address to get its A/AAAA and PTR records)";
        yield return "; SPF: only the domain's MX hosts send its mail:";
        yield return $"{domain}. IN TXT \"v=spf1 mx -all\"";
        yield return "; DKIM: one record per signing key (mailctl dkim list):";
        foreach (var key in keys) yield return DkimCommands.Zone(key);
        if (keys.Count == 0) yield return $"; (no key: make them with `mailctl dkim keygen {domain}`)";
        yield return "; DMARC: start with quarantine; aggregate reports go to the postmaster:";
        yield return $"_dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\"";
        yield return "; Mail clients find the servers (RFC 6186, RFC 8314):";
        foreach (var (service, port) in Services) yield return $"{service}.{domain}. IN SRV 0 1 {port} {hostname}.";
        yield return "; Reverse DNS, set by whoever owns each address (the hosting provider): the address names the server.";
        foreach (var ip in addresses) yield return $"{ip.GetArpaName().TrimEnd('.')}. IN PTR {hostname}.";
    }

    private sealed class Report
    {
        public int Failures;
        public void Ok(string what, string text) => Console.WriteLine($"ok    {what}: {text}");
        public void Warn(string what, string text) => Console.WriteLine($"warn  {what}: {text}");
        public void Fail(string what, string text)
        {
            Failures++;
            Console.WriteLine($"FAIL  {what}: {text}");
        }
    }

    private static string P(string text) => InboundChecks.Printable(text);

    private static async Task CheckAsync(Context ctx, string domain, string[]? given, Report report, CancellationToken ct)
    {
        var dns = ctx.Dns;
        var host = ctx.Hostname.TrimEnd('.');

        var mx = await dns.MxAsync(domain, ct);
        if (mx.Status == DnsStatus.TempError) report.Fail("MX", $"no answer ({P(mx.Error ?? "")})");
        else if (mx.Records.Count == 0) report.Fail("MX", $"none: publish {domain}. IN MX 10 {host}.");
        else if (mx.Records.Any(r => r.Host.TrimEnd('.').Equals(host, StringComparison.OrdinalIgnoreCase)))
            report.Ok("MX", string.Join(", ", mx.Records.OrderBy(r => r.Preference).Select(r => $"{r.Preference} {P(r.Host)}")));
        else report.Fail("MX", $"{string.Join(", ", mx.Records.Select(r => P(r.Host)))}: none is this server ({host})");

        var addresses = await ctx.ServerAddressesAsync(given, ct);
        if (addresses.Count == 0) report.Fail("address", $"{host} has no A or AAAA record");
        else report.Ok("address", $"{host} is {string.Join(", ", addresses)}");

        var txt = await dns.TxtAsync(domain, ct);
        var spf = txt.Records.Where(r => r.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase) && (r.Length == 6 || r[6] == ' ')).ToList();
        if (txt.Status == DnsStatus.TempError) report.Fail("SPF", $"no answer ({P(txt.Error ?? "")})");
        else if (spf.Count == 0) report.Fail("SPF", $"none: publish {domain}. IN TXT \"v=spf1 mx -all\"");
        else if (spf.Count > 1) report.Fail("SPF", $"{spf.Count} records: receivers treat that as a permanent error (RFC 7208 3.2); merge them into one");
        else
        {
            var checker = new SpfChecker(dns, host);
            bool passed = addresses.Count > 0;
            foreach (var ip in addresses)
            {
                var outcome = await checker.CheckMailFromAsync(ip, "postmaster@" + domain, host, ct);
                if (outcome.Result == SpfResult.Pass) continue;
                passed = false;
                var why = outcome.Result == SpfResult.PermError && (outcome.Mechanism ?? "").Contains("look-up", StringComparison.OrdinalIgnoreCase)
                    ? $"over {SpfChecker.LookupLimit} DNS look-ups ({P(outcome.Mechanism!)}): flatten includes" : P(outcome.Mechanism ?? outcome.Explanation ?? "");
                report.Fail("SPF", $"{SpfOutcome.Name(outcome.Result)} for this server's address {ip}: {why}");
            }
            if (passed) report.Ok("SPF", $"\"{P(spf[0])}\" passes for {string.Join(", ", addresses)}");
        }

        var keys = ctx.Keyring?.KeysOf(domain) ?? [];
        if (keys.Count == 0) report.Warn("DKIM", $"no signing key for {domain}: mail leaves unsigned (mailctl dkim keygen {domain})");
        foreach (var key in keys)
        {
            var published = await dns.TxtAsync(key.RecordName, ct);
            var want = Tags.Parse(key.TxtRecord());
            if (published.Status == DnsStatus.TempError) { report.Fail("DKIM", $"{key.RecordName}: no answer ({P(published.Error ?? "")})"); continue; }
            if (published.Records.Count == 0) { report.Fail("DKIM", $"{key.RecordName}: none: publish {DkimCommands.Zone(key)}"); continue; }
            if (published.Records.Count > 1)
            {
                report.Fail("DKIM", $"{key.RecordName}: {published.Records.Count} TXT records: publish the key as one record of several strings (at most 255 characters each)");
                continue;
            }
            var have = Tags.Parse(published.Records[0]);
            var p = new string(have.GetValueOrDefault("p", "").Where(ch => !char.IsWhiteSpace(ch)).ToArray());
            if (p == want["p"] && have.GetValueOrDefault("k", "rsa").Equals(want["k"], StringComparison.OrdinalIgnoreCase))
                report.Ok("DKIM", $"{key.RecordName} matches {key.Path} ({want["k"]})");
            else if (p.Length > 0 && want["p"].StartsWith(p, StringComparison.Ordinal))
                report.Fail("DKIM", $"{key.RecordName}: the key is cut short after {p.Length} of {want["p"].Length} characters: a TXT string holds at most 255; publish it as several strings: {DkimCommands.Zone(key)}");
            else report.Fail("DKIM", $"{key.RecordName}: does not match the key in {key.Path}: publish {DkimCommands.Zone(key)}");
        }

        var dmarcTxt = await dns.TxtAsync("_dmarc." + domain, ct);
        var dmarc = dmarcTxt.Records.Where(r => r.StartsWith("v=DMARC1", StringComparison.Ordinal)).ToList();
        if (dmarcTxt.Status == DnsStatus.TempError) report.Fail("DMARC", $"no answer ({P(dmarcTxt.Error ?? "")})");
        else if (dmarc.Count == 0) report.Fail("DMARC", $"none: publish _dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\"");
        else if (dmarc.Count > 1) report.Fail("DMARC", $"{dmarc.Count} records: receivers ignore them all (RFC 7489 6.6.3); keep one");
        else if (DmarcRecord.Parse(dmarc[0]) is not { } record) report.Fail("DMARC", $"\"{P(dmarc[0])}\" cannot be read (p= missing or wrong)");
        else if (record.P == DmarcPolicy.None) report.Warn("DMARC", $"\"{P(dmarc[0])}\": p=none asks receivers to act on nothing; move to quarantine when reports look right");
        else report.Ok("DMARC", $"\"{P(dmarc[0])}\"");

        var checker2 = new ClientChecker(dns);
        foreach (var ip in addresses)
        {
            var ptr = await dns.PtrAsync(ip, ct);
            if (ptr.Status == DnsStatus.TempError) { report.Fail("PTR", $"{ip}: no answer ({P(ptr.Error ?? "")})"); continue; }
            if (ptr.Records.Count == 0) { report.Fail("PTR", $"{ip} has no PTR record: ask its provider for {ip.GetArpaName().TrimEnd('.')}. IN PTR {host}."); continue; }
            var reverse = await checker2.ReverseAsync(ip, ct);
            if (reverse.Forward != Check.Pass) report.Fail("PTR", $"{ip} names {P(string.Join(", ", ptr.Records))}, which does not resolve back to {ip}");
            else if (!ptr.Records.Any(n => n.TrimEnd('.').Equals(host, StringComparison.OrdinalIgnoreCase)))
                report.Warn("PTR", $"{ip} names {P(reverse.Name ?? "")}, not {host} (the name mtad gives in HELO)");
            else report.Ok("PTR", $"{ip} names {host}, which resolves back");
        }

        if (ctx.DnsLists.Count > 0)
            foreach (var ip in addresses)
            {
                var listed = await checker2.DnsblAsync(ip, ctx.DnsLists, ct);
                var blocks = ctx.DnsLists.Where(s => s.Weight > 0 && listed.Listed.Any(l => l == s.Domain || l.StartsWith(s.Domain + "*", StringComparison.Ordinal))).Select(s => s.Domain).ToList();
                if (blocks.Count > 0) report.Fail("DNSBL", $"{ip} is listed on {string.Join(", ", blocks)}");
                else report.Ok("DNSBL", $"{ip} is on none of {string.Join(", ", ctx.DnsLists.Where(s => s.Weight > 0).Select(s => s.Domain))}");
                foreach (var e in listed.Errors) report.Warn("DNSBL", $"{P(e)} gave no answer for {ip}");
            }

        foreach (var (service, port) in Services)
        {
            var found = await dns.SrvAsync(service + "." + domain, ct);
            if (found.Records.Any(r => r.Port == port && r.Target.TrimEnd('.').Equals(host, StringComparison.OrdinalIgnoreCase))) report.Ok("SRV", $"{service}.{domain}: {host}:{port}");
            else report.Warn("SRV", $"{service}.{domain}: not published (clients then guess): {service}.{domain}. IN SRV 0 1 {port} {host}.");
        }
    }

    private static string Domain(string text)
    {
        var name = text.Trim().TrimEnd('.').ToLowerInvariant();
        return DnsResolver.IsQueryable(name) && name.Contains('.') ? name : throw new FormatException($"'{text}' is not a domain name");
    }

    private static async Task<int> RunAsync(ParseResult parse, string? dnsServer, Func<Context, Task<int>> body)
    {
        try
        {
            var config = CtlContext.LoadMtaConfig(parse.GetValue(MtaConfig));
            var keyDir = config.GetPath("dkim_key_dir");
            var dns = new DnsResolver(dnsServer != null ? [dnsServer] : config.GetList("dns_servers"), config.GetDuration("dns_timeout"));
            var ctx = new Context(config.Get("hostname"), keyDir.Length > 0 ? new DkimKeyring(keyDir) : null, dns,
                config.GetList("dnsbl_sites").Select(DnsblSite.Parse).ToList());
            return await body(ctx);
        }
        catch (ConfigException e) { Console.Error.WriteLine(e.Message); return CtlContext.ExitConfig; }
        catch (FormatException e) { Console.Error.WriteLine("mailctl: " + e.Message); return CtlContext.ExitUsage; }
    }
}
