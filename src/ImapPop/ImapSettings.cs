// The IMAP and POP3 server's configuration parameters (imappopd.conf).
using Mail.Shared.Config;

namespace Mail.ImapPop;

internal static class ImapSettings
{
    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Text("imap_listen", "*:143", "IMAP (STARTTLS offered), comma-separated host:port; empty for none."),
        Setting.Text("imaps_listen", "*:993", "IMAP over implicit TLS; empty for none."),
        Setting.Text("pop3_listen", "*:110", "POP3 (STLS offered); empty for none."),
        Setting.Text("pop3s_listen", "*:995", "POP3 over implicit TLS; empty for none."),
        Setting.Text("managesieve_listen", "*:4190", "ManageSieve (RFC 5804, STARTTLS offered) for users' Sieve filters; empty for none."),
        Setting.Path("tls_cert", "/etc/mail/tls/cert.pem", "TLS certificate (PEM)."),
        Setting.Path("tls_key", "/etc/mail/tls/key.pem", "TLS private key (PEM)."),
        Setting.Path("authd_socket", "/run/mail/authd.sock", "AuthD's gRPC socket."),
        Setting.Text("hostname", Environment.MachineName, "Name in the greeting."),
        Setting.Size("max_message_size", "50M", "Largest APPEND accepted ([TOOBIG] beyond)."),
        Setting.Duration("idle_timeout", "30m", "A silent client is logged out after this long (RFC 9051: at least 30 minutes)."),
        Setting.Duration("login_timeout", "3m", "A client that has not logged in this long after connecting is disconnected, whatever it sends (as Dovecot's login processes)."),
        Setting.Duration("stress_timeout", "10s", "The timeout instead of idle_timeout while three quarters of max_connections are taken."),
        Setting.Int("min_data_rate", 500, 1, 1000000000, "Bytes per second a command with its literals must keep up once begun, to earn time beyond the timeout."),
        Setting.Int("max_connections", 5000, 1, 1000000, "IMAP connections at once."),
        Setting.Int("max_connections_per_ip", 50, 1, 100000, "IMAP connections at once from one client address."),
        Setting.Bool("trust_loopback", true, "Allow LOGIN and plaintext AUTHENTICATE without TLS from loopback (as Dovecot's disable_plaintext_auth does); elsewhere TLS is always required (LOGINDISABLED)."),
        Setting.Int("max_sessions_per_user", 20, 1, 10000, "IMAP sessions at once for one user (Dovecot: mail_max_userip_connections = 10, per IP)."),
        Setting.Int("sieve_max_scripts", 100, 1, 100000, "Sieve scripts one user may keep (ManageSieve: QUOTA/MAXSCRIPTS)."),
        Setting.Size("sieve_max_storage", "10M", "All of one user's Sieve scripts together (QUOTA/MAXSIZE)."),
        Setting.Size("sieve_max_script_size", "1M", "One Sieve script (QUOTA/MAXSIZE)."),
        Setting.Int("sieve_max_redirects", 4, 0, 100, "Redirects per message, as lmtpd's setting of that name (told to ManageSieve clients as MAXREDIRECTS)."),
        Setting.Path("log_file", "", "Log file; syslog: the system log with facility mail (/var/log/mail.log); empty: standard error."),
        Setting.Choice("log_level", "Info", "Least severe log level written.", "Trace", "Debug", "Info", "Warn", "Error"),
        Mail.Shared.Metrics.MetricsEndpoint.Setting,
        .. Mail.Shared.Auth.AuthBackendSettings.Settings,
    ];
}
