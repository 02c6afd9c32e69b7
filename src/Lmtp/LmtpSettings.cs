// The LMTP delivery agent's configuration parameters (lmtpd.conf).
using Mail.Shared.Config;

namespace Mail.Lmtp;

internal static class LmtpSettings
{
    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Text("listen", "127.0.0.1:24", "TCP addresses to listen on, comma-separated (host:port); empty for none."),
        Setting.Path("socket", "/run/mail/lmtp", "Unix socket to listen on (Postfix: virtual_transport = lmtp:unix:PATH); empty for none."),
        Setting.Text("socket_mode", "0660", "Mode of the Unix socket."),
        Setting.Path("authd_socket", "/run/mail/authd.sock", "AuthD's gRPC socket, asked about every recipient."),
        Setting.Duration("user_cache_ttl", "5s", "How long a deliverable user that AuthD found is remembered (a removed or disabled one is noticed within this); 0 asks AuthD for every recipient."),
        Setting.Text("hostname", Environment.MachineName, "Name in the greeting and the Received header."),
        Setting.Size("max_message_size", "50M", "Largest message accepted (SIZE); a larger one is refused with 552 5.3.4."),
        Setting.Int("max_recipients", 1000, 1, 100000, "Recipients accepted in one transaction; more get 452 4.5.3."),
        Setting.Text("recipient_delimiter", "+", "Separates a user from a +detail that names a folder."),
        Setting.Bool("quota_temporary", false, "Answer over-quota recipients 452 4.2.2 (try later) rather than 552 5.2.2."),
        Setting.Duration("idle_timeout", "5m", "A client silent this long is disconnected."),
        Setting.Int("max_connections", 500, 1, 100000, "Connections at once."),
        Setting.Bool("sieve", true, "Run Sieve filters at delivery: sieve_before, the user's ~/.dovecot.sieve, sieve_after (Pigeonhole's layout)."),
        Setting.List("sieve_before", "/etc/mail/sieve/before.d", "Scripts run before the user's: files, or folders whose *.sieve run in name order (the spam-to-Junk rule lives here)."),
        Setting.List("sieve_after", "/etc/mail/sieve/after.d", "Scripts run after the user's (files or folders of *.sieve)."),
        Setting.Path("sieve_global_dir", "/etc/mail/sieve/global", "Where include :global finds NAME.sieve."),
        Setting.Path("pickup_socket", "/run/mail/pickup", "mtad's pickup socket: Sieve redirects and vacation replies leave through it."),
        Setting.Int("sieve_max_redirects", 4, 0, 100, "Redirects one script may make per message."),
        Setting.Int("sieve_max_actions", 32, 1, 1000, "Actions one script may take per message."),
        Setting.Duration("sieve_vacation_min_period", "1d", "Shortest time between two vacation replies to one sender (:days and :seconds below it are raised)."),
        Setting.Path("log_file", "", "Log file; syslog: the system log with facility mail (/var/log/mail.log); empty: standard error."),
        Setting.Choice("log_level", "Info", "Least severe log level written.", "Trace", "Debug", "Info", "Warn", "Error"),
        Mail.Shared.Metrics.MetricsEndpoint.Setting,
        .. Mail.Shared.Auth.AuthBackendSettings.Settings,
    ];
}
