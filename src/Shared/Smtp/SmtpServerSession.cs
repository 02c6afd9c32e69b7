// The one session loop of mtad's SMTP and lmtpd's LMTP (RFC 5321, RFC 2033):
// read a line, end at once on a non-SMTP command (SmtpGuard), look the verb up
// in the session's command table, apply the table's flags (junk commands
// limited as Postfix's smtpd_junk_command_limit, HELO/LHLO required), run
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
}

/// <summary>A command of a session's table: its verb, flags and handler (false ends the session).</summary>
public sealed record SmtpCommand<TSession>(string Verb, SmtpCommandFlags Flags, Func<TSession, string, Task<bool>> Run);

public abstract class SmtpServerSession<TSession>(LineConnection conn) where TSession : SmtpServerSession<TSession>
{
    private readonly OrderedDictionary<string, int> _commands = new(StringComparer.Ordinal);
    private int _junk;

    protected int Errors { get; private set; }
    protected int Messages { get; set; }

    protected abstract Logger Log { get; }
    /// <summary>"SMTP" or "LMTP", for the log.</summary>
    protected abstract string Protocol { get; }
    protected abstract string Greeting { get; }
    protected abstract FrozenDictionary<string, SmtpCommand<TSession>> Commands { get; }
    /// <summary>Has the client said HELO, EHLO or LHLO?</summary>
    protected abstract bool Greeted { get; }
    /// <summary>The reply to a command before HELO that needs it.</summary>
    protected abstract string HeloFirst { get; }
    /// <summary>The reply to a verb the table does not have.</summary>
    protected virtual string UnknownCommand => "502 5.5.2 Error: command not recognized";
    protected virtual int ErrorLimit => 20;
    protected virtual int JunkLimit => 100;
    /// <summary>Extra words for the connect log line.</summary>
    protected virtual string ConnectDetail => "";
    /// <summary>Runs when the session ends, however it ends.</summary>
    protected virtual void Ended() { }

    public async Task RunAsync()
    {
        Log.Info($"{conn.SessionId}: connect from {conn.ClientDescription}{ConnectDetail}");
        await conn.WriteLineAsync(Greeting);
        try
        {
            while (true)
            {
                var read = await conn.ReadLineAsync();
                if (read.Status == LineStatus.Shutdown) { await conn.WriteLineAsync("421 4.3.2 Service shutting down"); return; }
                if (read.Status == LineStatus.Timeout) { await conn.WriteLineAsync("421 4.4.2 Idle timeout, closing connection"); return; }
                if (read.Status == LineStatus.Closed) return;
                if (read.Status == LineStatus.TooLong) { if (!await Reply("500 5.5.2 Line too long")) return; continue; }
                if (!await CommandAsync(read.Text)) return;
            }
        }
        finally
        {
            Ended();
            var counts = string.Concat(_commands.Select(c => $" {c.Key.ToLowerInvariant()}={c.Value}"));
            Log.Info($"{conn.SessionId}: disconnect from {conn.ClientDescription}{counts} commands={_commands.Values.Sum()} messages={Messages} errors={Errors}");
        }
    }

    private async Task<bool> CommandAsync(string line)
    {
        int sp = line.IndexOf(' ');
        var verb = (sp < 0 ? line : line[..sp]).ToUpperInvariant();
        var arg = sp < 0 ? "" : line[(sp + 1)..].Trim();
        if (SmtpGuard.IsForbidden(verb))
        {
            Log.Warn($"{conn.SessionId}: non-{Protocol} command from {conn.ClientDescription}: {MailLog.Safe(line, 100)}");
            await conn.WriteLineAsync(SmtpGuard.Goodbye);
            return false;
        }
        Commands.TryGetValue(verb, out var command);
        var counted = command?.Verb ?? "UNKNOWN";
        _commands[counted] = _commands.GetValueOrDefault(counted) + 1;
        if (command == null)
        {
            Log.Info($"{conn.SessionId}: unknown command '{MailLog.Safe(verb, 20)}' from {conn.ClientDescription}");
            return await Reply(UnknownCommand);
        }
        if ((command.Flags & SmtpCommandFlags.Junk) != 0 && ++_junk > JunkLimit && ++Errors > ErrorLimit)
        {
            Log.Warn($"{conn.SessionId}: too many junk commands from {conn.ClientDescription}");
            await conn.WriteLineAsync("421 4.7.0 Too many junk commands, closing connection");
            return false;
        }
        if ((command.Flags & SmtpCommandFlags.NeedsHelo) != 0 && !Greeted) return await Reply(HeloFirst);
        return await command.Run((TSession)this, arg);
    }

    /// <summary>
    /// Sends a reply, held back while the client has pipelined more (RFC 2920: one write for a
    /// group); false when the session must end (too many errors).
    /// </summary>
    protected async Task<bool> Reply(string line)
    {
        if (line[0] is '4' or '5' && ++Errors > ErrorLimit)
        {
            Log.Warn($"{conn.SessionId}: too many errors from {conn.ClientDescription}; last reply: {line}");
            await conn.WriteLineAsync("421 4.7.0 Too many errors, closing connection");
            return false;
        }
        conn.BufferLine(line);
        if (!conn.HasBufferedInput()) await conn.FlushAsync();
        return true;
    }

    /// <summary>Counts replies written without <see cref="Reply"/> (LMTP's per-recipient replies after the data).</summary>
    protected void CountError() => Errors++;
}
