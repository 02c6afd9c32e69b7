// One SMTP session (RFC 5321) on the MX, submission or submissions port.
// Relay control as Postfix's permit_mynetworks, permit_sasl_authenticated,
// reject_unauth_destination; AUTH through AuthD, offered only under TLS or
// on loopback; on submission the sender must belong to the logged-in user.
// Strangers on the MX go through the mail-authentication checks (MailAuth):
// client and SPF decided at RCPT, DKIM, ARC and DMARC at the end of the data.
// DATA ends only at CRLF.CRLF, a bare CR is refused and a bare LF ends a
// line (SMTP smuggling; Postfix's smtpd_forbid_bare_newline = normalize). "250 queued" is said after the queue file and its directory
// are fsynced.
using System.Buffers;
using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Grpc.Core;
using Mail.Shared.Auth;
using Mail.Shared.IO;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using Mail.Shared.Smtp;
using Mail.MailAuth;
using Mail.Queue;
using NLog;

namespace Mail.Mta;

internal enum SmtpPort { Mx, Submission, Submissions }

internal sealed record SmtpOptions(string Hostname, long MaxMessageSize, int MaxRecipients, IReadOnlyList<(IPAddress Net, int Bits)> MyNetworks, bool MxRequiresTls, string Postmaster, bool RejectBareLf,
    bool MxAuth = false, string SubmissionPorts = "587 and 465");

internal sealed class SmtpSession(LineConnection conn, SmtpPort port, AuthClient auth, RecipientCache recipients, Spool spool, QueueManager queue,
    Func<X509Certificate2?> certificate, SmtpOptions options, InboundChecks? checks = null, DkimKeyring? signing = null, Anvil? anvil = null, Srs? srs = null)
    : SmtpServerSession<SmtpSession>(conn)
{
    private static readonly Logger SmtpdLog = MailLog.For("smtpd");
    protected override Logger Log => SmtpdLog;
    protected override string Protocol => "SMTP";
    protected override SmtpReply Greeting =>
        OverRate(RateKind.Connection, "connections") is { } refused ? refused : new(220, "", $"{options.Hostname} ESMTP");

    /// <summary>
    /// Counts an event against the client's rate limits (not for mynetworks and local clients, as
    /// Postfix's smtpd_client_event_limit_exceptions) and the logged-in user's: the refusal when over.
    /// </summary>
    private SmtpReply? OverRate(RateKind kind, string what)
    {
        if (anvil == null) return null;
        var ip = Conn.RemoteIp;
        int? count = null;
        string who = "";
        if (ip != null && !InMyNetworks(ip) && anvil.Count(kind, false, ip.ToString()) is { } byClient) (count, who) = (byClient, ip.ToString());
        if (count == null && _user != null && anvil.Count(kind, true, _user) is { } byUser) (count, who) = (byUser, "user " + _user);
        if (count == null) return null;
        var reply = kind == RateKind.Connection
            ? new SmtpReply(421, "4.7.0", $"{options.Hostname} Error: too many connections from {who}").AndClose()
            : new SmtpReply(450, "4.7.1", $"Error: too {(kind == RateKind.Message ? "much mail" : "many recipients")} from {MailLog.Safe(who)}");
        Log.Warn($"{Conn.SessionId}: rate limit: {count} {what} in {anvil.Limits.Unit.TotalSeconds:0}s from {MailLog.Safe(who)} (client={Conn.ClientDescription}): {reply}");
        return reply;
    }
    protected override string ConnectDetail => $" port={port}";
    protected override bool InTransaction => _from != null;
    protected override bool Greeted => _helo != null;
    protected override SmtpReply HeloFirst => Replies.SendHeloFirst;
    protected override FrozenDictionary<string, SmtpCommand<SmtpSession>> Commands => Table;
    protected override void Ended() => _bdat?.Dispose();

    /// <summary>The commands (RFC 5321 4.1, 3207, 4954, 3030), as Postfix's smtpd_cmd_table.</summary>
    private static readonly FrozenDictionary<string, SmtpCommand<SmtpSession>> Table = new SmtpCommand<SmtpSession>[]
    {
        new("EHLO", SmtpCommandFlags.Junk | SmtpCommandFlags.PreTls, (s, a) => Task.FromResult(s.Hello("EHLO", a))),
        new("HELO", SmtpCommandFlags.Junk | SmtpCommandFlags.PreTls, (s, a) => Task.FromResult(s.Hello("HELO", a))),
        new("STARTTLS", SmtpCommandFlags.PreTls, (s, a) => s.StartTlsAsync(a)),
        new("AUTH", SmtpCommandFlags.None, (s, a) => s.AuthAsync(a)),
        new("MAIL", SmtpCommandFlags.NeedsHelo, (s, a) => s.MailAsync(a)),
        new("RCPT", SmtpCommandFlags.NeedsMail, (s, a) => s.RcptAsync(a)),
        new("DATA", SmtpCommandFlags.NeedsMail, (s, a) => s.DataAsync(a)),
        new("BDAT", SmtpCommandFlags.None, (s, a) => s.BdatAsync(a)),
    }.Concat(CommonCommands).ToFrozenDictionary(c => c.Verb, StringComparer.Ordinal);
    private string? _helo;
    private string? _user;
    private string? _from;
    private readonly List<string> _rcpts = [];
    private readonly Dictionary<string, string> _dsn = new(StringComparer.Ordinal); // RET, ENVID, NOTIFY, ORCPT as queue attributes
    private Incoming? _bdat;
    private bool _bdatFailed;
    // The mail-authentication checks of a stranger on the MX: started as soon as their input is known.
    private Task<(ReverseOutcome? Reverse, DnsblOutcome? Dnsbl)>? _addressCheck;
    private Task<Check?>? _heloCheck;
    private Task<(SpfOutcome MailFrom, SpfOutcome Helo)>? _spfCheck;
    private Verdict? _rcptVerdict;
    private ClientResults? _client;

    /// <summary>AUTH where it may be used: submission, or the MX with mx_auth; only under TLS or from loopback either way.</summary>
    private bool AuthEnabled => port != SmtpPort.Mx || options.MxAuth;
    private bool AuthOffered => AuthEnabled && Conn.IsSecure;
    /// <summary>Submission needs TLS except from loopback (RFC 8314 3.3); the MX only with smtpd_tls_security_level = encrypt.</summary>
    protected override bool TlsRequired => port == SmtpPort.Mx ? options.MxRequiresTls && !Conn.IsTls : !Conn.IsSecure;
    private bool Trusted => _user != null || InMyNetworks(Conn.RemoteIp);
    /// <summary>Mail authentication applies on the MX to clients neither logged in nor in mynetworks.</summary>
    private bool Checked => checks != null && port == SmtpPort.Mx && Conn.RemoteIp != null && !Trusted;

    /// <summary>RFC 5321 4.1.1.1: HELO, or EHLO with the extensions offered (RFC 2920, 1870, 3207, 4954, 2034, 6152, 3461, 3030, 6531).</summary>
    private SmtpReply Hello(string verb, string arg)
    {
        if (arg.Length == 0) return Replies.NeedHostName(verb);
        _helo = arg;
        Reset();
        if (Checked)
        {
            _addressCheck ??= checks!.CheckAddressAsync(Conn.RemoteIp!, CancellationToken.None);
            _heloCheck = checks!.CheckHeloAsync(arg, CancellationToken.None);
            _client = null;
        }
        if (verb == "HELO") return new(250, "", options.Hostname);
        var lines = new List<string> { options.Hostname, "PIPELINING", $"SIZE {options.MaxMessageSize}" };
        if (!Conn.IsTls && certificate() != null) lines.Add("STARTTLS");
        if (AuthOffered) lines.Add("AUTH PLAIN LOGIN");
        lines.AddRange(["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "CHUNKING", "SMTPUTF8"]);
        return new(250, "", string.Join('\n', lines));
    }

    private async Task<SmtpReply> StartTlsAsync(string arg)
    {
        var cert = certificate();
        if (Conn.IsTls || cert == null) return Replies.TlsNotAvailable;
        if (arg.Length > 0) return SmtpReply.Syntax("STARTTLS");
        if (!await Conn.StartTlsAsync(cert, Replies.TlsGoAhead)) return SmtpReply.None.AndClose();
        _helo = null; // RFC 3207 4.2: forget what was said before TLS
        Reset();
        return SmtpReply.None;
    }

    protected override void Reset()
    {
        _spfCheck = null;
        _rcptVerdict = null;
        _from = null;
        _rcpts.Clear();
        _dsn.Clear();
        _bdat?.Dispose();
        _bdat = null;
        _bdatFailed = false;
    }

    /// <summary>RFC 4954 4: AUTH, the exchange run by AuthD, the 334 challenges written here.</summary>
    private async Task<SmtpReply> AuthAsync(string arg)
    {
        if (!AuthEnabled) return Replies.AuthOnSubmission(options.SubmissionPorts);
        if (!AuthOffered) return Replies.EncryptionRequired;
        if (_helo == null) return Replies.SendEhloFirst;
        if (_user != null) return Replies.AlreadyAuthenticated;
        if (_from != null) return Replies.AuthInTransaction;
        var parts = arg.Split(' ', 2);
        var mech = parts[0].ToUpperInvariant();
        var client = new ClientInfo { Service = "smtp", RemoteIp = Conn.RemoteIp?.ToString() ?? "", Secured = Conn.IsSecure, SessionId = Conn.SessionId };
        var result = await SaslExchange.RunAsync(auth, Conn, "334 ", mech, parts.Length == 2 ? parts[1] : null, client);
        if (result.Unreachable != null) Log.Error($"{Conn.SessionId}: authd unreachable: {MailLog.Safe(result.Unreachable)}");
        if (result.Succeeded)
        {
            _user = result.User;
            Log.Info($"{Conn.SessionId}: client={Conn.ClientDescription}, sasl_method={MailLog.Safe(mech, 20)}, sasl_username={MailLog.Safe(_user)}");
            return Replies.AuthSucceeded;
        }
        return result.Status switch
        {
            SaslStatus.Tempfail => Replies.AuthTemporaryFailure,
            SaslStatus.BadMechanism => Replies.UnknownMechanism,
            SaslStatus.Aborted => Replies.AuthAborted,
            SaslStatus.Malformed => Replies.CannotDecode,
            _ => Replies.AuthFailed,
        };
    }

    /// <summary>RFC 5321 4.1.1.2 MAIL, with SIZE (RFC 1870), BODY (RFC 6152), RET and ENVID (RFC 3461), SMTPUTF8, AUTH.</summary>
    private async Task<SmtpReply> MailAsync(string arg)
    {
        if (_from != null) return SmtpReply.NestedMail;
        if (port != SmtpPort.Mx && _user == null) return Replies.AuthRequired;
        if (!arg.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)) return SmtpReply.Syntax("MAIL FROM:<address>");
        var (path, rest) = SmtpPath.Parse(arg[5..]);
        if (path == null || (path.Length > 0 && !MailAddress.TryParse(path, out _))) return SmtpReply.BadSenderSyntax;
        var dsn = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, value) in SmtpPath.Parameters(rest))
        {
            var v = value;
            if (k == "SIZE") { if (!long.TryParse(v, out var size) || size < 0) return Replies.BadSize; if (size > options.MaxMessageSize) return SmtpReply.MessageTooBig; }
            else if (k == "BODY") { if (v.ToUpperInvariant() is not ("7BIT" or "8BITMIME")) return Replies.BadBody; }
            else if (k == "RET")
            {
                v = v.ToUpperInvariant();
                if (v is not ("FULL" or "HDRS") || dsn.ContainsKey(DsnAttributes.Ret)) return SmtpReply.BadParameter("RET");
                dsn[DsnAttributes.Ret] = v;
            }
            else if (k == "ENVID")
            {
                if (!Dsn.IsValidEnvId(v) || dsn.ContainsKey(DsnAttributes.EnvId)) return SmtpReply.BadParameter("ENVID");
                dsn[DsnAttributes.EnvId] = v;
            }
            else if (k is not ("SMTPUTF8" or "AUTH")) return SmtpReply.UnsupportedParameter(MailLog.Safe(k, 20));
        }
        if (OverRate(RateKind.Message, "messages") is { } tooMuch) return tooMuch;
        if (_user != null && !await SenderBelongsToUserAsync(path)) // a client logged in submits, on whichever port
        {
            Log.Warn($"{Conn.SessionId}: reject MAIL from=<{MailLog.Safe(path)}>: not owned by user {MailLog.Safe(_user)}");
            return Replies.SenderNotOwned(_user).WithAddress(path);
        }
        _from = path;
        foreach (var (k, v) in dsn) _dsn[k] = v;
        if (Checked) _spfCheck = checks!.CheckSpfAsync(Conn.RemoteIp!, path, _helo!, CancellationToken.None);
        return SmtpReply.SenderOk;
    }

    /// <summary>As Postfix's reject_sender_login_mismatch: the sender is the login, or an address that delivers to it.</summary>
    private async Task<bool> SenderBelongsToUserAsync(string sender)
    {
        if (!MailAddress.TryParse(sender, out var a)) return false;
        if (a.ToString() == _user) return true;
        try
        {
            var r = await recipients.ResolveAsync(a.ToString(), null);
            return r.Status == RecipientStatus.Ok && r.Targets.Any(t => t.Local && t.Mailbox == _user);
        }
        catch (RpcException) { return false; }
    }

    /// <summary>RFC 5321 4.1.1.3 RCPT, with NOTIFY and ORCPT (RFC 3461); relay control as Postfix's smtpd_relay_restrictions.</summary>
    private async Task<SmtpReply> RcptAsync(string arg)
    {
        if (!arg.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)) return SmtpReply.Syntax("RCPT TO:<address>");
        var (path, rest) = SmtpPath.Parse(arg[3..]);
        // RFC 5321 4.5.1: <postmaster> without a domain must be taken.
        if (path != null && path.Equals("postmaster", StringComparison.OrdinalIgnoreCase)) path = options.Postmaster;
        if (string.IsNullOrEmpty(path) || !MailAddress.TryParse(path, out var address) || address.Local.Contains('"'))
            return SmtpReply.BadRecipientSyntax;
        DsnNotify? notify = null;
        string? orcpt = null;
        foreach (var (k, v) in SmtpPath.Parameters(rest))
        {
            if (k == "NOTIFY" && notify == null && Dsn.TryParseNotify(v, out var n)) notify = n;
            else if (k == "ORCPT" && orcpt == null && Dsn.IsValidOrcpt(v)) orcpt = v;
            else if (k is "NOTIFY" or "ORCPT") return SmtpReply.BadParameter(k);
            else return SmtpReply.UnsupportedParameter(MailLog.Safe(k, 20));
        }
        if (_rcpts.Count >= options.MaxRecipients) return SmtpReply.TooManyRecipients;
        if (OverRate(RateKind.Recipient, "recipients") is { } tooMany) return tooMany;
        if (Checked && await RcptVerdictAsync() is { Refusal: { } checkRefusal })
        {
            Log.Info($"{Conn.SessionId}: reject: RCPT from {Conn.ClientDescription}: {checkRefusal}; from=<{MailLog.Safe(_from)}> to=<{MailLog.Safe(address.ToString())}> helo=<{MailLog.Safe(_helo)}>");
            return checkRefusal;
        }
        if (srs != null && Srs.IsSrs(path) && address.Domain.Equals(srs.Domain, StringComparison.OrdinalIgnoreCase))
        {
            // A bounce (or reply) to a sender we rewrote: taken only when its hash and time stamp hold.
            if (srs.Reverse(path, DateTimeOffset.UtcNow) == null)
            {
                var bad = Replies.BadSrsAddress.WithAddress(path);
                Log.Info($"{Conn.SessionId}: reject: RCPT from {Conn.ClientDescription}: {bad}; from=<{MailLog.Safe(_from)}> to=<{MailLog.Safe(path)}>");
                return bad;
            }
            if (!_rcpts.Contains(path, StringComparer.OrdinalIgnoreCase)) _rcpts.Add(path);
            return SmtpReply.RecipientOk;
        }
        ResolveRecipientReply r;
        try
        {
            r = await recipients.ResolveAsync(address.ToString(), new ClientInfo { Service = "smtp", RemoteIp = Conn.RemoteIp?.ToString() ?? "", SessionId = Conn.SessionId });
        }
        catch (RpcException e)
        {
            Log.Error($"{Conn.SessionId}: authd unreachable: {MailLog.Safe(e.Status.Detail)}");
            return SmtpReply.TemporaryLookupFailure.WithAddress(address.ToString());
        }
        SmtpReply? refusal = r.Status switch
        {
            RecipientStatus.Ok => null,
            RecipientStatus.NotOurDomain when Trusted => null,
            RecipientStatus.NotOurDomain => Replies.RelayDenied,
            RecipientStatus.Tempfail => SmtpReply.TemporaryLookupFailure,
            _ => SmtpReply.UserUnknown,
        };
        if (refusal is { } refused)
        {
            refused = refused.WithAddress(address.ToString());
            Log.Info($"{Conn.SessionId}: reject: RCPT from {Conn.ClientDescription}: {refused}; from=<{MailLog.Safe(_from)}> to=<{MailLog.Safe(address.ToString())}>");
            return refused;
        }
        // RFC 5321 2.4: the local part keeps its case on the way on (look-ups ignore it).
        var rcpt = path[..path.LastIndexOf('@')] + "@" + address.Domain;
        if (!_rcpts.Contains(rcpt, StringComparer.OrdinalIgnoreCase)) _rcpts.Add(rcpt); // a duplicate gets one copy, as Postfix's cleanup does
        if (notify != null) _dsn[Dsn.NotifyKey(rcpt)] = Dsn.FormatNotify(notify.Value);
        if (orcpt != null) _dsn[Dsn.OrcptKey(rcpt)] = orcpt;
        return SmtpReply.RecipientOk;
    }

    /// <summary>The client and SPF checks, decided once per transaction (as Postfix's smtpd_delay_reject, at RCPT).</summary>
    private async Task<Verdict> RcptVerdictAsync()
    {
        if (_rcptVerdict != null) return _rcptVerdict;
        var address = _addressCheck != null ? await _addressCheck : (null, null);
        var helo = _heloCheck != null ? await _heloCheck : null;
        _client = new ClientResults(Conn.RemoteIp!, _helo!, address.Reverse, helo, address.Dnsbl);
        var spf = _spfCheck != null ? (await _spfCheck).MailFrom : null;
        return _rcptVerdict = checks!.AtRcpt(_client, spf);
    }

    /// <summary>A fault in the checks defers this message (451) and harms nothing else.</summary>
    private async Task<SmtpReply?> CheckMessageGuardedAsync(Incoming message)
    {
        try { return await CheckMessageAsync(message); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.Error($"{message.Id}: message checks failed: {e.GetType().Name}: {MailLog.Safe(e.Message)}; from=<{MailLog.Safe(_from)}>, client={Conn.ClientDescription}");
            return Replies.ChecksFailed;
        }
    }

    /// <summary>DKIM, ARC and DMARC over the message as queued, before the commit: refuse, or add the results' headers.</summary>
    private async Task<SmtpReply?> CheckMessageAsync(Incoming message)
    {
        var atRcpt = await RcptVerdictAsync();
        using var content = message.File.ReadBack();
        if (content == null) return null; // the write failed: the commit says so
        MimeKit.MimeMessage parsed;
        try { parsed = await MimeKit.MimeMessage.LoadAsync(content, persistent: true); }
        catch (FormatException) { parsed = new MimeKit.MimeMessage(); }
        SpfOutcome? spf = null, heloSpf = null;
        if (_spfCheck != null) (spf, heloSpf) = await _spfCheck;
        var results = await checks!.CheckMessageAsync(parsed, _client!, _from ?? "", spf, heloSpf, atRcpt, CancellationToken.None);
        Log.Info($"{message.Id}: auth: client={Conn.ClientDescription}, helo=<{MailLog.Safe(_helo)}>, from=<{MailLog.Safe(_from)}>, {results.Verdict.Log}");
        if (results.Verdict.Refusal is { } refused) return refused;
        message.File.Prepend(System.Text.Encoding.ASCII.GetBytes(results.Headers));
        return null;
    }

    /// <summary>
    /// Mail of our users (logged in, mynetworks, the pickup socket) gets a DKIM signature per key
    /// of its From domain, put above the message as queued. A message that cannot be signed (a
    /// fault of ours) is deferred, never sent unsigned by surprise.
    /// </summary>
    private SmtpReply? SignMessage(Incoming message)
    {
        try
        {
            using var content = message.File.ReadBack();
            if (content == null) return null; // the write failed: the commit says so
            MimeKit.MimeMessage parsed;
            try { parsed = MimeKit.MimeMessage.Load(content, persistent: true); }
            catch (FormatException) { return null; } // nothing to sign
            var signatures = signing!.Sign(parsed, out var domain);
            while (signing.Errors.TryTake(out var error)) Log.Error($"DKIM key unusable: {MailLog.Safe(error)}");
            if (signatures.Length == 0) return null;
            message.File.Prepend(System.Text.Encoding.ASCII.GetBytes(signatures));
            Log.Info($"{message.Id}: DKIM-Signature added (d={domain}, selectors {string.Join(",", signing.KeysOf(domain!).Select(k => k.Selector))})");
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.Error($"{message.Id}: DKIM signing failed: {e.GetType().Name}: {MailLog.Safe(e.Message)}; from=<{MailLog.Safe(_from)}>, client={Conn.ClientDescription}");
            return Replies.ChecksFailed;
        }
    }

    /// <summary>A message being received: its queue file and the filters that feed it.</summary>
    private sealed class Incoming(QueueFileWriter file, string id, HeaderCleanup cleanup, DataWriter writer) : IDisposable
    {
        public QueueFileWriter File { get; } = file;
        public string Id { get; } = id;
        public HeaderCleanup Cleanup { get; } = cleanup;
        public DataWriter Writer { get; } = writer;
        public void Dispose() => File.Dispose();
    }

    private Incoming BeginMessage(bool dotStuffed)
    {
        var attributes = new Dictionary<string, string>(_dsn)
        {
            ["client"] = Conn.ClientDescription, ["helo"] = _helo ?? "", ["sasl_username"] = _user ?? "",
            ["protocol"] = (Conn.IsTls ? "ESMTPS" : "ESMTP") + (_user != null ? "A" : ""),
            [Bounces.StrangerAttribute] = Trusted ? "no" : "yes",
        };
        if (Conn.RemoteIp == null) attributes[QueueManager.OriginAttribute] = "local";
        var envelope = new QueueEnvelope(DateTimeOffset.UtcNow, _from!, _rcpts.ToList(), attributes);
        var file = spool.Create(envelope, out var id);
        var received = $"Received: from {_helo} ({Conn.ClientDescription})\r\n" +
                       (_user != null ? "\t(authenticated sender)\r\n" : "") +
                       $"\tby {options.Hostname} with {attributes["protocol"]}{(Conn.IsTls ? $" ({Conn.TlsProtocol})" : "")} id {id}\r\n" +
                       (_rcpts.Count == 1 ? $"\tfor <{_rcpts[0]}>" : "\t") +
                       $"; {DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture)}\r\n";
        file.WriteContent(Encoding.UTF8.GetBytes(received));
        var cleanup = new HeaderCleanup(file.ContentStream, options.Hostname, port != SmtpPort.Mx || _user != null, id, stripAuthResults: Checked);
        return new Incoming(file, id, cleanup, new DataWriter(cleanup, options.MaxMessageSize, dotStuffed, keepCrLf: true));
    }

    /// <summary>
    /// RFC 5321 4.1.1.4 DATA: ends only at CRLF.CRLF. A bare CR ends the session (SMTP smuggling);
    /// a line ended by a bare LF is taken as if it ended in CRLF (many PHP mailers write them), or
    /// with smtpd_forbid_bare_newline = reject ends the session for clients outside mynetworks.
    /// </summary>
    private async Task<SmtpReply> DataAsync(string arg)
    {
        if (_bdat != null) return Replies.BdatInProgress;
        if (arg.Length > 0) return SmtpReply.Syntax("DATA");
        if (_rcpts.Count == 0) return SmtpReply.NoValidRecipients;
        Incoming begun;
        try { begun = BeginMessage(dotStuffed: true); }
        catch (Exception e) when (StorageError.Is(e)) { return SpoolRefusal(e); }
        using var message = begun;
        await SendAsync(Replies.StartData);
        if (!await message.Writer.ReadDataAsync(Conn)) return DataEnded("DATA");
        if (message.Writer.HasBareCr || (message.Writer.HasBareLf && options.RejectBareLf && !Trusted))
        {
            var what = message.Writer.HasBareCr ? "CR" : "LF";
            Log.Warn($"{Conn.SessionId}: reject: bare <{what}> in DATA from {Conn.ClientDescription}");
            return Replies.BareLineEnd(options.Hostname, what);
        }
        return await FinishMessageAsync(message);
    }

    /// <summary>
    /// BDAT (RFC 3030): the chunk is read whatever happens, so the session stays in
    /// step; a length that cannot be parsed ends the session, as nothing can follow.
    /// Chunks are length-framed, so a bare LF is only a line end; a bare CR is refused.
    /// </summary>
    private async Task<SmtpReply> BdatAsync(string arg)
    {
        var parts = arg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is < 1 or > 2 || parts[0].Length > 18 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var size) ||
            (parts.Length == 2 && !parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase)))
            return SmtpReply.Syntax("BDAT count [LAST]").AndClose();
        bool last = parts.Length == 2;
        SmtpReply? fail = _helo == null ? Replies.SendHeloFirst
            : _from == null ? SmtpReply.NeedMail
            : _rcpts.Count == 0 ? SmtpReply.NoValidRecipients
            : _bdatFailed ? Replies.BdatFailedEarlier
            : null;
        if (fail == null && _bdat == null)
        {
            try { _bdat = BeginMessage(dotStuffed: false); }
            catch (Exception e) when (StorageError.Is(e)) { fail = SpoolRefusal(e); _bdatFailed = true; }
        }
        var writer = fail == null ? _bdat!.Writer : new DataWriter(Stream.Null, long.MaxValue, dotStuffed: false);
        if (!await writer.ReadChunkAsync(Conn, size, last)) return DataEnded("BDAT");
        if (fail is { } failed) return failed;
        if (writer.HasBareCr)
        {
            Log.Warn($"{Conn.SessionId}: reject: bare <CR> in BDAT from {Conn.ClientDescription}");
            _bdatFailed = true;
            _bdat!.Dispose();
            _bdat = null;
            return Replies.BareCrInChunk;
        }
        if (!last) return SmtpReply.ChunkReceived(size);
        using var message = _bdat!;
        _bdat = null;
        return await FinishMessageAsync(message);
    }

    /// <summary>DATA or BDAT ended before its end: the deadline passed (421, as Postfix), or the client went away.</summary>
    private SmtpReply DataEnded(string verb)
    {
        if (!Conn.TimedOut) throw new IOException($"client went away during {verb}");
        Log.Info($"{Conn.SessionId}: timeout after {verb} from {Conn.ClientDescription}");
        return SmtpReply.IdleTimeout;
    }

    private async Task<SmtpReply> FinishMessageAsync(Incoming message)
    {
        var (id, writer, cleanup, file) = (message.Id, message.Writer, message.Cleanup, message.File);
        cleanup.Complete();
        // The limit covers the message as queued, with the headers added here, so that a next
        // hop with the same limit (lmtpd's counts what it is sent) never refuses it after our 250.
        var refusal = writer.TooBig || file.ContentLength > options.MaxMessageSize ? SmtpReply.MessageTooBig
            : cleanup.HeaderTooBig ? SmtpReply.HeaderTooBig
            : cleanup.Received > HeaderCleanup.HopLimit ? Replies.TooManyHops
            : writer.HasNul ? SmtpReply.ContainsNul
            : Checked ? await CheckMessageGuardedAsync(message)
            : Trusted && signing != null ? SignMessage(message)
            : (SmtpReply?)null;
        if (refusal is { } refused)
        {
            Log.Info($"{id}: reject: DATA from {Conn.ClientDescription}: {refused}; from=<{MailLog.Safe(_from)}>");
            Reset();
            return refused;
        }
        try { await file.CommitAsync(); }
        catch (Exception e) when (StorageError.Is(e))
        {
            var reply = SpoolRefusal(e);
            Reset();
            return reply;
        }
        Messages++;
        MtaMetrics.Accepted.WithLabels(port.ToString().ToLowerInvariant()).Inc();
        Log.Info($"{id}: client={Conn.ClientDescription}{(_user != null ? ", sasl_username=" + MailLog.Safe(_user) : "")}");
        Log.Info($"{id}: from=<{MailLog.Safe(_from)}>, size={file.ContentLength}, nrcpt={_rcpts.Count} (queue active)");
        Reset();
        queue.Wake();
        return Replies.Queued(id);
    }

    /// <summary>The queue could not take the message: logged as the error it is, answered with a temporary failure.</summary>
    private SmtpReply SpoolRefusal(Exception e)
    {
        var reply = SmtpReply.SpoolFailure(StorageError.Classify(e));
        Log.Error($"{Conn.SessionId}: queue file write failed ({StorageError.Classify(e)}): {MailLog.Safe(e.Message)}; from=<{MailLog.Safe(_from)}>, client={Conn.ClientDescription}: {reply}");
        return reply;
    }

    private bool InMyNetworks(IPAddress? ip)
    {
        if (ip == null) return true; // Unix socket: a local process
        foreach (var (net, bits) in options.MyNetworks)
            if (SpfChecker.InNetwork(ip, net, bits)) return true; // the same prefix match as SPF's ip4/ip6
        return false;
    }
}
