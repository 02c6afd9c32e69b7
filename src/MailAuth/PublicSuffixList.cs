// The Public Suffix List (Debian's publicsuffix package), for DMARC's
// organizational domain (RFC 7489 3.2): normal, wildcard and exception rules,
// the implicit "*" rule, names kept in their ASCII (A-label) form. The file
// is read at start and again when its modification time changes (checked at
// most once a minute).
using System.Globalization;

namespace Mail.MailAuth;

public sealed class PublicSuffixList
{
    public const string DebianPath = "/usr/share/publicsuffix/public_suffix_list.dat";
    private readonly TimeSpan _checkEvery;
    private readonly string _path;
    private Rules _rules;
    private DateTime _checked, _modified;
    private readonly Lock _lock = new();

    private sealed record Rules(HashSet<string> Normal, HashSet<string> Wildcard, HashSet<string> Exception);

    public PublicSuffixList(string path) : this(path, TimeSpan.FromMinutes(1)) { }

    /// <param name="checkEvery">How often the file's modification time is looked at.</param>
    internal PublicSuffixList(string path, TimeSpan checkEvery)
    {
        _checkEvery = checkEvery;
        _path = path;
        _modified = File.GetLastWriteTimeUtc(path);
        _rules = Load(path);
        _checked = DateTime.UtcNow;
    }

    private static Rules Load(string path)
    {
        var idn = new IdnMapping();
        var rules = new Rules(new(StringComparer.OrdinalIgnoreCase), new(StringComparer.OrdinalIgnoreCase), new(StringComparer.OrdinalIgnoreCase));
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            int space = line.IndexOfAny([' ', '\t']);
            if (space >= 0) line = line[..space];
            if (line.Length == 0 || line.StartsWith("//", StringComparison.Ordinal)) continue;
            var set = rules.Normal;
            if (line.StartsWith('!')) { set = rules.Exception; line = line[1..]; }
            else if (line.StartsWith("*.", StringComparison.Ordinal)) { set = rules.Wildcard; line = line[2..]; }
            try { set.Add(idn.GetAscii(line)); }
            catch (ArgumentException) { }
        }
        return rules;
    }

    private Rules Current()
    {
        var now = DateTime.UtcNow;
        if (now - _checked < _checkEvery) return _rules;
        lock (_lock)
        {
            if (now - _checked < _checkEvery) return _rules;
            _checked = now;
            try
            {
                var modified = File.GetLastWriteTimeUtc(_path);
                if (modified != _modified) { _rules = Load(_path); _modified = modified; }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return _rules;
        }
    }

    /// <summary>The public suffix of a name (at least its last label).</summary>
    public string PublicSuffix(string domain)
    {
        var rules = Current();
        var labels = domain.TrimEnd('.').ToLowerInvariant().Split('.');
        for (int i = 0; i < labels.Length; i++)
        {
            var candidate = string.Join('.', labels[i..]);
            if (rules.Exception.Contains(candidate)) return string.Join('.', labels[(i + 1)..]);
            if (rules.Normal.Contains(candidate)) return candidate;
            if (i + 1 < labels.Length && rules.Wildcard.Contains(string.Join('.', labels[(i + 1)..]))) return candidate;
        }
        return labels[^1];
    }

    /// <summary>The organizational domain: the public suffix and one label more (or the name itself).</summary>
    public string OrganizationalDomain(string domain)
    {
        var name = domain.TrimEnd('.').ToLowerInvariant();
        var suffix = PublicSuffix(name);
        if (name.Length <= suffix.Length) return name;
        var rest = name[..(name.Length - suffix.Length - 1)];
        int dot = rest.LastIndexOf('.');
        return (dot < 0 ? rest : rest[(dot + 1)..]) + "." + suffix;
    }
}
