// The directory of virtual domains, mailboxes and aliases, as AuthD sees it.
// Back ends: a passwd-file (FileDirectory) and PostgreSQL in PostfixAdmin's
// schema. A back end that cannot answer throws DirectoryUnavailableException:
// "try again later", never "no such user".
namespace Mail.Shared.UserDirectory;

public sealed class DirectoryUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

public sealed record DirectoryUser(
    string Address,
    string PasswordHash,
    uint? Uid = null,
    uint? Gid = null,
    string? Home = null,
    string? Maildir = null,
    long QuotaBytes = 0,
    long QuotaMessages = 0,
    bool Active = true,
    bool PasswordExpired = false);

public sealed record DirectoryDomain(string Name, bool Active = true, string? AliasFor = null);

public sealed record DirectoryAlias(string Address, IReadOnlyList<string> Targets, bool Active = true);

public interface IMailDirectory
{
    /// <summary>The mailbox with this exact address (already normalised), or null.</summary>
    ValueTask<DirectoryUser?> FindUserAsync(string address, CancellationToken ct = default);

    /// <summary>The domain if it is ours (hosted, or an alias domain), or null.</summary>
    ValueTask<DirectoryDomain?> FindDomainAsync(string domain, CancellationToken ct = default);

    /// <summary>The alias targets of this exact key ("a@dom" or "@dom"), or null.</summary>
    ValueTask<IReadOnlyList<string>?> FindAliasAsync(string key, CancellationToken ct = default);
}

/// <summary>What `mailctl domain|user|alias` change.</summary>
public interface IDirectoryAdmin
{
    Task<IReadOnlyList<DirectoryDomain>> ListDomainsAsync(CancellationToken ct = default);
    Task AddDomainAsync(string domain, CancellationToken ct = default);
    Task<bool> RemoveDomainAsync(string domain, CancellationToken ct = default);
    Task<IReadOnlyList<DirectoryUser>> ListUsersAsync(string? domain, CancellationToken ct = default);
    Task AddUserAsync(DirectoryUser user, CancellationToken ct = default);
    Task<bool> SetPasswordAsync(string address, string hash, CancellationToken ct = default);
    Task<bool> RemoveUserAsync(string address, CancellationToken ct = default);
    Task<IReadOnlyList<DirectoryAlias>> ListAliasesAsync(string? domain, CancellationToken ct = default);
    Task AddAliasAsync(string address, IReadOnlyList<string> targets, CancellationToken ct = default);
    Task<bool> RemoveAliasAsync(string address, CancellationToken ct = default);
}

public sealed class DirectoryAdminException(string message) : Exception(message);
