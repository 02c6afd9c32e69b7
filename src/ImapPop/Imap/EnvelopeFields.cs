// The fields of an ENVELOPE as the folder index keeps it (Envelope.Build's
// text), read back for what needs them without the message: SEARCH on
// addresses and sent dates, SORT and THREAD keys. Strings stay as the header
// has them; Decoded() turns encoded-words (RFC 2047) into text.
using System.Globalization;
using System.Text;
using MimeKit.Utils;

namespace Mail.ImapPop.Imap;

/// <summary>One address of an ENVELOPE: a group start has no host, a group end nothing at all.</summary>
internal readonly record struct EnvelopeAddress(string? Name, string? Mailbox, string? Host)
{
    public bool IsGroupMarker => Host == null;

    /// <summary>"mailbox@host" (RFC 5256's addr-mailbox and addr-host).</summary>
    public string Address => Mailbox + "@" + Host;
}

internal sealed class EnvelopeFields
{
    public string? Date { get; private init; }
    public string? Subject { get; private init; }
    public IReadOnlyList<EnvelopeAddress> From { get; private init; } = [];
    public IReadOnlyList<EnvelopeAddress> To { get; private init; } = [];
    public IReadOnlyList<EnvelopeAddress> Cc { get; private init; } = [];
    public IReadOnlyList<EnvelopeAddress> Bcc { get; private init; } = [];
    public string? InReplyTo { get; private init; }
    public string? MessageId { get; private init; }

    public static readonly EnvelopeFields Empty = new();

    /// <summary>The fields of an ENVELOPE's text; what does not parse reads as absent.</summary>
    public static EnvelopeFields Parse(string envelope)
    {
        var r = new Reader(envelope);
        try
        {
            r.Expect('(');
            var date = r.NString();
            var subject = r.NString();
            var from = r.Addresses();
            r.Addresses(keep: false); // sender
            r.Addresses(keep: false); // reply-to
            var to = r.Addresses();
            var cc = r.Addresses();
            var bcc = r.Addresses();
            var inReplyTo = r.NString();
            var messageId = r.NString();
            return new EnvelopeFields { Date = date, Subject = subject, From = from, To = to, Cc = cc, Bcc = bcc, InReplyTo = inReplyTo, MessageId = messageId };
        }
        catch (FormatException) { return Empty; }
    }

    /// <summary>The Date: field's time with its own offset (SENTON compares its date as written), or null.</summary>
    public DateTimeOffset? SentDate => Date != null && DateUtils.TryParse(Date, out var d) ? d : null;

    /// <summary>Encoded-words (RFC 2047) of a raw header string made text.</summary>
    public static string Decoded(string? raw)
    {
        if (string.IsNullOrEmpty(raw)) return "";
        if (!raw.Contains("=?", StringComparison.Ordinal)) return raw;
        try { return MimeKit.Utils.Rfc2047.DecodeText(Encoding.UTF8.GetBytes(raw)); }
        catch (Exception e) when (e is ArgumentException or FormatException) { return raw; }
    }

    /// <summary>An address list as SEARCH FROM/TO/CC/BCC matches it: each address's name decoded and "&lt;mailbox@host&gt;".</summary>
    public static string SearchText(IReadOnlyList<EnvelopeAddress> list)
    {
        var sb = new StringBuilder();
        foreach (var a in list)
        {
            if (a.IsGroupMarker) { if (a.Mailbox != null) sb.Append(Decoded(a.Mailbox)).Append(':').Append('\n'); continue; }
            if (a.Name != null) sb.Append(Decoded(a.Name)).Append(' ');
            sb.Append('<').Append(a.Address).Append(">\n");
        }
        return sb.ToString();
    }

    private ref struct Reader(string s)
    {
        private int _pos;

        private void SkipSpaces()
        {
            while (_pos < s.Length && s[_pos] == ' ') _pos++;
        }

        public void Expect(char c)
        {
            SkipSpaces();
            if (_pos >= s.Length || s[_pos] != c) throw new FormatException("envelope");
            _pos++;
        }

        private bool TryNil()
        {
            SkipSpaces();
            if (string.CompareOrdinal(s, _pos, "NIL", 0, 3) != 0) return false;
            _pos += 3;
            return true;
        }

        public string? NString()
        {
            if (TryNil()) return null;
            if (_pos >= s.Length) throw new FormatException("envelope");
            if (s[_pos] == '"')
            {
                // Most strings have no backslash: taken whole.
                int end = s.AsSpan(_pos + 1).IndexOfAny('"', '\\');
                if (end >= 0 && s[_pos + 1 + end] == '"')
                {
                    var plain = s.Substring(_pos + 1, end);
                    _pos += end + 2;
                    return plain;
                }
                var sb = new StringBuilder();
                for (_pos++; _pos < s.Length; _pos++)
                {
                    var c = s[_pos];
                    if (c == '"') { _pos++; return sb.ToString(); }
                    if (c == '\\' && _pos + 1 < s.Length) c = s[++_pos];
                    sb.Append(c);
                }
                throw new FormatException("envelope");
            }
            if (s[_pos] == '{')
            {
                // {n}CRLF then n bytes of UTF-8.
                int close = s.IndexOf('}', _pos);
                if (close < 0 || !int.TryParse(s.AsSpan(_pos + 1, close - _pos - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var bytes)) throw new FormatException("envelope");
                _pos = close + 3;
                int start = _pos;
                while (bytes > 0 && _pos < s.Length)
                {
                    if (char.IsHighSurrogate(s[_pos]) && _pos + 1 < s.Length) { bytes -= 4; _pos += 2; }
                    else { bytes -= Encoding.UTF8.GetByteCount(s.AsSpan(_pos, 1)); _pos++; }
                }
                return s[start.._pos];
            }
            throw new FormatException("envelope");
        }

        /// <summary>An address list; read past without keeping it when <paramref name="keep"/> is false.</summary>
        public List<EnvelopeAddress> Addresses(bool keep = true)
        {
            var list = keep ? new List<EnvelopeAddress>(1) : Skipped;
            if (TryNil()) return list;
            Expect('(');
            while (true)
            {
                SkipSpaces();
                if (_pos < s.Length && s[_pos] == ')') { _pos++; return list; }
                Expect('(');
                var name = NString();
                NString(); // adl
                var mailbox = NString();
                var host = NString();
                Expect(')');
                if (keep) list.Add(new EnvelopeAddress(name, mailbox, host));
            }
        }

        private static readonly List<EnvelopeAddress> Skipped = [];
    }
}
