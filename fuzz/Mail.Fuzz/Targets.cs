// The fuzz targets. Each takes one input and throws only for a bug: an exception the
// code's contract does not allow, a property that does not hold (the same result however
// the input is cut into reads; DATA ending only at CRLF.CRLF; the one-pass MIME scan
// agreeing with MimeKit's parse), or a session that does not end in time.
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Mail.AuthD;
using Mail.AuthD.DovecotAuth;
using Mail.AuthD.Sasl;
using Mail.AuthD.Socketmap;
using Mail.ImapPop.Imap;
using Mail.Queue;
using Mail.Shared.Net;
using Mail.Shared.Smtp;
using Mail.Shared.UserDirectory;
using Microsoft.AspNetCore.Connections;

namespace Mail.Fuzz;

public static class Targets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["imap-command"] = ImapCommand,
        ["smtp-data"] = SmtpData,
        ["queue-file"] = QueueFile,
        ["mime"] = Mime,
        ["socketmap"] = Socketmap,
        ["dovecot-auth"] = DovecotAuth,
        ["mail-auth"] = MailAuthRecords,
        ["sieve"] = SieveScript,
    };

    /// <summary>Where a target that needs a file writes its input: one file per process, in memory when /dev/shm is there.</summary>
    private static readonly string Scratch = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"mail-fuzz-{Environment.ProcessId}");

    /// <summary>The read sizes an input is cut into, chosen by its first byte, so that the fuzzer explores them too.</summary>
    private static IEnumerable<int> Cuts(byte[] input)
    {
        int step = input.Length == 0 ? 1 : 1 + input[0] % 13;
        for (int at = step; at < input.Length; at += step) yield return at;
    }

    private class Bug(string message) : Exception(message);

    // --- Mail authentication: the parsers of what DNS and messages bring ---

    /// <summary>
    /// SPF, DMARC and DKIM tag records, DNS-list sites and HELO names as the DNS or a client may
    /// send them: each parser gives its answer or its own format error, nothing else; text for a
    /// header comes out with no line break or control character in it.
    /// </summary>
    private static Mail.MailAuth.Srs? _srs;

    private static void MailAuthRecords(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        Mail.MailAuth.SpfChecker.TryParse("v=spf1 " + text, out _);
        Mail.MailAuth.SpfChecker.TryParse(text, out _);
        _ = Mail.MailAuth.DmarcRecord.Parse(text);
        _ = Mail.MailAuth.DmarcRecord.Parse("v=DMARC1; " + text);
        _ = Mail.MailAuth.Tags.Parse(text);
        _ = Mail.MailAuth.ClientChecker.IsValidHelo(text);
        try { _ = Mail.MailAuth.DnsblSite.Parse(text); } catch (FormatException) { }
        _ = Mail.MailAuth.AuthResults.AuthservIdOf(text);
        // An SRS address from anyone (a bounce's RCPT): reversed only when it holds, never a crash.
        var srs = _srs ??= new Mail.MailAuth.Srs(["fuzz secret"], "fwd.test");
        if (srs.Reverse(text + "@fwd.test", DateTimeOffset.UnixEpoch) is { } reversed && !text.StartsWith("SRS", StringComparison.OrdinalIgnoreCase))
            throw new Bug($"not an SRS address, yet reversed to {reversed}");
        srs.Reverse("SRS0=" + text + "@fwd.test", DateTimeOffset.UnixEpoch);
        srs.Reverse("SRS1=" + text + "@fwd.test", DateTimeOffset.UnixEpoch);
        // An aggregate report another server sent (gzip, zip or XML): a report or nothing.
        _ = Mail.MailAuth.DmarcFeedback.Read(input);
        var header = new Mail.MailAuth.AuthResults("mx.test").Add("dkim", "pass", text, ("header.d", text), ("header.s", text)).Header;
        if (header[..^2].Replace("\r\n\t", " ").Any(ch => ch is < ' ' or > '~'))
            throw new Bug($"client text broke out of its place in a header: {header}");
    }

    // --- Sieve: a user's script, as ManageSieve's PUTSCRIPT or a Dovecot user's ~/sieve brings it ---

    /// <summary>
    /// A script parses or fails with an error and a line within it; never an exception, never a
    /// deeper tree than the limit. One that may run is run on a message within its limits.
    /// </summary>
    private static void SieveScript(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        var script = Mail.Sieve.SieveParser.Parse(text, out var error, _sieveLimits ??= new Mail.Sieve.SieveLimits { MaxNesting = 8, MaxStringLength = 4096 });
        if ((script == null) != (error != null)) throw new Bug("a script neither parsed nor failed");
        if (error != null && (error.Line < 1 || error.Line > text.Count(c => c == '\n') + 1)) throw new Bug($"error line {error.Line} outside the script");
        if (script == null || Mail.Sieve.SieveValidator.Validate(script) != null) return;
        // A script that may run, run on a message: actions or a fault (and then only the implicit keep), never an exception.
        var compiled = Mail.Sieve.SieveCompiler.Compile(text, "fuzz", out _, _sieveLimits)!;
        var message = Mail.Sieve.SieveMessage.FromBytes(SieveMessageBytes, "a@example.net", "bob+x@example.org");
        var result = Mail.Sieve.SieveInterpreter.Run([compiled], message, _sieveRun ??= new Mail.Sieve.SieveEnvironment
        {
            Limits = new Mail.Sieve.SieveRunLimits { MaxSteps = 10_000, MaxTime = TimeSpan.FromSeconds(1) },
            Include = (name, _) => name == "self" ? (compiled, null) : null,
        });
        if (result.Error != null && (result.Actions.Count > 0 || !result.ImplicitKeep)) throw new Bug("a fault left actions");
        if (result.Error?.Message.StartsWith(Mail.Sieve.SieveInterpreter.InternalError, StringComparison.Ordinal) == true) throw new Bug(result.Error.Message);
        if (result.Actions.Count > 32) throw new Bug("more actions than the limit");
        _ = result.Describe().ToList();
        if (message.HeadersChanged) message.Write(Stream.Null);
    }

    private static readonly byte[] SieveMessageBytes = Encoding.UTF8.GetBytes(
        "From: Ann <ann@example.net>\r\nTo: bob+x@example.org, c@example.org\r\nSubject: =?UTF-8?B?w6k=?= hello\r\n" +
        "Date: Mon, 7 Dec 2026 10:00:00 +0100\r\nMessage-ID: <1@example.net>\r\nX-Spam-Status: Yes, reasons=x\r\n" +
        "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi there\r\n--b\r\n" +
        "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b--\r\n");

    private static Mail.Sieve.SieveEnvironment? _sieveRun;

    private static Mail.Sieve.SieveLimits? _sieveLimits;

    // --- IMAP: the command reader, with the limits before and after login ---

    // Made on first use: instrumented code must not run before SharpFuzz has set up its trace map.
    private static ReaderLimits? _preLogin, _postLogin;
    private static ReaderLimits PreLogin => _preLogin ??= new() { MaxLine = 1024, MaxMemoryLiteral = 8192, MaxLiteral = 8192, MaxAppendLiteral = 8192, MaxLiterals = 4, MaxCommand = 16384 };
    private static ReaderLimits PostLogin => _postLogin ??= new() { MaxLine = 4096, MaxMemoryLiteral = 1024, MaxLiteral = 1 << 16, MaxAppendLiteral = 1 << 16, MaxLiterals = 20, MaxCommand = 1 << 17 };

    private static void ImapCommand(byte[] input)
    {
        foreach (var limits in new[] { PreLogin, PostLogin })
        {
            var whole = ReadCommands(limits, input, []);
            var cut = ReadCommands(limits, input, Cuts(input));
            if (whole != cut) throw new Bug($"the commands depend on how the input is cut:\n{whole}\n---\n{cut}");
        }
    }

    private static string ReadCommands(ReaderLimits limits, byte[] input, IEnumerable<int> cuts)
    {
        var reader = new CommandReader(limits, _ => new MemoryStream());
        var log = new StringBuilder();
        var pending = new List<byte>();
        int at = 0;
        foreach (var end in cuts.Append(input.Length))
        {
            pending.AddRange(input[at..end]);
            at = end;
            while (true)
            {
                var seq = new ReadOnlySequence<byte>(pending.ToArray());
                var r = reader.Feed(seq, out var consumed);
                var used = (int)seq.Slice(0, consumed).Length;
                if (used < 0 || used > pending.Count) throw new Bug("consumed beyond the input");
                pending.RemoveRange(0, used);
                if (r.Kind == ReadKind.NeedMore) break;
                if (r.Kind == ReadKind.Continue) { log.Append("+\n"); continue; }
                log.Append(r.Kind).Append(' ').Append(r.Tag).Append(' ').Append(r.Message);
                foreach (var p in r.Parts ?? [])
                    log.Append(" | ").Append(p switch
                    {
                        LinePart l => "T:" + l.Text,
                        LiteralPart l => $"L{l.Length}:{Convert.ToHexString(ReadAll(l))}",
                        _ => "?",
                    });
                log.Append('\n');
                if (r.Kind == ReadKind.Fatal) return log.ToString();
                if (r.Kind == ReadKind.Command) reader.Reset();
                if (pending.Count == 0) break;
            }
        }
        return log.ToString();
    }

    private static byte[] ReadAll(LiteralPart l)
    {
        using var s = l.Open();
        s.Position = 0;
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    // --- SMTP: DATA, dot-stuffed, as mtad and lmtpd read it ---

    private static void SmtpData(byte[] input)
    {
        foreach (var keepCrLf in new[] { false, true })
        {
            var whole = ReadData(input, [], keepCrLf);
            var cut = ReadData(input, Cuts(input), keepCrLf);
            if (whole != cut) throw new Bug($"DATA depends on how it is cut:\n{whole}\n---\n{cut}");
        }
    }

    private static string ReadData(byte[] input, IEnumerable<int> cuts, bool keepCrLf)
    {
        var output = new MemoryStream();
        var writer = new DataWriter(output, maxSize: 1 << 16, dotStuffed: true, keepCrLf);
        var pending = new List<byte>();
        int at = 0, taken = 0;
        bool done = false;
        foreach (var end in cuts.Append(input.Length))
        {
            pending.AddRange(input[at..end]);
            at = end;
            var seq = new ReadOnlySequence<byte>(pending.ToArray());
            SequencePosition used = seq.Start;
            done = writer.FeedAsync(seq, p => used = p).AsTask().GetAwaiter().GetResult();
            var n = (int)seq.Slice(0, used).Length;
            pending.RemoveRange(0, n);
            taken += n;
            if (done) break;
        }
        if (done)
        {
            // The end of DATA is CRLF.CRLF and nothing else (no smuggling through \n.\n or \r.\r).
            var ending = input.AsSpan(0, taken);
            if (!(ending.SequenceEqual(".\r\n"u8) || ending.EndsWith("\r\n.\r\n"u8)))
                throw new Bug($"DATA ended at {taken} without CRLF.CRLF: {Convert.ToHexString(input[Math.Max(0, taken - 8)..taken])}");
        }
        return $"done={done} taken={taken} big={writer.TooBig} nul={writer.HasNul} lf={writer.HasBareLf} cr={writer.HasBareCr} {Convert.ToHexString(output.ToArray())}";
    }

    // --- the queue file reader: anything on disk is a status, never an exception ---

    private static void QueueFile(byte[] input)
    {
        File.WriteAllBytes(Scratch, input);
        var status = QueueFileReader.Read(Scratch, out var envelope, out var chunks);
        if (status != QueueFileStatus.Ok) return;
        if (envelope == null) throw new Bug("Ok without an envelope");
        var content = new MemoryStream();
        QueueFileReader.CopyContent(Scratch, chunks, content);
        var streamed = new MemoryStream();
        var e = QueueFileReader.ReadContentAsync(Scratch, chunks, CancellationToken.None).GetAsyncEnumerator();
        while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult()) streamed.Write(e.Current.Span);
        if (!content.ToArray().AsSpan().SequenceEqual(streamed.ToArray())) throw new Bug("the two content readers disagree");
        QueueFileReader.ReadHeader(Scratch, chunks, 4096);
    }

    // --- the MIME scan behind ENVELOPE, BODYSTRUCTURE, BODY[...] ---

    private static void Mime(byte[] input)
    {
        var scanned = BodyStructure.Scan(input, input.Length);
        var parsed = MessageView.Parsed(input);
        if (scanned is { } s && s != parsed)
            throw new Bug($"the one-pass scan and MimeKit disagree:\n{s}\n---\n{parsed}");
        File.WriteAllBytes(Scratch, input);
        MessageView.Structure(Scratch);
        var view = MessageView.Load(Scratch);
        foreach (var text in new[] { "", "HEADER", "TEXT", "MIME" })
            foreach (var part in new int[][] { [], [1], [2], [1, 1] })
                if (!(text == "MIME" && part.Length == 0)) view.Section(new Section(part, text, []));
        view.Section(new Section([], "HEADER.FIELDS", ["SUBJECT", "FROM"]));
        try { view.Decoded([1]); }
        catch (NotSupportedException) { } // an unknown transfer encoding: FETCH BINARY answers UNKNOWN-CTE
        view.Envelope();
    }

    // --- AuthD's sessions: socketmap (netstrings) and Dovecot's auth protocol ---

    private static readonly Lazy<(SocketmapMaps Maps, SaslServer Sasl)> AuthD = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("mail-fuzz-").FullName;
        File.WriteAllText(Path.Combine(dir, "domains"), "example.org\n");
        File.WriteAllText(Path.Combine(dir, "virtual"), "sales@example.org bob@example.org, ann@example.org\n");
        File.WriteAllText(Path.Combine(dir, "passwd"), "");
        var directory = new FileDirectory(new FileDirectoryOptions(Path.Combine(dir, "passwd"), Path.Combine(dir, "virtual"), Path.Combine(dir, "domains")));
        directory.AddUserAsync(new DirectoryUser("bob@example.org", "{PLAIN}secret")).GetAwaiter().GetResult();
        var accounts = new Accounts(directory, new AccountDefaults(Path.Combine(dir, "mail"), 5000, 5000, 0, "+"));
        var sasl = new SaslServer(new Credentials(directory, new LoginCache(TimeSpan.FromMinutes(1))),
            new LoginThrottle(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.FromMinutes(1)), ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"], "fuzz.test");
        return (new SocketmapMaps(accounts), sasl);
    });

    private static void Socketmap(byte[] input) => RunSession(input, c => new SocketmapSession(c, AuthD.Value.Maps).RunAsync());

    private static void DovecotAuth(byte[] input) => RunSession(input, c => new DovecotAuthSession(c, AuthD.Value.Sasl).RunAsync());

    private static NetLimits? _sessionLimits;
    private static NetLimits SessionLimits => _sessionLimits ??= new() { MaxLineLength = 16384, IdleTimeout = TimeSpan.FromSeconds(5), MaxConnections = 10 };

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;
        public PipeWriter Output => output;
    }

    /// <summary>Runs a session over in-memory pipes, the input sent and closed at once; it must end, and throw nothing the listener would not take.</summary>
    private static void RunSession(byte[] input, Func<LineConnection, Task> session)
    {
        var toServer = new Pipe();
        var fromServer = new Pipe();
        var context = new DefaultConnectionContext("fuzz", new Duplex(toServer.Reader, fromServer.Writer), new Duplex(fromServer.Reader, toServer.Writer));
        toServer.Writer.WriteAsync(input).AsTask().GetAwaiter().GetResult();
        toServer.Writer.Complete();
        var drain = Task.Run(async () =>
        {
            while (true)
            {
                var r = await fromServer.Reader.ReadAsync();
                fromServer.Reader.AdvanceTo(r.Buffer.End);
                if (r.IsCompleted || r.IsCanceled) return;
            }
        });
        var run = Task.Run(async () =>
        {
            var conn = new LineConnection(context, "fuzz", SessionLimits, CancellationToken.None, implicitTls: false);
            try { await session(conn); }
            catch (Exception e) when (e is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException) { }
            finally
            {
                await conn.DisposeAsync();
                await fromServer.Writer.CompleteAsync();
            }
        });
        if (Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20))).GetAwaiter().GetResult() != run) throw new Bug("the session did not end");
        run.GetAwaiter().GetResult();
        drain.Wait(TimeSpan.FromSeconds(5));
    }
}
