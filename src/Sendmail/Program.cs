// sendmail: the command cron, scripts and PHP's mail() call. Reads a message
// on standard input and hands it to mtad through its local pickup socket
// (SMTP over a Unix socket; mtad trusts local processes as Postfix trusts
// its maildrop). Flags as Postfix's sendmail: -t, -f, -F, -i, -oi, -bm.
// The socket is /run/mail/pickup, or $MAIL_PICKUP_SOCKET.
using System.Net.Sockets;
using System.Text;
using MimeKit;

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

// Read the message: to EOF, or to a line holding only "." unless -i.
var input = new StringBuilder();
string? line;
long size = 0;
while ((line = Console.In.ReadLine()) != null)
{
    if (dotEnds && line == ".") break;
    size += line.Length + 1;
    if (size > 100L << 20) { Console.Error.WriteLine("sendmail: message too large"); return 65; }
    input.Append(line.TrimEnd('\r')).Append("\r\n");
}
var message = MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(input.ToString())));
var host = Environment.GetEnvironmentVariable("MAIL_HOSTNAME") ?? System.Net.Dns.GetHostName();
sender ??= $"{Environment.UserName}@{host}";
if (message.From.Count == 0) message.From.Add(new MailboxAddress(fullName ?? "", sender));
if (!message.Headers.Contains(HeaderId.Date)) message.Date = DateTimeOffset.Now;
if (string.IsNullOrEmpty(message.MessageId)) message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(host);
if (fromHeaders)
{
    foreach (var list in new[] { message.To, message.Cc, message.Bcc })
        recipients.AddRange(list.Mailboxes.Select(m => m.Address));
    message.Bcc.Clear();
}
if (recipients.Count == 0) { Console.Error.WriteLine("sendmail: no recipients"); return 64; }

var socketPath = Environment.GetEnvironmentVariable("MAIL_PICKUP_SOCKET") ?? "/run/mail/pickup";
try
{
    using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    socket.Connect(new UnixDomainSocketEndPoint(socketPath));
    using var stream = new NetworkStream(socket);
    using var reader = new StreamReader(stream, Encoding.UTF8);
    string Reply()
    {
        string? l;
        do l = reader.ReadLine() ?? throw new IOException("mtad closed the connection");
        while (l.Length > 3 && l[3] == '-');
        return l;
    }
    void Send(string text) => stream.Write(Encoding.UTF8.GetBytes(text));
    void Expect(string code, string what)
    {
        var r = Reply();
        if (!r.StartsWith(code, StringComparison.Ordinal)) throw new InvalidOperationException($"{what}: {r}");
    }
    Expect("220", "greeting");
    Send("EHLO localhost\r\n"); Expect("250", "EHLO");
    Send($"MAIL FROM:<{sender}>\r\n"); Expect("250", "MAIL");
    foreach (var r in recipients.Distinct()) { Send($"RCPT TO:<{r}>\r\n"); Expect("250", $"RCPT <{r}>"); }
    Send("DATA\r\n"); Expect("354", "DATA");
    using (var ms = new MemoryStream())
    {
        message.WriteTo(FormatOptions.Default, ms);
        var text = Encoding.UTF8.GetString(ms.ToArray());
        var sb = new StringBuilder();
        foreach (var l in text.Replace("\r\n", "\n").Split('\n'))
            sb.Append(l.StartsWith('.') ? "." + l : l).Append("\r\n");
        Send(sb.ToString().TrimEnd('\r', '\n') + "\r\n.\r\n");
    }
    Expect("250", "message");
    Send("QUIT\r\n");
    return 0;
}
catch (Exception e) when (e is SocketException or IOException or InvalidOperationException)
{
    Console.Error.WriteLine($"sendmail: cannot hand the message to mtad ({socketPath}): {e.Message}");
    return e is InvalidOperationException && e.Message.Contains(": 5") ? 69 : 75; // EX_UNAVAILABLE, EX_TEMPFAIL
}
