// sendmail: the command cron, scripts and PHP's mail() call. Reads a message
// on standard input and hands it to mtad through its local pickup socket
// (SMTP over a Unix socket, with the suite's one SMTP client; mtad trusts
// local processes as Postfix trusts its maildrop). Flags as Postfix's
// sendmail: -t, -f, -F, -i, -oi, -bm. The message's bytes pass as they are,
// 8-bit or not: only line ends become LF, a missing From, Date or Message-ID
// is added in front, and with -t the Bcc fields are taken out. The socket is
// /run/mail/pickup, or $MAIL_PICKUP_SOCKET.
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Smtp;
using MimeKit;

const long MaxMessage = 100L << 20;
string? sender = null, fullName = null;
bool fromHeaders = false, dotEnds = true;
var recipients = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    var a = args[i];
    string Value(string flag) => a.Length > flag.Length ? a[flag.Length..] : (++i < args.Length ? args[i] : throw new ArgumentException($"{flag} needs a value"));
    if (a == "-t") fromHeaders = true;
    else if (a is "-i" or "-oi") dotEnds = false;
    else if (a.StartsWith("-f", StringComparison.Ordinal)) sender = Value("-f");
    else if (a.StartsWith("-F", StringComparison.Ordinal)) fullName = Value("-F");
    else if (a.StartsWith("-o", StringComparison.Ordinal) || a is "-bm" or "-v" or "--") continue; // accepted, no effect
    else if (a.StartsWith("-", StringComparison.Ordinal)) { Console.Error.WriteLine($"sendmail: unsupported option {a}"); return 64; }
    else recipients.AddRange(a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}

// The message in the stored form (LF line ends): to EOF, or to a line holding only "." unless -i.
var content = new MemoryStream();
using (var stdin = Console.OpenStandardInput())
{
    var input = new BufferedStream(stdin, 64 * 1024);
    var line = new MemoryStream();
    int b;
    bool ended = false;
    while (!ended)
    {
        b = input.ReadByte();
        if (b != '\n' && b != -1) { line.WriteByte((byte)b); continue; }
        var bytes = line.GetBuffer().AsSpan(0, (int)line.Length);
        if (bytes.Length > 0 && bytes[^1] == '\r') bytes = bytes[..^1];
        if (b == -1 && bytes.Length == 0) break;
        if (dotEnds && bytes.SequenceEqual("."u8)) break;
        content.Write(bytes);
        content.WriteByte((byte)'\n');
        if (content.Length > MaxMessage) { Console.Error.WriteLine("sendmail: message too large"); return 65; }
        line.SetLength(0);
        ended = b == -1;
    }
}
var message = content.GetBuffer().AsMemory(0, (int)content.Length);
int headerEnd = HeaderEnd(message.Span);
HeaderList headers;
try { headers = HeaderList.Load(new MemoryStream(content.GetBuffer(), 0, headerEnd)); }
catch (FormatException) { headers = []; }

var host = Environment.GetEnvironmentVariable("MAIL_HOSTNAME") ?? System.Net.Dns.GetHostName();
sender ??= $"{Environment.UserName}@{host}";
var added = new StringBuilder();
if (!headers.Contains(HeaderId.From)) added.Append("From: ").Append(new MailboxAddress(fullName ?? "", sender).ToString(true)).Append('\n');
if (!headers.Contains(HeaderId.Date)) added.Append("Date: ").Append(MimeKit.Utils.DateUtils.FormatDate(DateTimeOffset.Now)).Append('\n');
if (!headers.Contains(HeaderId.MessageId)) added.Append("Message-ID: <").Append(MimeKit.Utils.MimeUtils.GenerateMessageId(host)).Append(">\n");
ReadOnlyMemory<byte> body = message;
if (fromHeaders)
{
    foreach (var h in headers)
        if (h.Id is HeaderId.To or HeaderId.Cc or HeaderId.Bcc && InternetAddressList.TryParse(h.RawValue, out var list))
            recipients.AddRange(list.Mailboxes.Select(m => m.Address));
    body = WithoutField(message, headerEnd, "Bcc");
}
if (recipients.Count == 0) { Console.Error.WriteLine("sendmail: no recipients"); return 64; }
var prefix = Encoding.UTF8.GetBytes(added.ToString());

var socketPath = Environment.GetEnvironmentVariable("MAIL_PICKUP_SOCKET") ?? "/run/mail/pickup";
var server = new ServerAddress("mtad", new UnixDomainSocketEndPoint(socketPath));
using var client = new SmtpClient(ClientProtocol.Smtp, "localhost", TlsLevel.None) { DetectLoops = false };
try
{
    var outgoing = new OutgoingMessage(sender, recipients.Distinct().ToList(), prefix.Length + body.Length, new Dictionary<string, string>(), Parts);
    var outcome = await client.DeliverAsync(server, outgoing, CancellationToken.None);
    var refused = outcome.Results.Where(r => !r.Ok).ToList();
    foreach (var r in refused) Console.Error.WriteLine($"sendmail: <{r.Recipient}>: {r.Reply}");
    if (refused.Count == 0) return 0;
    return refused.All(r => r.Permanent) ? 69 : 75; // EX_UNAVAILABLE, EX_TEMPFAIL
}
catch (IOException e)
{
    Console.Error.WriteLine($"sendmail: cannot hand the message to mtad ({socketPath}): {e.Message}");
    return 75;
}

#pragma warning disable CS1998 // the parts are in memory
async IAsyncEnumerable<ReadOnlyMemory<byte>> Parts([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
{
    yield return prefix;
    yield return body;
}
#pragma warning restore CS1998

// The length of the header section with its empty line (all of it when there is no body).
static int HeaderEnd(ReadOnlySpan<byte> m)
{
    if (m.Length > 0 && m[0] == '\n') return 0;
    int i = m.IndexOf("\n\n"u8);
    return i < 0 ? m.Length : i + 2;
}

// The message without the header field NAME (and its continuation lines).
static ReadOnlyMemory<byte> WithoutField(ReadOnlyMemory<byte> m, int headerEnd, string name)
{
    var result = new MemoryStream(m.Length);
    var span = m.Span;
    int pos = 0;
    bool skipping = false;
    while (pos < headerEnd)
    {
        int lf = span[pos..headerEnd].IndexOf((byte)'\n');
        int end = lf < 0 ? headerEnd : pos + lf + 1;
        var fieldLine = span[pos..end];
        bool continuation = fieldLine.Length > 0 && (fieldLine[0] == ' ' || fieldLine[0] == '\t');
        if (!continuation)
            skipping = fieldLine.Length > name.Length && fieldLine[name.Length] == ':' &&
                       Encoding.ASCII.GetString(fieldLine[..name.Length]).Equals(name, StringComparison.OrdinalIgnoreCase);
        if (!skipping) result.Write(fieldLine);
        pos = end;
    }
    result.Write(span[headerEnd..]);
    return result.GetBuffer().AsMemory(0, (int)result.Length);
}
