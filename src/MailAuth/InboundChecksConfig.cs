// The checks as mtad.conf sets them (its spf_action, dkim_action, ... and
// dns_servers): mtad builds its checks here, and mailctl's `check` commands
// build the same ones from the same file, so both decide alike.
using Mail.Shared.Config;

namespace Mail.MailAuth;

public static class InboundChecksConfig
{
    /// <param name="dnsServers">Instead of dns_servers (mailctl check --dns).</param>
    /// <param name="recordDmarc">Keep every DMARC evaluation under spool_dir/dmarc for the aggregate reports (mtad only).</param>
    public static InboundChecks FromConfig(MailConfig config, string program, bool recordDmarc, IReadOnlyList<string>? dnsServers = null)
    {
        try
        {
            CheckAction A(string name) => InboundPolicy.ParseAction(config.Get(name));
            var policy = new InboundPolicy(A("spf_action"), A("dkim_action"), A("dmarc_action"), A("reverse_client_check"),
                A("client_hostname_check"), A("helo_syntax_check"), A("helo_hostname_check"), A("dnsbl_action"),
                config.GetList("dnsbl_sites").Select(DnsblSite.Parse).ToList(), (int)config.GetInt("dnsbl_threshold"),
                config.GetList("arc_trusted_sealers"), config.GetDuration("mail_auth_deadline"));
            var dns = new DnsResolver(dnsServers ?? config.GetList("dns_servers"), config.GetDuration("dns_timeout"));
            var psl = new PublicSuffixList(config.GetPath("public_suffix_list"));
            var recorder = recordDmarc ? new DmarcRecorder(Path.Combine(config.GetPath("spool_dir"), "dmarc")) : null;
            return new InboundChecks(dns, psl, config.Get("hostname"), policy, recorder);
        }
        catch (FormatException e) { throw new ConfigException($"{program}: {e.Message}"); }
        catch (IOException e) { throw new ConfigException($"{program}: public_suffix_list: {e.Message}"); }
    }
}
