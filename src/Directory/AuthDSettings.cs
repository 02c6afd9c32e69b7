// AuthD's configuration parameters (authd.conf), each declared once with its
// default and documentation. mailctl reads the same file to find the
// directory and the socket.
// `authd --print-config` prints the ones changed.
using Mail.Shared.Config;

namespace Mail.Shared.Auth;

public static class AuthDSettings
{
    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Path("grpc_socket", "/run/mail/authd.sock", "Unix socket of the gRPC API that the suite's programs use."),
        Setting.Path("dovecot_auth_socket", "/run/mail/auth-client", "Unix socket speaking Dovecot's auth client protocol, for Postfix's smtpd_sasl_type = dovecot; empty turns it off."),
        Setting.Path("dovecot_userdb_socket", "", "Unix socket speaking the master/userdb side of Dovecot's auth protocol (what Dovecot's auth-userdb socket answers), for Dovecot's lmtp, imap, pop3 and doveadm with auth_socket_path pointed here; empty turns it off."),
        Setting.Path("socketmap_socket", "/run/mail/socketmap", "Unix socket speaking Postfix's socketmap protocol (maps: domains, mailboxes, aliases); empty turns it off."),
        Setting.Text("socket_mode", "0660", "Mode of AuthD's sockets: owner and group (the mail programs, and Postfix) only."),
        Setting.Choice("directory_driver", "passwd-file", "Where users, domains and aliases live: passwd-file (the files below) or pgsql (PostfixAdmin's schema).", "passwd-file", "pgsql"),
        Setting.Text("default_pass_scheme", "CRYPT", "Scheme of a stored password without a {SCHEME} prefix, as Dovecot's default_pass_scheme: CRYPT (a crypt string, \"$6$...\"), MD5 (PostfixAdmin's md5: MD5-crypt or an MD5 digest in hex), PLAIN (PostfixAdmin's cleartext), or any scheme of `mailctl pw -l`."),
        Setting.Text("pgsql_connection", "Host=/run/postgresql;Database=postfix;Username=authd", "Npgsql connection string of the PostfixAdmin database, for directory_driver = pgsql."),
        Setting.Path("passwd_file", "/etc/mail/passwd", "Dovecot-style passwd-file: user@domain:{SCHEME}hash:uid:gid::home::extra fields."),
        Setting.Path("aliases_file", "/etc/mail/virtual", "Postfix virtual(5)-style aliases: alias@domain target, ... and @domain catch-alls."),
        Setting.Path("domains_file", "/etc/mail/domains", "The virtual domains this server receives mail for, one per line."),
        Setting.Path("mail_root", "/var/mail/vmail", "Root of the Maildir store; a user's Maildir is mail_root/domain/localpart/ unless the directory says otherwise."),
        Setting.Int("mail_uid", 5000, 0, uint.MaxValue, "uid that owns the mailboxes, unless the directory gives one."),
        Setting.Int("mail_gid", 5000, 0, uint.MaxValue, "gid that owns the mailboxes, unless the directory gives one."),
        Setting.Size("default_quota", "0", "Quota in bytes for users without one of their own; 0 is no limit."),
        Setting.Text("recipient_delimiter", "+", "Characters that separate a user from an address extension (user+detail@domain); empty for none."),
        Setting.List("auth_mechanisms", "PLAIN LOGIN", "SASL mechanisms offered: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, SCRAM-SHA-1. CRAM-MD5 and SCRAM work only for users whose stored hash allows them."),
        Setting.Duration("auth_cache_ttl", "1h", "While the directory is unreachable, a user's last good entry may serve logins for this long; 0 turns this off. Never used while the directory answers."),
        Setting.Duration("auth_failure_delay", "2s", "Delay before answering a failed login; it doubles with each further failure from the same client IP or for the same user."),
        Setting.Duration("auth_failure_delay_max", "30s", "The longest delay a failed login waits."),
        Setting.Duration("auth_failure_window", "15m", "Failures older than this no longer count towards the delay."),
        Setting.Int("alias_recursion_limit", 20, 1, 1000, "How deep alias expansion may nest."),
        Setting.Int("alias_expansion_limit", 1000, 1, 100000, "How many addresses one recipient may expand to."),
        Setting.Text("hostname", Environment.MachineName, "Host name used in CRAM-MD5 challenges."),
        Setting.Path("log_file", "", "Log file; syslog: the system log with facility mail (/var/log/mail.log); empty: standard error only."),
        Setting.Choice("log_level", "Info", "Least severe log level written.", "Trace", "Debug", "Info", "Warn", "Error"),
        Mail.Shared.Metrics.MetricsEndpoint.Setting,
    ];
}
