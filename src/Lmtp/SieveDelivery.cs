// Sieve at delivery, laid out as Pigeonhole lays it out so that a user's
// filters carry over from Dovecot: the active script is ~/.dovecot.sieve (a
// link into ~/sieve/NAME.sieve, as ManageSieve writes it), the
// administrator's sieve_before scripts run first and sieve_after scripts last
// (a file, or a folder's *.sieve in name order), include :global reads
// sieve_global_dir. Scripts are compiled once per file version. What the
// scripts decide is carried out by LmtpSession; redirects and vacation
// replies leave through mtad's pickup socket. Duplicate and vacation records
// are kept per user in ~/.sieve-tracking; a script's faults are appended to
// ~/.dovecot.sieve.log (where Pigeonhole writes them) for the user to see.
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;
using Mail.Shared.Smtp;
using Mail.Sieve;
using MimeKit;
using NLog;

namespace Mail.Lmtp;

internal sealed record SieveOptions(bool Enabled, IReadOnlyList<string> Before, IReadOnlyList<string> After, string GlobalDir,
    string PickupSocket, string Hostname, SieveRunLimits Limits);

internal sealed class SieveDelivery(SieveOptions options)
{
    private static readonly Logger Log = MailLog.For("lmtp");
    private readonly SieveScriptCache _cache = new();
    private static readonly ConcurrentDictionary<string, object> FileLocks = new(StringComparer.Ordinal);
    private const int MaxTrackingRecords = 10_000;
    private const long MaxUserLog = 64 * 1024;

    public static SieveOptions? Configure(Mail.Shared.Config.MailConfig config) => !config.GetBool("sieve") ? null : new SieveOptions(true,
        config.GetList("sieve_before"), config.GetList("sieve_after"), config.GetPath("sieve_global_dir"), config.GetPath("pickup_socket"),
        config.Get("hostname"), new SieveRunLimits
        {
            MaxRedirects = (int)config.GetInt("sieve_max_redirects"),
            MaxActions = (int)config.GetInt("sieve_max_actions"),
            VacationMin = config.GetDuration("sieve_vacation_min_period"),
        });

    /// <summary>The user's home: where ~/sieve and ~/.dovecot.sieve are (the Maildir when the directory names none).</summary>
    public static string Home(MailUser user) => user.Home.Length > 0 ? user.Home : user.Maildir;

    /// <summary>The scripts that run for <paramref name="user"/>, in order; a broken one is left out and its fault told in <paramref name="faults"/>.</summary>
    public List<SieveCompiled> Scripts(MailUser user, List<string> faults)
    {
        var list = new List<SieveCompiled>();
        foreach (var path in Files(options.Before)) Add(path, list, faults);
        if (PersonalScript(user) is { } personal) Add(personal, list, faults);
        foreach (var path in Files(options.After)) Add(path, list, faults);
        return list;
    }

    private void Add(string path, List<SieveCompiled> list, List<string> faults)
    {
        var found = _cache.Get(path, null);
        if (found is not { } f) return;
        if (f.Script != null) list.Add(f.Script);
        else faults.Add($"{Path.GetFileName(path)}: {f.Error}");
    }

    private static IEnumerable<string> Files(IReadOnlyList<string> entries)
    {
        foreach (var entry in entries)
        {
            if (Directory.Exists(entry))
                foreach (var f in Directory.GetFiles(entry, "*.sieve").Order(StringComparer.Ordinal)) yield return f;
            else if (File.Exists(entry)) yield return entry;
        }
    }

    /// <summary>~/.dovecot.sieve when it is (or links to) a file inside the home; null otherwise.</summary>
    public static string? PersonalScript(MailUser user)
    {
        var home = Path.GetFullPath(Home(user));
        var active = Path.Combine(home, ".dovecot.sieve");
        var info = new FileInfo(active);
        if (!info.Exists && info.LinkTarget == null) return null;
        var target = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? active;
        if (!target.StartsWith(home + "/", StringComparison.Ordinal) || !File.Exists(target)) return null;
        return target;
    }

    /// <summary>Runs the scripts for one recipient of the message in <paramref name="path"/>.</summary>
    public (SieveResult Result, SieveMessage Message) Run(IReadOnlyList<SieveCompiled> scripts, MailUser user, string path, string from,
        string recipient, string? remoteIp)
    {
        var message = SieveMessage.Load(path, from, recipient);
        var home = Home(user);
        var at = user.User.LastIndexOf('@');
        var environment = new SieveEnvironment
        {
            Hostname = options.Hostname,
            Domain = at > 0 ? user.User[(at + 1)..] : options.Hostname,
            RemoteIp = remoteIp,
            UserAddresses = [user.User],
            MailboxExists = name => MailboxExists(user, name),
            DuplicateSeen = key => Seen(home, key),
            Include = (name, global) => _cache.Get(global ? Path.Combine(options.GlobalDir, name + ".sieve")
                : Path.Combine(home, "sieve", name + ".sieve")),
            Limits = options.Limits,
        };
        return (SieveInterpreter.Run(scripts, message, environment), message);
    }

    private static bool MailboxExists(MailUser user, string name)
    {
        name = MailboxName.Normalize(name);
        return name == "INBOX" || (MailboxName.Validate(name) == null && Directory.Exists(Path.Combine(MailboxName.Directory(user.Maildir, name), "cur")));
    }

    // ---- the per-user records of duplicate and vacation (RFC 7352, RFC 5230 4.2) ----

    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..32];

    private static string TrackingFile(string home) => Path.Combine(home, ".sieve-tracking");

    /// <summary>Was the key recorded and is its record still in force?</summary>
    public static bool Seen(string home, string key)
    {
        var file = TrackingFile(home);
        var hash = Hash(key);
        lock (FileLocks.GetOrAdd(file, _ => new object()))
            return Records(file).TryGetValue(hash, out var until) && until > DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    /// <summary>Records keys for their periods (the expired and, past the limit, the oldest records go).</summary>
    public static void Record(MailUser user, IEnumerable<(string Key, TimeSpan Period)> marks)
    {
        var file = TrackingFile(Home(user));
        lock (FileLocks.GetOrAdd(file, _ => new object()))
        {
            var records = Records(file);
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            foreach (var (key, period) in marks) records[Hash(key)] = now + (long)period.TotalSeconds;
            var kept = records.Where(r => r.Value > now).OrderByDescending(r => r.Value).Take(MaxTrackingRecords);
            AtomicFile.WriteText(file, string.Concat(kept.Select(r => $"{r.Value} {r.Key}\n")), AtomicFile.Private, (user.Uid, user.Gid));
        }
    }

    private static Dictionary<string, long> Records(string file)
    {
        var records = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!File.Exists(file)) return records;
        foreach (var line in File.ReadLines(file).Take(MaxTrackingRecords * 2))
        {
            var sp = line.IndexOf(' ');
            if (sp > 0 && long.TryParse(line.AsSpan(0, sp), out var until)) records[line[(sp + 1)..]] = until;
        }
        return records;
    }

    /// <summary>Appends a line to ~/.dovecot.sieve.log, kept under 64 KiB (the older half goes).</summary>
    public static void UserLog(MailUser user, string text)
    {
        var file = Path.Combine(Home(user), ".dovecot.sieve.log");
        lock (FileLocks.GetOrAdd(file, _ => new object()))
        {
            try
            {
                var line = $"{DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss zzz}: {text}\n";
                var old = File.Exists(file) ? File.ReadAllText(file) : "";
                if (old.Length + line.Length > MaxUserLog) old = old[(old.Length / 2)..];
                AtomicFile.WriteText(file, old + line, AtomicFile.Private, (user.Uid, user.Gid), durable: false);
            }
            catch (Exception e) when (StorageError.Is(e)) { Log.Warn($"cannot write {file}: {MailLog.Safe(e.Message)}"); }
        }
    }

    // ---- sending through mtad ----

    /// <summary>Hands a message to mtad's pickup socket; null on success, else why not.</summary>
    public async Task<string?> SendAsync(string sender, string recipient, Func<Stream> content, CancellationToken ct, byte[]? prefix = null)
    {
        using var client = new SmtpClient(ClientProtocol.Smtp, options.Hostname, TlsLevel.None) { DetectLoops = false };
        prefix ??= [];
        try
        {
            long size;
            using (var s = content()) size = prefix.Length + s.Length;
            var outgoing = new OutgoingMessage(sender, [recipient], size, new Dictionary<string, string>(), c => Read(prefix, content, c));
            var server = new ServerAddress("mtad", new UnixDomainSocketEndPoint(options.PickupSocket));
            var outcome = await client.DeliverAsync(server, outgoing, ct);
            var refused = outcome.Results.FirstOrDefault(r => !r.Ok);
            return refused?.Reply;
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or InvalidOperationException)
        {
            return $"cannot reach mtad's pickup socket {options.PickupSocket}: {e.Message}";
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Read(byte[] prefix, Func<Stream> content, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (prefix.Length > 0) yield return prefix;
        using var s = content();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await s.ReadAsync(buffer, ct)) > 0) yield return buffer.AsMemory(0, n).ToArray();
    }

    /// <summary>The line ends in a file, read in blocks (for the virtual size of an edited copy).</summary>
    public static long CountLines(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long lines = 0;
            int n;
            while ((n = fs.Read(buffer, 0, buffer.Length)) > 0) lines += buffer.AsSpan(0, n).Count((byte)'\n');
            return lines;
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>The reply a vacation action asks for (RFC 5230 5): to the sender, marked auto-replied, referring to the original.</summary>
    public byte[] VacationReply(VacationAction v, string recipient)
    {
        var reply = new MimeMessage();
        reply.From.Add(InternetAddressList.TryParse(v.From, out var from) && from.Mailboxes.FirstOrDefault() is { } f ? f : new MailboxAddress("", recipient));
        reply.To.Add(new MailboxAddress("", v.To));
        reply.Subject = v.Subject;
        if (v.InReplyTo != null) reply.Headers.Add(HeaderId.InReplyTo, v.InReplyTo);
        if (v.References != null) reply.Headers.Add(HeaderId.References, v.References);
        reply.Headers.Add("Auto-Submitted", "auto-replied (vacation)");
        reply.Date = DateTimeOffset.Now;
        reply.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(options.Hostname);
        if (v.Mime)
        {
            try { reply.Body = MimeEntity.Load(new MemoryStream(Encoding.UTF8.GetBytes(v.Reason.Replace("\r\n", "\n").Replace("\n", "\r\n")))); }
            catch (FormatException) { reply.Body = new TextPart("plain") { Text = v.Reason }; }
        }
        else reply.Body = new TextPart("plain") { Text = v.Reason };
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        using var ms = new MemoryStream();
        reply.WriteTo(format, ms);
        return ms.ToArray();
    }

    /// <summary>Maildir flag letters for Sieve flags: system flags by letter, keywords through the folder's dovecot-keywords.</summary>
    public static string FlagLetters(IReadOnlyList<string> flags, string folder, uint uid, uint gid)
    {
        if (flags.Count == 0) return "";
        var letters = new StringBuilder();
        MaildirFolder? f = null;
        foreach (var flag in flags)
        {
            char? c = flag.ToLowerInvariant() switch
            {
                "\\seen" => 'S', "\\answered" => 'R', "\\flagged" => 'F', "\\deleted" => 'T', "\\draft" => 'D',
                _ => (f ??= new MaildirFolder(folder, uid, gid)).KeywordLetter(flag),
            };
            if (c is { } letter) letters.Append(letter);
        }
        return MaildirFolder.NormalizeFlags(letters.ToString());
    }
}
