// Dovecot's auth service in AuthD's place (auth_backend = dovecot): SASL over
// its client socket (auth-client: AUTH, CONT, OK, FAIL), users over its
// userdb socket (auth-userdb: USER). Answers come back as AuthD's would, so the
// daemons need not know which one they asked: a lost connection or a FAIL
// with "temp" is a temporary failure, NOTFOUND an unknown user.
//
// The userdb connection is kept open and used by one look-up at a time (each
// is a fraction of a millisecond on a Unix socket); a broken one is opened
// again once. Each SASL exchange has a connection of its own, as each login
// of Dovecot's own login processes has a request of its own.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;

namespace Mail.Shared.Auth;

public sealed class DovecotAuthBackend(string clientSocket, string userdbSocket, string maildirTemplate, IReadOnlyCollection<string> domains) : IDisposable
{
    private readonly HashSet<string> _domains = new(domains, StringComparer.OrdinalIgnoreCase);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const int MaxLine = 65536;
    private readonly SemaphoreSlim _userdb = new(1, 1);
    private Connection? _conn;
    private uint _nextId;

    private sealed class Connection(Socket socket) : IDisposable
    {
        public readonly NetworkStream Stream = new(socket, ownsSocket: true);
        private readonly StreamReader _reader = new(new NetworkStream(socket, ownsSocket: false), new UTF8Encoding(false), false, 4096);

        public async Task<string> ReadLineAsync(CancellationToken ct)
        {
            var line = await _reader.ReadLineAsync(ct).ConfigureAwait(false) ?? throw new IOException("Dovecot's auth closed the connection");
            return line.Length > MaxLine ? throw new IOException("Dovecot's auth sent an overlong line") : line;
        }

        public Task WriteAsync(string text, CancellationToken ct) => Stream.WriteAsync(Encoding.UTF8.GetBytes(text), ct).AsTask();

        public void Dispose() { _reader.Dispose(); Stream.Dispose(); }
    }

    private static async Task<Connection> OpenAsync(string path, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false); }
        catch { socket.Dispose(); throw; }
        return new Connection(socket);
    }

    private static RpcException Unavailable(string why) => new(new Status(StatusCode.Unavailable, "Dovecot's auth: " + why));

    /// <summary>A userdb look-up (USER), as AuthD's LookupUser answers it.</summary>
    public async Task<LookupUserReply> LookupUserAsync(string user, ClientInfo client, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Timeout);
        await _userdb.WaitAsync(timeout.Token).ConfigureAwait(false);
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    if (_conn == null)
                    {
                        _conn = await OpenAsync(userdbSocket, timeout.Token).ConfigureAwait(false);
                        var version = await _conn.ReadLineAsync(timeout.Token).ConfigureAwait(false);
                        if (!version.StartsWith("VERSION\t1\t", StringComparison.Ordinal)) throw new IOException("not Dovecot's auth-userdb protocol: " + version);
                        await _conn.WriteAsync("VERSION\t1\t0\n", timeout.Token).ConfigureAwait(false);
                    }
                    var id = ++_nextId;
                    await _conn.WriteAsync($"USER\t{id}\t{DovecotEscaping.Escape(user)}\tservice={DovecotEscaping.Escape(client.Service)}" +
                        (client.RemoteIp.Length > 0 ? $"\trip={DovecotEscaping.Escape(client.RemoteIp)}" : "") + "\n", timeout.Token).ConfigureAwait(false);
                    while (true)
                    {
                        var f = (await _conn.ReadLineAsync(timeout.Token).ConfigureAwait(false)).Split('\t');
                        if (f[0] == "SPID" || f.Length < 2 || f[1] != id.ToString(CultureInfo.InvariantCulture)) continue; // the handshake's rest
                        return f[0] switch
                        {
                            "USER" when f.Length >= 3 => Found(DovecotEscaping.Unescape(f[2]), f.Skip(3).Select(DovecotEscaping.Unescape)),
                            "NOTFOUND" => new LookupUserReply { Status = LookupStatus.NotFound, Reason = "no such user" },
                            _ => new LookupUserReply { Status = LookupStatus.Tempfail, Reason = "userdb lookup failed: " + string.Join(' ', f.Skip(2)) },
                        };
                    }
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
                {
                    _conn?.Dispose();
                    _conn = null;
                    if (attempt > 0) throw Unavailable(e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            _conn?.Dispose();
            _conn = null;
            throw Unavailable("no answer in time");
        }
        finally { _userdb.Release(); }
    }

    /// <summary>
    /// A recipient as AuthD resolves it, from what Dovecot knows: a domain of dovecot_domains is
    /// ours, and its address (without a +detail) a mailbox when the userdb finds it; no aliases.
    /// </summary>
    public async Task<ResolveRecipientReply> ResolveRecipientAsync(string address, ClientInfo client, string delimiter, CancellationToken ct)
    {
        int at = address.LastIndexOf('@');
        if (at <= 0 || !_domains.Contains(address[(at + 1)..])) return new ResolveRecipientReply { Status = RecipientStatus.NotOurDomain };
        var local = address[..at];
        int d = delimiter.Length == 0 ? -1 : local.IndexOfAny(delimiter.ToCharArray());
        var bare = d > 0 ? local[..d] + address[at..] : address;
        var found = await LookupUserAsync(bare, client, ct).ConfigureAwait(false);
        return found.Status switch
        {
            LookupStatus.Ok => new ResolveRecipientReply
            {
                Status = RecipientStatus.Ok,
                Targets = { new RecipientTarget { Address = address, Local = true, Mailbox = found.User.User, Detail = d > 0 ? local[(d + 1)..] : "" } },
            },
            LookupStatus.NotFound => new ResolveRecipientReply { Status = RecipientStatus.UnknownUser, Reason = "no such user in Dovecot's userdb" },
            _ => new ResolveRecipientReply { Status = RecipientStatus.Tempfail, Reason = found.Reason },
        };
    }

    /// <summary>A userdb record as the suite's MailUser: home, uid, gid, the Maildir (mail=maildir:..., else the template), quota.</summary>
    private LookupUserReply Found(string name, IEnumerable<string> fields)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var field in fields)
        {
            int eq = field.IndexOf('=');
            if (eq > 0) map[field[..eq]] = field[(eq + 1)..];
        }
        var home = map.GetValueOrDefault("home", "");
        string? maildir = null;
        if (map.TryGetValue("mail", out var mail) && mail.StartsWith("maildir:", StringComparison.Ordinal))
            maildir = Expand(mail[8..].Split(':')[0], home, name);
        maildir ??= Expand(maildirTemplate, home, name);
        if (!Path.IsPathRooted(maildir))
            return new LookupUserReply { Status = LookupStatus.Tempfail, Reason = $"no absolute Maildir for {name} (home '{home}', mail '{mail}')" };
        var user = new MailUser
        {
            User = name,
            Home = home.Length > 0 ? home : maildir,
            Maildir = maildir.TrimEnd('/'),
            Uid = uint.TryParse(map.GetValueOrDefault("uid"), out var uid) ? uid : 0,
            Gid = uint.TryParse(map.GetValueOrDefault("gid"), out var gid) ? gid : 0,
            Active = true,
        };
        foreach (var (key, value) in map)
            if (key.StartsWith("quota_rule", StringComparison.Ordinal) && value.StartsWith("*:", StringComparison.Ordinal))
                foreach (var part in value[2..].Split(':'))
                {
                    int eq = part.IndexOf('=');
                    if (eq < 0) continue;
                    var (k, v) = (part[..eq], part[(eq + 1)..]);
                    if (k is "bytes" or "storage" && Size(v, k == "storage" ? 1024UL : 1UL) is { } bytes) user.QuotaBytes = bytes;
                    else if (k == "messages" && ulong.TryParse(v, out var n)) user.QuotaMessages = n;
                }
        return new LookupUserReply { Status = LookupStatus.Ok, User = user };
    }

    /// <summary>A quota size: a number in <paramref name="unit"/> bytes (storage= counts KiB), or with a k, M, G or T suffix.</summary>
    private static ulong? Size(string v, ulong unit)
    {
        if (v.Length == 0) return null;
        var suffix = char.ToUpperInvariant(v[^1]);
        ulong mult = suffix switch { 'B' => 1, 'K' => 1UL << 10, 'M' => 1UL << 20, 'G' => 1UL << 30, 'T' => 1UL << 40, _ => 0 };
        var digits = mult == 0 ? v : v[..^1];
        return ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n * (mult == 0 ? unit : mult) : null;
    }

    /// <summary>~ is the home; %u the user, %n its local part, %d its domain (Dovecot's variables).</summary>
    private static string Expand(string template, string home, string user)
    {
        int at = user.LastIndexOf('@');
        var s = template.Replace("%u", user).Replace("%n", at > 0 ? user[..at] : user).Replace("%d", at > 0 ? user[(at + 1)..] : "");
        return s == "~" ? home : s.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, s[2..]) : s;
    }

    /// <summary>One SASL exchange on a connection of its own, answered as AuthD answers it.</summary>
    public async Task<SaslServerMessage> AuthenticateAsync(string mechanism, byte[]? initialResponse, ClientInfo client,
        Func<byte[], Task<byte[]?>> respond, CancellationToken ct)
    {
        try
        {
            using var conn = await OpenAsync(clientSocket, ct).ConfigureAwait(false);
            await conn.WriteAsync($"VERSION\t1\t2\nCPID\t{Environment.ProcessId}\n", ct).ConfigureAwait(false);
            var mechanisms = new List<string>();
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                handshake.CancelAfter(Timeout);
                string line;
                while ((line = await conn.ReadLineAsync(handshake.Token).ConfigureAwait(false)) != "DONE")
                    if (line.StartsWith("MECH\t", StringComparison.Ordinal)) mechanisms.Add(line.Split('\t')[1].ToUpperInvariant());
            }
            if (!mechanisms.Contains(mechanism.ToUpperInvariant()))
                return new SaslServerMessage { Status = SaslStatus.BadMechanism, Reason = "unsupported mechanism" };
            var request = new StringBuilder($"AUTH\t1\t{DovecotEscaping.Escape(mechanism)}\tservice={DovecotEscaping.Escape(client.Service)}\tnologin");
            if (client.Secured) request.Append("\tsecured");
            if (client.RemoteIp.Length > 0) request.Append("\trip=").Append(DovecotEscaping.Escape(client.RemoteIp));
            if (client.LocalIp.Length > 0) request.Append("\tlip=").Append(DovecotEscaping.Escape(client.LocalIp));
            if (client.SessionId.Length > 0) request.Append("\tsession=").Append(DovecotEscaping.Escape(client.SessionId));
            if (initialResponse != null) request.Append("\tresp=").Append(Convert.ToBase64String(initialResponse));
            await conn.WriteAsync(request.Append('\n').ToString(), ct).ConfigureAwait(false);
            while (true)
            {
                // A failure's answer waits for Dovecot's auth_failure_delay: no deadline but the caller's.
                var f = (await conn.ReadLineAsync(ct).ConfigureAwait(false)).Split('\t');
                if (f.Length < 2 || f[1] != "1") continue;
                var fields = f.Skip(2).Select(DovecotEscaping.Unescape).ToList();
                string Field(string name) => fields.FirstOrDefault(x => x.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..] ?? "";
                switch (f[0])
                {
                    case "OK":
                        return new SaslServerMessage { Status = SaslStatus.Success, User = Field("user") };
                    case "FAIL":
                        return new SaslServerMessage
                        {
                            Status = fields.Contains("temp") ? SaslStatus.Tempfail : SaslStatus.Failure,
                            User = Field("user"),
                            Reason = Field("reason"),
                        };
                    case "CONT":
                        byte[] challenge;
                        try { challenge = Convert.FromBase64String(f.Length > 2 ? f[2] : ""); }
                        catch (FormatException) { throw new IOException("Dovecot's auth sent a challenge that is not base64"); }
                        var answer = await respond(challenge).ConfigureAwait(false);
                        if (answer == null) return new SaslServerMessage { Status = SaslStatus.Aborted };
                        await conn.WriteAsync($"CONT\t1\t{Convert.ToBase64String(answer)}\n", ct).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw Unavailable(e.Message);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw Unavailable("no answer in time");
        }
    }



    public void Dispose()
    {
        _conn?.Dispose();
        _userdb.Dispose();
    }
}
