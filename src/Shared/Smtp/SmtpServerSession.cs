// The one session loop of mtad's SMTP and lmtpd's LMTP (RFC 5321, RFC 2033):
// read a line, end at once on a non-SMTP command (SmtpGuard), look the verb up
// in the session's command table, apply the table's flags (junk commands
// limited as Postfix's smtpd_junk_command_limit, STARTTLS first where the
// listener requires TLS, HELO/LHLO required), run
// the handler, and write replies (buffered while the client has pipelined
// more, flushed when it waits). Errors are counted; too many end the session.
// The disconnect line counts commands by verb, as Postfix's smtpd does.
using System.Collections.Frozen;
using Mail.Shared.Logging;
using Mail.Shared.Net;
using NLog;

namespace Mail.Shared.Smtp;

[Flags]
public enum SmtpCommandFlags
{
    None = 0,
    /// <summary>NOOP, RSET, VRFY, HELO/EHLO/LHLO: beyond the junk limit each counts as an error.</summary>
    Junk = 1,
    /// <summary>Only after HELO, EHLO or LHLO (RFC 5321 4.1.4).</summary>
    NeedsHelo = 2,
    /// <summary>Only inside a transaction, after MAIL (RFC 5321 4.1.4: RCPT, DATA; BDAT reads its chunk first and checks itself).</summary>
    NeedsMail = 4,
    /// <summary>Allowed before STARTTLS where the listener requires TLS (RFC 3207 4: EHLO, HELO, STARTTLS, NOOP, RSET, QUIT).</summary>
    PreTls = 8,
}

/// <summary>A command of a session's table: its verb, flags and handler, which returns the reply.</summary>
public sealed record SmtpCommand<TSession>(string Verb, SmtpCommandFlags Flags, Func<TSession, string, Task<SmtpReply>> Run);

public abstract class SmtpServerSession<TSession>(LineConnection conn) where TSession : SmtpServerSession<TSession>
{
    private readonly OrderedDictionary<string, int> _commands = new(StringComparer.Ordinal);
    private int _junk;

    protected LineConnection Conn => conn;
    protected int Errors { get; private set; }
    protected int Messages { get; set; }

    protected abstract Logger Log { get; }
    /// <summary>"SMTP" or "LMTP", for the log.</summary>
    protected abstract string Protocol { get; }
    protected abstract SmtpReply Greeting { get; }
    protected abstract FrozenDictionary<string, SmtpCommand<TSession>> Commands { get; }
    /// <summary>Has the client said HELO, EHLO or LHLO?</summary>
    protected abstract bool Greeted { get; }
    /// <summary>Has the client said MAIL in this transaction?</summary>
    protected abstract bool InTransaction { get; }
    /// <summary>The reply to a command before HELO that needs it.</summary>
    protected abstract SmtpReply HeloFirst { get; }
    /// <summary>The reply to a verb the table does not have.</summary>
    protected virtual SmtpReply UnknownCommand => SmtpReply.Unrecognized;
    /// <summary>Does this listener refuse all but <see cref="SmtpCommandFlags.PreTls"/> commands until STARTTLS?</summary>
    protected virtual bool TlsRequired => false;
    protected virtual int ErrorLimit => 20;
    protected virtual int JunkLimit => 100;
    /// <summary>Extra words for the connect log line.</summary>
    protected virtual string ConnectDetail => "";
    /// <summary>Runs when the session ends, however it ends.</summary>
    protected virtual void Ended() { }
    /// <summary>Forgets the transaction (RSET, RFC 5321 4.1.1.5; also after HELO and STARTTLS).</summary>
    protected abstract void Reset();

    /// <summary>The commands SMTP and LMTP answer alike (RFC 5321 4.1.1.5, 4.1.1.9, 3.5.3, 4.1.1.10).</summary>
    protected static readonly SmtpCommand<TSession>[] CommonCommands =
    [
        new("RSET", SmtpCommandFlags.Junk | SmtpCommandFlags.PreTls, (s, _) => { s.Reset(); return Task.FromResult(SmtpReply.Ok); }),
        new("NOOP", SmtpCommandFlags.Junk | SmtpCommandFlags.PreTls, (_, _) => Task.FromResult(SmtpReply.Ok)),
        new("VRFY", SmtpCommandFlags.Junk, (_, _) => Task.FromResult(SmtpReply.VrfyDisabled)),
        new("QUIT", SmtpCommandFlags.PreTls, (_, _) => Task.FromResult(SmtpReply.Bye)),
    ];

    public async Task RunAsync()
    {
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}{ConnectDetail}");
        try
        {
            var reply = Greeting;
            while (await WriteAsync(reply))
            {
                var read = await conn.ReadLineAsync();
                reply = read.Status switch
                {
                    LineStatus.Shutdown => SmtpReply.ShuttingDown,
                    LineStatus.Timeout => TimedOut(),
                    LineStatus.Closed => SmtpReply.None.AndClose(),
                    LineStatus.TooLong => SmtpReply.LineTooLong,
                    _ => await CommandAsync(read.Text),
                };
            }
        }
        finally
        {
            Ended();
            var counts = string.Concat(_commands.Select(c => $" {c.Key.ToLowerInvariant()}={c.Value}"));
            Log.Info($"{conn.SessionId}: disconnect from {conn.ClientDescription}{counts} commands={_commands.Values.Sum()} messages={Messages} errors={Errors}");
        }
    }

    private string _lastVerb = "CONNECT";

    /// <summary>The client did not finish a line in time: logged as Postfix's "timeout after VERB".</summary>
    private SmtpReply TimedOut()
    {
        Log.Info($"{conn.SessionId}: timeout after {_lastVerb} from {conn.ClientDescription}");
        return SmtpReply.IdleTimeout;
    }

    private async Task<SmtpReply> CommandAsync(string line)
    {
        int sp = line.IndexOf(' ');
        var verb = (sp < 0 ? line : line[..sp]).ToUpperInvariant();
        var arg = sp < 0 ? "" : line[(sp + 1)..].Trim();
        if (SmtpGuard.IsForbidden(verb))
        {
            Log.Warn($"{conn.SessionId}: non-{Protocol} command from {conn.ClientDescription}: {MailLog.Safe(line, 100)}");
            return SmtpGuard.Goodbye;
        }
        if (HasControlCharacters(line))
        {
            // A NUL or bare CR in a command would reach a header (HELO in Received) or a
            // later hop's parser; Postfix refuses such lines alike.
            Log.Info($"{conn.SessionId}: reject: command with control characters from {conn.ClientDescription}: {MailLog.Safe(line, 100)}");
            return SmtpReply.ControlCharacters;
        }
        Commands.TryGetValue(verb, out var command);
        var counted = command?.Verb ?? "UNKNOWN";
        _lastVerb = counted;
        _commands[counted] = _commands.GetValueOrDefault(counted) + 1;
        if (command == null)
        {
            Log.Info($"{conn.SessionId}: unknown command '{MailLog.Safe(verb, 20)}' from {conn.ClientDescription}");
            return UnknownCommand;
        }
        if ((command.Flags & SmtpCommandFlags.Junk) != 0 && ++_junk > JunkLimit && ++Errors > ErrorLimit)
        {
            Log.Warn($"{conn.SessionId}: too many junk commands from {conn.ClientDescription}");
            return SmtpReply.TooManyJunk;
        }
        if ((command.Flags & SmtpCommandFlags.PreTls) == 0 && TlsRequired)
        {
            Log.Info($"{conn.SessionId}: reject: {command.Verb} before STARTTLS from {conn.ClientDescription}");
            return SmtpReply.StartTlsFirst;
        }
        if ((command.Flags & SmtpCommandFlags.NeedsHelo) != 0 && !Greeted) return HeloFirst;
        if ((command.Flags & SmtpCommandFlags.NeedsMail) != 0 && !InTransaction) return SmtpReply.NeedMail;
        return await command.Run((TSession)this, arg);
    }

    /// <summary>A C0 control character other than TAB, DEL, or bytes that were not UTF-8 (decoded as U+FFFD).</summary>
    private static bool HasControlCharacters(string line)
    {
        foreach (var c in line)
            if ((c < ' ' && c != '\t') || c == '\x7f' || c == '\ufffd') return true;
        return false;
    }

    /// <summary>
    /// Writes a handler's reply, held back while the client has pipelined more (RFC 2920: one
    /// write for a group); false when the session ends (the reply closes it, or too many errors).
    /// </summary>
    private async Task<bool> WriteAsync(SmtpReply reply)
    {
        if (reply.IsNone) return !reply.Closes;
        if (reply.IsError) Metrics.MailMetrics.Refusals.WithLabels(_lastVerb, reply.Status.Length > 0 ? reply.Status : reply.Code.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        if (reply.IsError && ++Errors > ErrorLimit && !reply.Closes)
        {
            Log.Warn($"{conn.SessionId}: too many errors from {conn.ClientDescription}; last reply: {reply}");
            reply = SmtpReply.TooManyErrors;
        }
        await SendAsync(reply);
        if (reply.Closes) await conn.FlushAsync();
        return !reply.Closes;
    }

    /// <summary>
    /// A reply before the handler's last: 354, a 334 challenge, LMTP's reply for each recipient
    /// (RFC 2033 4.2). Written at once unless the client has pipelined more.
    /// </summary>
    protected async Task SendAsync(SmtpReply reply)
    {
        foreach (var line in reply.Lines()) conn.BufferLine(line);
        if (!conn.HasBufferedInput()) await conn.FlushAsync();
    }
}
