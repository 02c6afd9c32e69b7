// Which auth service a daemon asks (lmtpd, imappopd, mtad): AuthD over gRPC,
// or Dovecot's auth service over its client and userdb sockets.
using Mail.Shared.Config;

namespace Mail.Shared.Auth;

public static class AuthBackendSettings
{
    public static readonly IReadOnlyList<Setting> Settings =
    [
        Setting.Choice("auth_backend", "authd", "Who checks logins and knows the users: authd (authd_socket), or dovecot (Dovecot's auth service: dovecot_client_socket and dovecot_userdb_socket).", "authd", "dovecot"),
        Setting.Path("dovecot_client_socket", "/run/dovecot/auth-client", "With auth_backend = dovecot: Dovecot's auth-client socket, for logins (SASL)."),
        Setting.Path("dovecot_userdb_socket", "/run/dovecot/auth-userdb", "With auth_backend = dovecot: Dovecot's auth-userdb socket, for user look-ups (USER)."),
        Setting.List("dovecot_domains", "", "With auth_backend = dovecot, for mtad: the domains whose users Dovecot's userdb knows (Dovecot has no list of domains, nor aliases); mail for others is relayed or refused."),
        Setting.Text("dovecot_maildir", "~/Maildir", "With auth_backend = dovecot: a user's Maildir when Dovecot's userdb returns no mail=maildir:... field, as Dovecot's mail_location: ~ is the user's home; %u, %n, %d the user, its local part and domain."),
    ];
}
