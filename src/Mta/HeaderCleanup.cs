// Cleanup of a message's header section as it streams into the queue file
// (Postfix's cleanup(8), in part): the header is held until its end (at most
// MaxHeaderSize), counted for loop detection (Received headers, as Postfix's
// hopcount_limit), and for submitted mail a missing Message-ID or Date is
// added. The body passes straight through. Lines end as they came (CRLF
// from SMTP); what is added ends in CRLF too.
using System.Globalization;
using System.Text;
using Mail.Queue;

namespace Mail.Mta;

internal sealed class HeaderCleanup(Stream inner, string hostname, bool submission, string queueId, bool stripAuthResults = false) : Mail.Shared.IO.WriteOnlyStream
{
    public const int MaxHeaderSize = 1 << 20;
    public const int HopLimit = 50;
    private readonly MemoryStream _header = new();
    private bool _inBody;

    public bool HeaderTooBig { get; private set; }
    public int Received { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_inBody) { inner.Write(buffer); return; }
        if (HeaderTooBig) return;
        _header.Write(buffer);
        var bytes = _header.GetBuffer().AsSpan(0, (int)_header.Length);
        // The header ends at the first empty line (CRLF, or LF in a BDAT chunk).
        int end = HeaderLength(bytes);
        if (end >= 0) { EmitHeader(end); return; }
        if (_header.Length > MaxHeaderSize) HeaderTooBig = true;
    }

    /// <summary>The header lines without the empty line that ends them; -1 while it has not been seen.</summary>
    public static int HeaderLength(ReadOnlySpan<byte> bytes)
    {
        int end = QueueFileReader.HeaderEnd(bytes);
        if (end < 0) return -1;
        return end - (end >= 2 && bytes[end - 2] == '\r' ? 2 : 1);
    }

    /// <summary>The message ended inside its header (no body): emit what there is.</summary>
    public void Complete()
    {
        if (!_inBody && !HeaderTooBig) EmitHeader((int)_header.Length);
    }

    private void EmitHeader(int headerLength)
    {
        var all = _header.ToArray();
        if (stripAuthResults) (all, headerLength) = StripOurAuthResults(all, headerLength);
        var header = Encoding.UTF8.GetString(all, 0, headerLength);
        var names = header.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0 && !char.IsWhiteSpace(l[0]) && l.Contains(':'))
            .Select(l => l[..l.IndexOf(':')].Trim().ToLowerInvariant()).ToList();
        Received = names.Count(n => n == "received");
        var added = new StringBuilder();
        if (submission && !names.Contains("message-id")) added.Append($"Message-ID: <{queueId}.{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}@{hostname}>\r\n");
        if (submission && !names.Contains("date"))
            added.Append("Date: ").Append(DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture)).Append("\r\n");
        inner.Write(all.AsSpan(0, headerLength));
        inner.Write(Encoding.UTF8.GetBytes(added.ToString()));
        inner.Write(all.AsSpan(headerLength));
        _inBody = true;
        _header.SetLength(0);
    }

    public int StrippedAuthResults { get; private set; }

    /// <summary>
    /// RFC 8601 5: an Authentication-Results field the message brought that names our host as its
    /// authserv-id is removed (with its continuation lines), so that only our own results carry our name.
    /// </summary>
    private (byte[], int) StripOurAuthResults(byte[] all, int headerLength)
    {
        var kept = new MemoryStream(all.Length);
        int i = 0;
        while (i < headerLength)
        {
            // One field: its first line and the continuation lines that follow.
            int end = i;
            do
            {
                int lf = Array.IndexOf(all, (byte)'\n', end, headerLength - end);
                end = lf < 0 ? headerLength : lf + 1;
            } while (end < headerLength && all[end] is (byte)' ' or (byte)'\t');
            var field = Encoding.UTF8.GetString(all, i, end - i);
            int colon = field.IndexOf(':');
            if (colon > 0 && field[..colon].Trim().Equals("Authentication-Results", StringComparison.OrdinalIgnoreCase)
                && Mail.MailAuth.AuthResults.ClaimsToBe(field[(colon + 1)..], hostname))
                StrippedAuthResults++;
            else kept.Write(all, i, end - i);
            i = end;
        }
        int newLength = (int)kept.Length;
        kept.Write(all, headerLength, all.Length - headerLength);
        return (kept.ToArray(), newLength);
    }

}
