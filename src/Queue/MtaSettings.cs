// The MTA's configuration parameters (mtad.conf); mailctl reads the same file for the queue tools.
using Mail.Shared.Config;

namespace Mail.Queue;

public static class MtaSettings
{
    /// <summary>postmaster_address, or postmaster@ the hostname without its first label (mx.example.org: postmaster@example.org).</summary>
    public static string Postmaster(MailConfig config)
    {
        var configured = config.Get("postmaster_address");
        if (configured.Length > 0) return configured;
        var host = config.Get("hostname");
        int dot = host.IndexOf('.');
        return "postmaster@" + (dot > 0 && host.IndexOf('.', dot + 1) > 0 ? host[(dot + 1)..] : host);
    }

    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Text("mx_listen", "*:25", "SMTP for mail from the world (MX), comma-separated host:port; empty for none."),
        Setting.Text("submission_listen", "*:587", "Submission (STARTTLS, AUTH required); empty for none."),
        Setting.Text("submissions_listen", "*:465", "Submission over implicit TLS (AUTH required); empty for none."),
        Setting.Path("pickup_socket", "/run/mail/pickup", "Unix socket where the sendmail command hands over local mail (mode 0666: any local user may send, as with Postfix's maildrop); empty for none."),
        Setting.Path("tls_cert", "/etc/mail/tls/cert.pem", "TLS certificate (PEM)."),
        Setting.Path("tls_key", "/etc/mail/tls/key.pem", "TLS private key (PEM)."),
        Setting.Bool("mx_auth", false, "Offer AUTH on the MX port too (Postfix's smtpd_sasl_auth_enable on port 25): only after STARTTLS, or from loopback, and a client logged in relays as on 587. Off: AUTH there is refused with a pointer to the submission ports."),
        Setting.Choice("smtpd_tls_security_level", "may", "TLS on the MX listener: may (STARTTLS offered) or encrypt (nothing but EHLO, HELO, STARTTLS, NOOP, RSET and QUIT before STARTTLS; RFC 3207 forbids this on a public MX, it suits a private relay). Submission always needs TLS except from loopback.", "may", "encrypt"),
        Setting.Choice("smtpd_forbid_bare_newline", "normalize", "A DATA line ended by a bare LF: normalize (taken as if it ended in CRLF; DATA still ends only at CRLF.CRLF) or reject (521 and the session ends, except for mynetworks and logged-in clients), as Postfix 3.9's setting. A bare CR is always refused.", "normalize", "reject"),
        Setting.List("mynetworks", "127.0.0.0/8 ::1/128", "Clients that may relay without AUTH (as Postfix's mynetworks)."),
        Setting.Path("authd_socket", "/run/mail/authd.sock", "AuthD's gRPC socket."),
        Setting.Text("recipient_delimiter", "+", "With auth_backend = dovecot: characters that separate a user from an address extension (user+detail@domain), as AuthD's own setting; empty for none."),
        Setting.Path("control_socket", "/run/mail/mtad.ctl", "Unix socket (mode 0600) through which mailctl's queue commands act on the queue at once."),
        Setting.Duration("recipient_cache_ttl", "5s", "How long a recipient that AuthD found deliverable is remembered (a removed mailbox is noticed within this); 0 asks AuthD every time."),
        Setting.Path("spool_dir", "/var/spool/mail-suite", "The queue: incoming, active, deferred, hold, corrupt."),
        Setting.Text("lmtp_destination", "unix:/run/mail/lmtp", "Where local mail goes: unix:PATH or host:port of an LMTP server (ours or Dovecot's)."),
        Setting.Text("hostname", Environment.MachineName, "Name in the greeting, EHLO reply and Received headers."),
        Setting.Text("postmaster_address", "", "Where mail to <postmaster> with no domain goes (RFC 5321 4.5.1); empty: postmaster@ the hostname's domain (mx.example.org: postmaster@example.org)."),
        Setting.Size("max_message_size", "50M", "Largest message accepted (SIZE); larger ones get 552 5.3.4."),
        Setting.Int("max_recipients", 1000, 1, 100000, "Recipients per message; more get 452 4.5.3."),
        Setting.Duration("idle_timeout", "5m", "A silent client is disconnected after this long."),
        Setting.Duration("stress_timeout", "10s", "The timeout instead of idle_timeout while three quarters of max_connections are taken (Postfix's stress-dependent smtpd_timeout)."),
        Setting.Int("min_data_rate", 500, 1, 1000000000, "Bytes per second DATA and BDAT must keep up to earn time beyond the timeout (Postfix's smtpd_min_data_rate); a command line must arrive whole within the timeout."),
        Setting.Int("max_connections", 500, 1, 100000, "SMTP connections at once."),
        Setting.Int("max_connections_per_ip", 50, 1, 100000, "SMTP connections at once from one client address."),
        Setting.Duration("retry_min", "5m", "First retry delay of a deferred message; doubles up to retry_max (Postfix: minimal_backoff_time)."),
        Setting.Duration("retry_max", "4000s", "Longest retry delay (Postfix: maximal_backoff_time)."),
        Setting.Duration("queue_lifetime", "5d", "A message undeliverable this long is bounced (Postfix: maximal_queue_lifetime)."),
        Setting.Duration("delay_warning_time", "4h", "A sender whose message is still queued after this long is told once (RFC 3464 \"delayed\"); 0 for never (Postfix's default is 0)."),
        Setting.Int("max_deliveries", 100, 1, 10000, "Messages in delivery at once (Postfix: default_process_limit)."),
        Setting.Int("destination_concurrency", 20, 1, 1000, "Deliveries at once to one destination (Postfix: default_destination_concurrency_limit)."),
        Setting.Text("relayhost", "", "Next hop for mail to other domains: empty sends to each domain's MX hosts; [host]:port as it stands, host or host:port by its MX records (as Postfix's relayhost)."),
        Setting.Bool("smtp_sasl_auth_enable", false, "Log in to the relay host (or other servers) with the user and password smtp_sasl_password_maps gives for it; AUTH PLAIN or LOGIN, after STARTTLS only (a server without STARTTLS gets no password; the mail waits)."),
        Setting.Path("smtp_sasl_password_maps", "", "Postfix's password table (the source file postmap reads): \"[host]:port user:password\" lines keyed as relayhost writes the next hop, or by host or destination domain; with smtp_sender_dependent_authentication also by sender (user@domain, @domain). Readable by mtad alone; read again when changed."),
        Setting.Bool("smtp_sender_dependent_authentication", false, "Look the login up by the sender's address first (Postfix's setting of that name)."),
        Setting.Path("sender_dependent_relayhost_maps", "", "Relay host per sender: \"user@domain [host]:port\" or \"@domain host\" lines (Postfix's table of that name), instead of relayhost for those senders."),
        Setting.Int("smtp_port", 25, 1, 65535, "Port of other domains' MX hosts (25; a test network may use another)."),
        Setting.List("dns_servers", "", "DNS servers for MX look-ups (address[:port], comma-separated); empty: those of /etc/resolv.conf."),
        Setting.List("defer_transports", "", "Transports whose mail waits in the queue (as Postfix's defer_transports): \"smtp\" keeps mail for other domains queued until it is removed from this list."),
        Setting.Choice("smtp_tls_security_level", "may", "TLS to other domains' hosts: may (STARTTLS when offered), encrypt (only with TLS), none.", "may", "encrypt", "none"),
        Setting.Choice("spf_action", "tag", "SPF of MAIL FROM on the MX (RFC 7208), for clients neither logged in nor in mynetworks: reject (550 5.7.23 at RCPT on fail, 451 4.7.24 on a DNS error), junk (fail goes to the Junk folder), tag (Authentication-Results and Received-SPF only), off.", "reject", "junk", "tag", "off"),
        Setting.Choice("dkim_action", "tag", "DKIM signatures on the MX (RFC 6376): reject (550 5.7.20 when signatures fail and none passes), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.Choice("dmarc_action", "reject", "DMARC on the MX (RFC 7489): reject (the sender's policy honoured: p=reject is 550 5.7.1, p=quarantine goes to Junk), junk (both go to Junk), tag, off.", "reject", "junk", "tag", "off"),
        Setting.Choice("reverse_client_check", "tag", "A client address without a PTR record (Postfix's reject_unknown_reverse_client_hostname): reject (450 4.7.25), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.Choice("client_hostname_check", "tag", "A client whose PTR name does not resolve back to its address (reject_unknown_client_hostname, FCrDNS): reject (450 4.7.25), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.Choice("helo_syntax_check", "tag", "A HELO name that is not a host name or address literal (reject_invalid_helo_hostname): reject (501 5.5.2), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.Choice("helo_hostname_check", "tag", "A HELO name with no A, AAAA or MX record (reject_unknown_helo_hostname): reject (450 4.7.1), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.List("dnsbl_sites", "", "DNS block- and allow-lists in postscreen_dnsbl_sites syntax, queried at once: domain[=filter][*weight], e.g. zen.example=127.0.0.[2..11]*3, list.dnswl.example=127.0.[0..255].[1..3]*-2."),
        Setting.Int("dnsbl_threshold", 1, -1000, 1000, "The sum of the weights of the lists that name the client at which dnsbl_action applies (postscreen_dnsbl_threshold)."),
        Setting.Choice("dnsbl_action", "reject", "A client at or over dnsbl_threshold: reject (554 5.7.1 at RCPT), junk, tag, off.", "reject", "junk", "tag", "off"),
        Setting.List("arc_trusted_sealers", "", "ARC sealers (d= of the newest ARC-Seal) trusted to vouch for mail whose DMARC failed after they forwarded it (mailing lists, forwarding services)."),
        Setting.Duration("dns_timeout", "5s", "How long one DNS query of the checks waits for its answer (one retry follows)."),
        Setting.Duration("mail_auth_deadline", "20s", "Longest time all checks of one step (client, SPF, message) may take; what is unanswered then is a temporary error."),
        Setting.Bool("dmarc_reports", true, "Send DMARC aggregate reports (RFC 7489 7.2) once a day to the domains whose record asks for them (rua=mailto:), from postmaster_address, DKIM-signed, out of the evaluations kept in spool_dir/dmarc."),
        Setting.Path("public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat", "The Public Suffix List (Debian's publicsuffix package), for DMARC's organizational domains; read again when it changes."),
        Setting.Duration("anvil_rate_time_unit", "60s", "The time unit of the rate limits below (Postfix's anvil_rate_time_unit). Counts are kept in memory only."),
        Setting.Int("smtpd_client_connection_rate_limit", 0, 0, 1000000, "Connections one client address may open per time unit; more get 421 4.7.0. Clients in mynetworks are exempt; 0 for no limit."),
        Setting.Int("smtpd_client_message_rate_limit", 0, 0, 1000000, "Messages (MAIL commands) one client address may send per time unit; more get 450 4.7.1. mynetworks exempt; 0 for no limit."),
        Setting.Int("smtpd_client_recipient_rate_limit", 0, 0, 1000000, "Recipients (RCPT commands) one client address may give per time unit; more get 450 4.7.1. mynetworks exempt; 0 for no limit."),
        Setting.Int("smtpd_user_message_rate_limit", 0, 0, 1000000, "Messages one logged-in user may send per time unit, from any address; more get 450 4.7.1; 0 for no limit."),
        Setting.Int("smtpd_user_recipient_rate_limit", 0, 0, 1000000, "Recipients one logged-in user may give per time unit; more get 450 4.7.1; 0 for no limit."),
        Setting.Bool("srs_enable", true, "Rewrite the envelope sender of mail an alias sends on to another domain by the Sender Rewriting Scheme (postsrsd's SRS0/SRS1 format), so that SPF passes at the next hop; bounces to such addresses go back to the original sender."),
        Setting.Text("srs_domain", "", "The domain of rewritten senders (postsrsd's SRS_DOMAIN); empty: the hostname's domain, as for postmaster_address."),
        Setting.Path("srs_secret_file", "", "The SRS secret, one per line, the first signing (postsrsd's secret file can be used as it is); empty: srs.secret in spool_dir, made at the first start."),
        Setting.Path("dkim_key_dir", "/etc/mail/dkim", "DKIM signing keys (mailctl dkim keygen): DOMAIN/SELECTOR.key, readable by mtad alone. Mail from logged-in users, mynetworks and the pickup socket is signed with every key of its From domain (or the nearest parent domain with keys); empty for no signing."),
        Setting.Path("log_file", "", "Log file; syslog: the system log with facility mail (/var/log/mail.log); empty: standard error."),
        Setting.Choice("log_level", "Info", "Least severe log level written.", "Trace", "Debug", "Info", "Warn", "Error"),
        Mail.Shared.Metrics.MetricsEndpoint.Setting,
        .. Mail.Shared.Auth.AuthBackendSettings.Settings,
    ];
}
