// The embedded directory: a passwd-file, a virtual alias file and a domains
// list. Lookups read immutable snapshots that follow the files as they change;
// changes made by mailctl are written to a temporary file, fsynced and renamed
// over the old one under an exclusive lock, so readers never see half a file.
using Mail.Shared.Smtp;
using System.Text;

namespace Mail.Shared.UserDirectory;

public sealed record FileDirectoryOptions(string PasswdFile, string AliasesFile, string DomainsFile, string DefaultPassScheme = Passwords.PasswordScheme.DefaultPassScheme);

public sealed class FileDirectory : IMailDirectory, IDirectoryAdmin
{
    private readonly FileDirectoryOptions _options;
    private readonly WatchedFile<Dictionary<string, DirectoryUser>> _passwd;
    private readonly WatchedFile<Dictionary<string, IReadOnlyList<string>>> _aliases;
    private readonly WatchedFile<HashSet<string>> _domains;

    public FileDirectory(FileDirectoryOptions options)
    {
        _options = options;
        _passwd = new(options.PasswdFile, DirectoryFiles.ParsePasswd, required: true);
        _aliases = new(options.AliasesFile, DirectoryFiles.ParseAliases, required: false);
        _domains = new(options.DomainsFile, DirectoryFiles.ParseDomains, required: true);
    }

    public ValueTask<DirectoryUser?> FindUserAsync(string address, CancellationToken ct = default) =>
        ValueTask.FromResult(_passwd.Current.GetValueOrDefault(address) is { } u
            ? u with { PasswordHash = Passwords.PasswordScheme.Qualified(u.PasswordHash, _options.DefaultPassScheme) } : null);

    public ValueTask<DirectoryDomain?> FindDomainAsync(string domain, CancellationToken ct = default) =>
        ValueTask.FromResult(_domains.Current.Contains(domain) ? new DirectoryDomain(domain) : null);

    public ValueTask<IReadOnlyList<string>?> FindAliasAsync(string key, CancellationToken ct = default) =>
        ValueTask.FromResult(_aliases.Current.GetValueOrDefault(key));

    // ---- administration ----

    public Task<IReadOnlyList<DirectoryDomain>> ListDomainsAsync(CancellationToken ct = default) =>
        Task.FromResult<IReadOnlyList<DirectoryDomain>>(_domains.Current.Order(StringComparer.Ordinal).Select(d => new DirectoryDomain(d)).ToList());

    public Task AddDomainAsync(string domain, CancellationToken ct = default)
    {
        domain = domain.ToLowerInvariant();
        if (!MailAddress.IsValidDomain(domain)) throw new DirectoryAdminException($"'{domain}' is not a valid domain");
        Edit(_options.DomainsFile, lines =>
        {
            if (DirectoryFiles.ParseDomains(_options.DomainsFile, lines).Contains(domain))
                throw new DirectoryAdminException($"domain {domain} exists already");
            lines.Add(domain);
        });
        return Task.CompletedTask;
    }

    public Task<bool> RemoveDomainAsync(string domain, CancellationToken ct = default)
    {
        domain = domain.ToLowerInvariant();
        if (_passwd.Current.Keys.Any(a => a.EndsWith("@" + domain, StringComparison.Ordinal)))
            throw new DirectoryAdminException($"domain {domain} still has mailboxes; remove them first");
        bool removed = false;
        Edit(_options.DomainsFile, lines => removed = lines.RemoveAll(l => l.Trim().Split([' ', '\t'], 2)[0].Equals(domain, StringComparison.OrdinalIgnoreCase)) > 0);
        return Task.FromResult(removed);
    }

    public Task<IReadOnlyList<DirectoryUser>> ListUsersAsync(string? domain, CancellationToken ct = default) =>
        Task.FromResult<IReadOnlyList<DirectoryUser>>(_passwd.Current.Values
            .Where(u => domain == null || u.Address.EndsWith("@" + domain.ToLowerInvariant(), StringComparison.Ordinal))
            .OrderBy(u => u.Address, StringComparer.Ordinal).ToList());

    public Task AddUserAsync(DirectoryUser user, CancellationToken ct = default)
    {
        if (!MailAddress.TryParse(user.Address, out var a)) throw new DirectoryAdminException($"'{user.Address}' is not a valid address");
        if (!_domains.Current.Contains(a.Domain)) throw new DirectoryAdminException($"domain {a.Domain} is not ours; add it first");
        if (user.PasswordHash.Contains(':') || user.PasswordHash.Contains('\n')) throw new DirectoryAdminException("password hash must not contain ':' or a newline");
        var line = DirectoryFiles.FormatPasswdLine(user with { Address = a.ToString() });
        Edit(_options.PasswdFile, lines =>
        {
            if (lines.Any(l => DirectoryFiles.ParsePasswdLine(l)?.Address == a.ToString()))
                throw new DirectoryAdminException($"user {a} exists already");
            lines.Add(line);
        }, secret: true);
        return Task.CompletedTask;
    }

    public Task<bool> SetPasswordAsync(string address, string hash, CancellationToken ct = default)
    {
        if (hash.Contains(':') || hash.Contains('\n')) throw new DirectoryAdminException("password hash must not contain ':' or a newline");
        bool found = false;
        Edit(_options.PasswdFile, lines =>
        {
            for (int i = 0; i < lines.Count; i++)
            {
                var u = DirectoryFiles.ParsePasswdLine(lines[i]);
                if (u?.Address != address) continue;
                var f = lines[i].Split(':', 3);
                lines[i] = f[0] + ":" + hash + (f.Length > 2 ? ":" + f[2] : "");
                found = true;
            }
        }, secret: true);
        return Task.FromResult(found);
    }

    public Task<bool> RemoveUserAsync(string address, CancellationToken ct = default)
    {
        bool removed = false;
        Edit(_options.PasswdFile, lines => removed = lines.RemoveAll(l => DirectoryFiles.ParsePasswdLine(l)?.Address == address) > 0, secret: true);
        return Task.FromResult(removed);
    }

    public Task<IReadOnlyList<DirectoryAlias>> ListAliasesAsync(string? domain, CancellationToken ct = default) =>
        Task.FromResult<IReadOnlyList<DirectoryAlias>>(_aliases.Current
            .Where(kv => domain == null || kv.Key.EndsWith("@" + domain.ToLowerInvariant(), StringComparison.Ordinal))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new DirectoryAlias(kv.Key, kv.Value)).ToList());

    public Task AddAliasAsync(string address, IReadOnlyList<string> targets, CancellationToken ct = default)
    {
        var key = DirectoryFiles.NormalizeAliasKey(address) ?? throw new DirectoryAdminException($"'{address}' is not a valid alias address or @domain");
        var domain = key[(key.IndexOf('@') + 1)..];
        if (!_domains.Current.Contains(domain)) throw new DirectoryAdminException($"domain {domain} is not ours; add it first");
        var normalized = new List<string>();
        foreach (var t in targets)
        {
            if (!MailAddress.TryParse(t, out var ta)) throw new DirectoryAdminException($"'{t}' is not a valid target address");
            normalized.Add(ta.ToString());
        }
        if (normalized.Count == 0) throw new DirectoryAdminException("an alias needs at least one target");
        Edit(_options.AliasesFile, lines =>
        {
            if (DirectoryFiles.ParseAliases(_options.AliasesFile, lines).ContainsKey(key))
                throw new DirectoryAdminException($"alias {key} exists already");
            lines.Add(DirectoryFiles.FormatAlias(key, normalized));
        });
        return Task.CompletedTask;
    }

    public Task<bool> RemoveAliasAsync(string address, CancellationToken ct = default)
    {
        var key = DirectoryFiles.NormalizeAliasKey(address);
        bool removed = false;
        if (key == null) return Task.FromResult(false);
        Edit(_options.AliasesFile, lines =>
        {
            // An entry may span continuation lines: drop those too.
            for (int i = 0; i < lines.Count; i++)
            {
                var l = lines[i];
                if (l.Length == 0 || char.IsWhiteSpace(l[0]) || l[0] == '#') continue;
                var first = l.Split([' ', '\t'], 2)[0];
                if (DirectoryFiles.NormalizeAliasKey(first) != key) continue;
                int end = i + 1;
                while (end < lines.Count && lines[end].Length > 0 && char.IsWhiteSpace(lines[end][0])) end++;
                lines.RemoveRange(i, end - i);
                removed = true;
                i--;
            }
        });
        return Task.FromResult(removed);
    }

    /// <summary>Read, change and atomically replace one file, under an exclusive lock.</summary>
    private static void Edit(string path, Action<List<string>> change, bool secret = false)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        using var lockFile = AcquireLock(path + ".lock");
        var lines = File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
        change(lines);
        var mode = secret ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead
                          : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l).Append('\n');
        Mail.Shared.IO.AtomicFile.WriteText(path, sb.ToString(), mode);
    }

    private static FileStream AcquireLock(string lockPath)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }
}
