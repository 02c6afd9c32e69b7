// Logging in to a relay host, as Postfix's SMTP client does it: the password
// table (smtp_sasl_password_maps) keyed by the next hop ("[host]:port" as the
// relayhost setting writes it, the host, the destination domain) or, with
// smtp_sender_dependent_authentication, first by the sender ("user@domain",
// then "@domain"); and the relay host per sender (sender_dependent_relayhost_maps).
// The tables are Postfix's source format ("key value" lines, # comments), the
// files postmap would compile; each is read again when it changes. The
// password table is a secret: it is never logged, only the user name.
using Mail.Shared.Smtp;

namespace Mail.Mta;

/// <summary>A "key value" table file, read again when its modification time changes.</summary>
internal sealed class LookupTable(string path)
{
    private readonly Lock _lock = new();
    private DateTime _modified;
    private Dictionary<string, string> _entries = new(StringComparer.OrdinalIgnoreCase);

    public string Path => path;

    public string? Find(string key)
    {
        lock (_lock)
        {
            DateTime modified;
            try { modified = File.GetLastWriteTimeUtc(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
            if (modified != _modified)
            {
                var entries = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                try
                {
                    foreach (var raw in File.ReadLines(path))
                    {
                        var line = raw.Trim();
                        if (line.Length == 0 || line[0] == '#') continue;
                        var split = line.IndexOfAny([' ', '\t']);
                        if (split <= 0) continue;
                        entries.TryAdd(line[..split], line[split..].Trim());
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
                (_entries, _modified) = (entries, modified);
            }
            return _entries.GetValueOrDefault(key);
        }
    }
}

internal sealed class RelayLogins(LookupTable? passwords, LookupTable? relayHosts, bool senderDependent)
{
    public static readonly RelayLogins None = new(null, null, false);

    /// <summary>The relay host for mail from <paramref name="sender"/> (sender_dependent_relayhost_maps), or null.</summary>
    public string? RelayHostFor(string sender)
    {
        if (relayHosts == null || sender.Length == 0) return null;
        var at = sender.LastIndexOf('@');
        return relayHosts.Find(sender) ?? (at >= 0 ? relayHosts.Find(sender[at..]) : null);
    }

    /// <summary>
    /// The login for a delivery of <paramref name="sender"/>'s mail through <paramref name="nexthop"/>
    /// (the relay host as configured, or the destination domain) to host <paramref name="host"/>
    /// on <paramref name="port"/>; null when the table has none.
    /// </summary>
    public SmtpLogin? LoginFor(string sender, string nexthop, string host, int port)
    {
        if (passwords == null) return null;
        var keys = new List<string>();
        if (senderDependent && sender.Length > 0)
        {
            keys.Add(sender);
            var at = sender.LastIndexOf('@');
            if (at >= 0) keys.Add(sender[at..]);
        }
        keys.AddRange([nexthop, $"[{host}]:{port}", $"[{host}]", $"{host}:{port}", host]);
        foreach (var key in keys)
            if (passwords.Find(key) is { } value)
            {
                var colon = value.IndexOf(':');
                return colon > 0 ? new SmtpLogin(value[..colon], value[(colon + 1)..]) : null;
            }
        return null;
    }
}
