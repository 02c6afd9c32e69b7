// The MTA's configuration parameters (mtad.conf); mailctl reads the same file for the queue tools.
using Mail.Shared.Config;

namespace Mail.Queue;

public static class MtaSettings
{
    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Text("mx_listen", "*:25", "SMTP for mail from the world (MX), comma-separated host:port; empty for none."),
        Setting.Text("submission_listen", "*:587", "Submission (STARTTLS, AUTH required); empty for none."),
        Setting.Text("submissions_listen", "*:465", "Submission over implicit TLS (AUTH required); empty for none."),
        Setting.Path("pickup_socket", "/run/mail/pickup", "Unix socket where the sendmail command hands over local mail (mode 0666: any local user may send, as with Postfix's maildrop); empty for none."),
        Setting.Path("tls_cert", "/etc/mail/tls/cert.pem", "TLS certificate (PEM)."),
        Setting.Path("tls_key", "/etc/mail/tls/key.pem", "TLS private key (PEM)."),
        Setting.Choice("smtpd_tls_security_level", "may", "TLS on the MX listener: may (STARTTLS offered) or encrypt (nothing but EHLO, HELO, STARTTLS, NOOP, RSET and QUIT before STARTTLS; RFC 3207 forbids this on a public MX, it suits a private relay). Submission always needs TLS except from loopback.", "may", "encrypt"),
        Setting.Choice("smtpd_forbid_bare_newline", "normalize", "A DATA line ended by a bare LF: normalize (taken as if it ended in CRLF; DATA still ends only at CRLF.CRLF) or reject (521 and the session ends, except for mynetworks and logged-in clients), as Postfix 3.9's setting. A bare CR is always refused.", "normalize", "reject"),
        Setting.List("mynetworks", "127.0.0.0/8 ::1/128", "Clients that may relay without AUTH (as Postfix's mynetworks)."),
        Setting.Path("authd_socket", "/run/mail/authd.sock", "AuthD's gRPC socket."),
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
        Setting.Int("smtp_port", 25, 1, 65535, "Port of other domains' MX hosts (25; a test network may use another)."),
        Setting.List("dns_servers", "", "DNS servers for MX look-ups (address[:port], comma-separated); empty: those of /etc/resolv.conf."),
        Setting.List("defer_transports", "", "Transports whose mail waits in the queue (as Postfix's defer_transports): \"smtp\" keeps mail for other domains queued until it is removed from this list."),
        Setting.Choice("smtp_tls_security_level", "may", "TLS to other domains' hosts: may (STARTTLS when offered), encrypt (only with TLS), none.", "may", "encrypt", "none"),
        Setting.Path("log_file", "", "Log file; empty logs to standard error."),
        Setting.Choice("log_level", "Info", "Least severe log level written.", "Trace", "Debug", "Info", "Warn", "Error"),
    ];
}
