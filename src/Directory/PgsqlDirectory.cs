// The directory in PostgreSQL, in PostfixAdmin 3.3's schema: tables domain,
// mailbox, alias and alias_domain, with their active, backupmx, quota and
// maildir columns, read and written as PostfixAdmin means them. Every query
// is parameterised and prepared (Npgsql's automatic preparation) over a
// pooled data source. Any database fault becomes DirectoryUnavailableException
// after a short Polly retry, and a circuit breaker keeps an outage from
// making every caller wait for its own time-out.
using Mail.Shared.Smtp;
using Npgsql;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Mail.Shared.UserDirectory;

public sealed class PgsqlDirectory : IMailDirectory, IDirectoryAdmin, IAsyncDisposable
{
    private readonly NpgsqlDataSource _db;
    private readonly ResiliencePipeline _resilience;
    private readonly string _defaultPassScheme;

    public PgsqlDirectory(string connectionString, string defaultPassScheme = Passwords.PasswordScheme.DefaultPassScheme)
    {
        _defaultPassScheme = defaultPassScheme;
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        if (csb.MaxAutoPrepare == 0) csb.MaxAutoPrepare = 32;
        if (csb.Timeout == 15) csb.Timeout = 3;
        if (csb.CommandTimeout == 30) csb.CommandTimeout = 5;
        _db = NpgsqlDataSource.Create(csb.ConnectionString);
        _resilience = new ResiliencePipelineBuilder()
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>().Handle<TimeoutRejectedException>(),
                FailureRatio = 0.5,
                MinimumThroughput = 4,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = TimeSpan.FromSeconds(2),
            })
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>(e => e.IsTransient).Handle<TimeoutRejectedException>(),
                MaxRetryAttempts = 2,
                Delay = TimeSpan.FromMilliseconds(50),
                BackoffType = DelayBackoffType.Exponential,
                // A connection-level fault (the server restarted, the socket
                // went away) leaves every idle pooled connection dead too:
                // drop them all at once rather than fail on each in turn.
                OnRetry = args =>
                {
                    if (args.Outcome.Exception is NpgsqlException and not PostgresException) _db.Clear();
                    return default;
                },
            })
            .AddTimeout(TimeSpan.FromSeconds(5))
            .Build();
    }

    private async ValueTask<T> Run<T>(Func<CancellationToken, ValueTask<T>> query, CancellationToken ct)
    {
        try
        {
            return await _resilience.ExecuteAsync(query, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or BrokenCircuitException or TimeoutRejectedException)
        {
            throw new DirectoryUnavailableException("PostgreSQL: " + e.Message, e);
        }
    }

    // Rows are read with ReadAsync only: a daemon may run this on a socket's event thread (AuthD
    // does), where a synchronous read of a result larger than Npgsql's buffer would wait for that
    // same thread to deliver the socket's next bytes.
    private ValueTask<T> Query<T>(string sql, Func<NpgsqlDataReader, CancellationToken, Task<T>> read, CancellationToken ct, params object?[] args) =>
        Run(async token =>
        {
            await using var conn = await _db.OpenConnectionAsync(token).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(sql, conn);
            foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a ?? DBNull.Value });
            await using var reader = await cmd.ExecuteReaderAsync(token).ConfigureAwait(false);
            return await read(reader, token).ConfigureAwait(false);
        }, ct);

    // ---- look-ups ----

    /// <summary>
    /// A mailbox and whether its password has expired: PostfixAdmin's password_expiration sets
    /// mailbox.password_expiry at each password change from the domain's password_expiry
    /// (days); a domain with 0 there has no expiry (the rule of PostfixAdmin's own Dovecot
    /// query: m.password_expiry > now() OR d.password_expiry = 0).
    /// </summary>
    public ValueTask<DirectoryUser?> FindUserAsync(string address, CancellationToken ct = default) =>
        Query("""
            SELECT m.username, m.password, m.maildir, m.quota, m.active AND d.active,
                   d.password_expiry <> 0 AND m.password_expiry IS NOT NULL AND m.password_expiry <= now()
              FROM mailbox m JOIN domain d ON d.domain = m.domain
             WHERE m.username = $1
            """, async (r, t) => await r.ReadAsync(t).ConfigureAwait(false)
                ? new DirectoryUser(r.GetString(0), Passwords.PasswordScheme.Qualified(r.GetString(1), _defaultPassScheme),
                    Maildir: NullIfEmpty(r.GetString(2)), QuotaBytes: r.GetInt64(3), Active: r.GetBoolean(4), PasswordExpired: r.GetBoolean(5))
                : null, ct, address);

    public ValueTask<DirectoryDomain?> FindDomainAsync(string domain, CancellationToken ct = default) =>
        Query("""
            SELECT d.domain, d.active AND NOT d.backupmx, ad.target_domain
              FROM domain d
              LEFT JOIN alias_domain ad ON ad.alias_domain = d.domain AND ad.active
              LEFT JOIN domain t ON t.domain = ad.target_domain AND t.active
             WHERE d.domain = $1 AND d.domain <> 'ALL'
            """, async (r, t) => await r.ReadAsync(t).ConfigureAwait(false)
                ? new DirectoryDomain(r.GetString(0), r.GetBoolean(1), r.IsDBNull(2) ? null : r.GetString(2))
                : null, ct, domain);

    public ValueTask<IReadOnlyList<string>?> FindAliasAsync(string key, CancellationToken ct = default) =>
        Query("SELECT goto FROM alias WHERE address = $1 AND active", async (r, t) =>
        {
            if (!await r.ReadAsync(t).ConfigureAwait(false)) return null;
            var targets = SplitGoto(r.GetString(0));
            return targets.Count == 0 ? null : (IReadOnlyList<string>)targets;
        }, ct, key);

    /// <summary>PostfixAdmin's goto column: addresses separated by commas (and sometimes spaces).</summary>
    public static List<string> SplitGoto(string text) =>
        text.Split([',', ' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries)
            .Where(t => MailAddress.TryParse(t, out _))
            .Select(t => { MailAddress.TryParse(t, out var a); return a.ToString(); })
            .ToList();

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    // ---- administration, as PostfixAdmin does it ----

    public async Task<IReadOnlyList<DirectoryDomain>> ListDomainsAsync(CancellationToken ct = default) =>
        await Query("""
            SELECT d.domain, d.active AND NOT d.backupmx, ad.target_domain FROM domain d
              LEFT JOIN alias_domain ad ON ad.alias_domain = d.domain
             WHERE d.domain <> 'ALL' ORDER BY d.domain
            """, async (r, t) =>
        {
            var list = new List<DirectoryDomain>();
            while (await r.ReadAsync(t).ConfigureAwait(false)) list.Add(new DirectoryDomain(r.GetString(0), r.GetBoolean(1), r.IsDBNull(2) ? null : r.GetString(2)));
            return list;
        }, ct);

    public async Task AddDomainAsync(string domain, CancellationToken ct = default)
    {
        domain = domain.ToLowerInvariant();
        if (!MailAddress.IsValidDomain(domain)) throw new DirectoryAdminException($"'{domain}' is not a valid domain");
        var added = await Query("""
            INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx, active)
            VALUES ($1, '', 0, 0, 0, 0, 'virtual', false, true) ON CONFLICT (domain) DO NOTHING
            """, (r, _) => Task.FromResult(r.RecordsAffected), ct, domain);
        if (added == 0) throw new DirectoryAdminException($"domain {domain} exists already");
    }

    public async Task<bool> RemoveDomainAsync(string domain, CancellationToken ct = default)
    {
        domain = domain.ToLowerInvariant();
        var boxes = await Query("SELECT count(*) FROM mailbox WHERE domain = $1", async (r, t) => { await r.ReadAsync(t).ConfigureAwait(false); return r.GetInt64(0); }, ct, domain);
        if (boxes > 0) throw new DirectoryAdminException($"domain {domain} still has mailboxes; remove them first");
        return await InTransaction(async (conn, tx, token) =>
        {
            await Exec(conn, tx, "DELETE FROM alias WHERE domain = $1", token, domain);
            await Exec(conn, tx, "DELETE FROM alias_domain WHERE alias_domain = $1 OR target_domain = $1", token, domain);
            return await Exec(conn, tx, "DELETE FROM domain WHERE domain = $1", token, domain) > 0;
        }, ct);
    }

    public async Task<IReadOnlyList<DirectoryUser>> ListUsersAsync(string? domain, CancellationToken ct = default) =>
        await Query("""
            SELECT username, password, maildir, quota, active FROM mailbox
             WHERE $1::text IS NULL OR domain = $1 ORDER BY username
            """, async (r, t) =>
        {
            var list = new List<DirectoryUser>();
            while (await r.ReadAsync(t).ConfigureAwait(false))
                list.Add(new DirectoryUser(r.GetString(0), r.GetString(1), Maildir: NullIfEmpty(r.GetString(2)), QuotaBytes: r.GetInt64(3), Active: r.GetBoolean(4)));
            return list;
        }, ct, domain?.ToLowerInvariant());

    /// <summary>
    /// Adds a mailbox with PostfixAdmin's maildir ("domain/local/") and its
    /// self-alias row, within the domain's mailbox count and per-mailbox quota
    /// limits (domain.mailboxes: 0 unlimited, -1 none; domain.maxquota in MB).
    /// </summary>
    public async Task AddUserAsync(DirectoryUser user, CancellationToken ct = default)
    {
        if (!MailAddress.TryParse(user.Address, out var a)) throw new DirectoryAdminException($"'{user.Address}' is not a valid address");
        await InTransaction(async (conn, tx, token) =>
        {
            var limits = await ReadDomainLimits(conn, tx, a.Domain, token);
            var count = await Scalar(conn, tx, "SELECT count(*) FROM mailbox WHERE domain = $1", token, a.Domain);
            if (limits.Mailboxes < 0 || (limits.Mailboxes > 0 && count >= limits.Mailboxes))
                throw new DirectoryAdminException($"domain {a.Domain} may have no more mailboxes (limit {limits.Mailboxes})");
            if (limits.MaxQuotaMb > 0 && (user.QuotaBytes == 0 || user.QuotaBytes > limits.MaxQuotaMb * 1024 * 1024))
                throw new DirectoryAdminException($"quota must be between 1 byte and the domain's {limits.MaxQuotaMb} MB");
            var exists = await Scalar(conn, tx, "SELECT count(*) FROM mailbox WHERE username = $1", token, a.ToString())
                       + await Scalar(conn, tx, "SELECT count(*) FROM alias WHERE address = $1", token, a.ToString());
            if (exists > 0) throw new DirectoryAdminException($"{a} exists already as a mailbox or an alias");
            await Exec(conn, tx, """
                INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, active)
                VALUES ($1, $2, '', $3, $4, $5, $6, true)
                """, token, a.ToString(), user.PasswordHash, $"{a.Domain}/{a.Local}/", user.QuotaBytes, a.Local, a.Domain);
            await Exec(conn, tx, "INSERT INTO alias (address, goto, domain, active) VALUES ($1, $1, $2, true)", token, a.ToString(), a.Domain);
            return true;
        }, ct);
    }

    public async Task<bool> SetPasswordAsync(string address, string hash, CancellationToken ct = default) =>
        await Query("UPDATE mailbox SET password = $2, modified = now() WHERE username = $1", (r, _) => Task.FromResult(r.RecordsAffected), ct, address, hash) > 0;

    public async Task<bool> RemoveUserAsync(string address, CancellationToken ct = default) =>
        await InTransaction(async (conn, tx, token) =>
        {
            var removed = await Exec(conn, tx, "DELETE FROM mailbox WHERE username = $1", token, address) > 0;
            if (removed) await Exec(conn, tx, "DELETE FROM alias WHERE address = $1 AND goto = $1", token, address);
            return removed;
        }, ct);

    public async Task<IReadOnlyList<DirectoryAlias>> ListAliasesAsync(string? domain, CancellationToken ct = default) =>
        await Query("""
            SELECT address, goto, active FROM alias
             WHERE ($1::text IS NULL OR domain = $1) AND address NOT IN (SELECT username FROM mailbox)
             ORDER BY address
            """, async (r, t) =>
        {
            var list = new List<DirectoryAlias>();
            while (await r.ReadAsync(t).ConfigureAwait(false)) list.Add(new DirectoryAlias(r.GetString(0), SplitGoto(r.GetString(1)), r.GetBoolean(2)));
            return list;
        }, ct, domain?.ToLowerInvariant());

    /// <summary>Adds an alias within the domain's alias limit (domain.aliases: 0 unlimited, -1 none).</summary>
    public async Task AddAliasAsync(string address, IReadOnlyList<string> targets, CancellationToken ct = default)
    {
        var key = DirectoryFiles.NormalizeAliasKey(address) ?? throw new DirectoryAdminException($"'{address}' is not a valid alias address or @domain");
        var domain = key[(key.IndexOf('@') + 1)..];
        var normalized = new List<string>();
        foreach (var t in targets)
        {
            if (!MailAddress.TryParse(t, out var ta)) throw new DirectoryAdminException($"'{t}' is not a valid target address");
            normalized.Add(ta.ToString());
        }
        if (normalized.Count == 0) throw new DirectoryAdminException("an alias needs at least one target");
        await InTransaction(async (conn, tx, token) =>
        {
            var limits = await ReadDomainLimits(conn, tx, domain, token);
            var count = await Scalar(conn, tx,
                "SELECT count(*) FROM alias WHERE domain = $1 AND address NOT IN (SELECT username FROM mailbox)", token, domain);
            if (limits.Aliases < 0 || (limits.Aliases > 0 && count >= limits.Aliases))
                throw new DirectoryAdminException($"domain {domain} may have no more aliases (limit {limits.Aliases})");
            if (await Scalar(conn, tx, "SELECT count(*) FROM alias WHERE address = $1", token, key) > 0)
                throw new DirectoryAdminException($"alias {key} exists already");
            await Exec(conn, tx, "INSERT INTO alias (address, goto, domain, active) VALUES ($1, $2, $3, true)",
                token, key, string.Join(",", normalized), domain);
            return true;
        }, ct);
    }

    public async Task<bool> RemoveAliasAsync(string address, CancellationToken ct = default)
    {
        var key = DirectoryFiles.NormalizeAliasKey(address);
        if (key == null) return false;
        return await Query("DELETE FROM alias WHERE address = $1 AND address NOT IN (SELECT username FROM mailbox)",
            (r, _) => Task.FromResult(r.RecordsAffected), ct, key) > 0;
    }

    private readonly record struct DomainLimits(long Aliases, long Mailboxes, long MaxQuotaMb);

    private static async Task<DomainLimits> ReadDomainLimits(NpgsqlConnection conn, NpgsqlTransaction tx, string domain, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT aliases, mailboxes, maxquota FROM domain WHERE domain = $1 FOR UPDATE", conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = domain });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) throw new DirectoryAdminException($"domain {domain} is not ours; add it first");
        return new DomainLimits(r.GetInt32(0), r.GetInt32(1), r.GetInt64(2));
    }

    private async Task<T> InTransaction<T>(Func<NpgsqlConnection, NpgsqlTransaction, CancellationToken, Task<T>> body, CancellationToken ct) =>
        await Run(async token =>
        {
            await using var conn = await _db.OpenConnectionAsync(token).ConfigureAwait(false);
            await using var tx = await conn.BeginTransactionAsync(token).ConfigureAwait(false);
            var result = await body(conn, tx, token).ConfigureAwait(false);
            await tx.CommitAsync(token).ConfigureAwait(false);
            return result;
        }, ct);

    private static async Task<int> Exec(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params object?[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a ?? DBNull.Value });
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<long> Scalar(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, CancellationToken ct, params object?[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a ?? DBNull.Value });
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false));
    }

    public ValueTask DisposeAsync() => _db.DisposeAsync();
}
