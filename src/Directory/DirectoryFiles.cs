// Parsers and writers for the embedded directory's three files:
//   passwd-file  user@domain:{SCHEME}hash:uid:gid:gecos:home:shell:extra fields
//                (Dovecot's passwd-file; extra fields such as
//                userdb_quota_rule=*:bytes=1G, userdb_mail=maildir:PATH, nologin)
//   virtual      alias@domain target[, target...]  and  @domain target (catch-all)
//                (Postfix's virtual(5) syntax; continuation lines start with space)
//   domains      one domain per line
// Lines that do not parse are logged with file and line number and skipped.
using Mail.Shared.Smtp;
using System.Globalization;
using Mail.Shared.Config;
using Mail.Shared.Logging;
using NLog;

namespace Mail.Shared.UserDirectory;

public static class DirectoryFiles
{
    private static readonly Logger Log = MailLog.For("directory");

    public static Dictionary<string, DirectoryUser> ParsePasswd(string path, IReadOnlyList<string> lines)
    {
        var users = new Dictionary<string, DirectoryUser>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.Length == 0 || line[0] == '#' || string.IsNullOrWhiteSpace(line)) continue;
            var user = ParsePasswdLine(line);
            if (user == null) { Log.Warn($"{path}:{i + 1}: malformed passwd-file line skipped"); continue; }
            users[user.Address] = user;
        }
        return users;
    }

    public static DirectoryUser? ParsePasswdLine(string line)
    {
        var f = line.Split(':', 8);
        if (f.Length < 2 || !MailAddress.TryParse(f[0], out var address)) return null;
        uint? uid = null, gid = null;
        if (f.Length > 2 && f[2].Length > 0)
        {
            if (!uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var u)) return null;
            uid = u;
        }
        if (f.Length > 3 && f[3].Length > 0)
        {
            if (!uint.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var g)) return null;
            gid = g;
        }
        string? home = f.Length > 5 && f[5].Length > 0 ? f[5] : null;
        string? maildir = null;
        long quotaBytes = 0, quotaMessages = 0;
        bool active = true;
        if (f.Length > 7)
        {
            foreach (var field in f[7].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = field.IndexOf('=');
                var key = eq < 0 ? field : field[..eq];
                var value = eq < 0 ? "" : field[(eq + 1)..];
                if (key is "nologin" or "userdb_nologin" || (key == "active" && value is "no" or "0")) active = false;
                else if (key == "userdb_mail" && value.StartsWith("maildir:", StringComparison.Ordinal))
                    maildir = value[8..].Split(':')[0];
                else if (key.StartsWith("userdb_quota_rule", StringComparison.Ordinal))
                    ParseQuotaRule(value, ref quotaBytes, ref quotaMessages);
            }
        }
        return new DirectoryUser(address.ToString(), f[1], uid, gid, home, maildir, quotaBytes, quotaMessages, active);
    }

    /// <summary>Dovecot's "*:bytes=1G", "*:storage=1024M" (kilobytes unless suffixed), "*:messages=1000".</summary>
    private static void ParseQuotaRule(string rule, ref long bytes, ref long messages)
    {
        if (!rule.StartsWith("*:", StringComparison.Ordinal)) return;
        foreach (var part in rule[2..].Split(':'))
        {
            int eq = part.IndexOf('=');
            if (eq < 0) continue;
            var (k, v) = (part[..eq], part[(eq + 1)..]);
            if (k == "bytes" && ValueParsers.TrySize(v, out var b)) bytes = b;
            else if (k == "storage" && ValueParsers.TrySize(v, out var s))
                storageFix(v, s, ref bytes);
            else if (k == "messages" && long.TryParse(v, out var m) && m >= 0) messages = m;
        }

        static void storageFix(string v, long s, ref long bytes) =>
            bytes = v.Length > 0 && char.IsAsciiDigit(v[^1]) ? s * 1024 : s;
    }

    public static string FormatPasswdLine(DirectoryUser u)
    {
        var extra = new List<string>();
        if (u.QuotaBytes > 0) extra.Add($"userdb_quota_rule=*:bytes={u.QuotaBytes}");
        if (u.QuotaMessages > 0) extra.Add($"userdb_quota_rule2=*:messages={u.QuotaMessages}");
        if (u.Maildir != null) extra.Add("userdb_mail=maildir:" + u.Maildir);
        if (!u.Active) extra.Add("nologin");
        return $"{u.Address}:{u.PasswordHash}:{u.Uid}:{u.Gid}::{u.Home}::{string.Join(' ', extra)}";
    }

    public static Dictionary<string, IReadOnlyList<string>> ParseAliases(string path, IReadOnlyList<string> lines)
    {
        var aliases = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (lineNo, entry) in LogicalLines(lines))
        {
            var alias = ParseAliasEntry(entry);
            if (alias == null) { Log.Warn($"{path}:{lineNo}: malformed alias entry skipped"); continue; }
            aliases[alias.Address] = alias.Targets;
        }
        return aliases;
    }

    /// <summary>Joins continuation lines (starting with white space) to their entry, as postmap does.</summary>
    private static IEnumerable<(int, string)> LogicalLines(IReadOnlyList<string> lines)
    {
        string? current = null;
        int start = 0;
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith('#') || string.IsNullOrWhiteSpace(line)) continue;
            if (char.IsWhiteSpace(line[0]) && current != null) { current += " " + line.Trim(); continue; }
            if (current != null) yield return (start, current);
            current = line.Trim();
            start = i + 1;
        }
        if (current != null) yield return (start, current);
    }

    public static DirectoryAlias? ParseAliasEntry(string entry)
    {
        int sp = entry.IndexOfAny([' ', '\t']);
        if (sp <= 0) return null;
        var key = NormalizeAliasKey(entry[..sp]);
        if (key == null) return null;
        var targets = new List<string>();
        foreach (var t in entry[sp..].Split([',', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!MailAddress.TryParse(t, out var a)) return null;
            targets.Add(a.ToString());
        }
        return targets.Count == 0 ? null : new DirectoryAlias(key, targets);
    }

    /// <summary>"a@dom" or "@dom" normalised, or null.</summary>
    public static string? NormalizeAliasKey(string key)
    {
        if (key.StartsWith('@'))
            return MailAddress.IsValidDomain(key[1..]) ? "@" + key[1..].ToLowerInvariant() : null;
        return MailAddress.TryParse(key, out var a) ? a.ToString() : null;
    }

    public static string FormatAlias(string key, IEnumerable<string> targets) => key + " " + string.Join(", ", targets);

    public static HashSet<string> ParseDomains(string path, IReadOnlyList<string> lines)
    {
        var domains = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var name = line.Split([' ', '\t'], 2)[0];
            if (!MailAddress.IsValidDomain(name)) { Log.Warn($"{path}:{i + 1}: malformed domain skipped"); continue; }
            domains.Add(name.ToLowerInvariant());
        }
        return domains;
    }
}
