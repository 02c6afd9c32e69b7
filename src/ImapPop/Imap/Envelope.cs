// ENVELOPE (RFC 9051 7.5.2) from a message's raw header fields. Strings are
// the header values as they stand, unfolded: encoded-words (RFC 2047) are
// left for the client to decode, and nothing 8-bit is made up. Addresses are
// split per RFC 5322 3.4 into (name adl mailbox host), groups as RFC 9051
// describes them (a start with NIL host, an end of four NILs). What a broken
// address lacks is filled with MISSING_MAILBOX / MISSING_DOMAIN, as Dovecot
// does, so that no mailbox reads as a group marker.
using System.Text;
using System.Text.Unicode;

namespace Mail.ImapPop.Imap;

internal static class Envelope
{
    /// <summary>The ENVELOPE of a header, given a look-up of its fields' unfolded raw values (first of each name).</summary>
    public static string Build(Func<string, string?> field)
    {
        var sb = new StringBuilder(256).Append('(');
        sb.Append(MessageView.NString(field("Date"))).Append(' ');
        sb.Append(MessageView.NString(field("Subject"))).Append(' ');
        var from = Addresses(field("From"));
        var sender = Addresses(field("Sender"));
        var replyTo = Addresses(field("Reply-To"));
        // Absent or empty Sender and Reply-To are the From (RFC 9051 7.5.2).
        sb.Append(from).Append(' ').Append(sender == "NIL" ? from : sender).Append(' ').Append(replyTo == "NIL" ? from : replyTo).Append(' ');
        sb.Append(Addresses(field("To"))).Append(' ');
        sb.Append(Addresses(field("Cc"))).Append(' ');
        sb.Append(Addresses(field("Bcc"))).Append(' ');
        sb.Append(MessageView.NString(field("In-Reply-To"))).Append(' ');
        sb.Append(MessageView.NString(field("Message-ID")));
        return sb.Append(')').ToString();
    }

    /// <summary>A header value as text: UTF-8 when it is (RFC 6532), otherwise byte for byte.</summary>
    public static string Text(ReadOnlySpan<byte> raw) => Utf8.IsValid(raw) ? Encoding.UTF8.GetString(raw) : Encoding.Latin1.GetString(raw);

    /// <summary>Unfolds a header value: each line break with the white space after it becomes one space (as Dovecot shows it); the ends are trimmed.</summary>
    public static string Unfold(string value)
    {
        value = value.Trim();
        if (!value.AsSpan().ContainsAny('\r', '\n')) return value;
        var sb = new StringBuilder(value.Length);
        for (int i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\r') continue;
            if (c != '\n') { sb.Append(c); continue; }
            while (i + 1 < value.Length && value[i + 1] is ' ' or '\t' or '\r' or '\n') i++;
            sb.Append(' ');
        }
        return sb.ToString();
    }

    /// <summary>An address list as IMAP's list of address structures, or NIL when it has none.</summary>
    public static string Addresses(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return "NIL";
        var p = new AddressParser(value);
        var sb = new StringBuilder();
        p.ParseList(sb);
        return sb.Length == 0 ? "NIL" : "(" + sb + ")";
    }

    private ref struct AddressParser(string s)
    {
        private HeaderReader _r = new(s); // its last comment is a name for "user@host (Name)"

        public void ParseList(StringBuilder sb)
        {
            while (true)
            {
                _r.SkipCfws();
                if (_r.Pos >= _r.Text.Length) return;
                if (_r.Text[_r.Pos] is ',' or ';' or '>' or ')') { _r.Pos++; continue; } // empty member or stray special
                var start = _r.Pos;
                var phrase = Phrase();
                _r.SkipCfws();
                if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == ':' && phrase != null)
                {
                    _r.Pos++;
                    Address(sb, null, null, phrase, null); // group start
                    while (true)
                    {
                        _r.SkipCfws();
                        if (_r.Pos >= _r.Text.Length) break;
                        if (_r.Text[_r.Pos] == ';') { _r.Pos++; break; }
                        if (_r.Text[_r.Pos] is ',' or '>' or ')' or ':') { _r.Pos++; continue; }
                        Mailbox(sb);
                    }
                    Address(sb, null, null, null, null); // group end
                    continue;
                }
                _r.Pos = start;
                Mailbox(sb);
            }
        }

        /// <summary>mailbox = name-addr / addr-spec, written as one address structure.</summary>
        private void Mailbox(StringBuilder sb)
        {
            var start = _r.Pos;
            var name = Phrase();
            _r.SkipCfws();
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '<')
            {
                _r.Pos++;
                AngleAddr(sb, name);
                return;
            }
            _r.Pos = start;
            _r.Comment = null;
            var local = LocalPart();
            string? domain = null;
            _r.SkipCfws();
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '@')
            {
                _r.Pos++;
                domain = Domain();
            }
            _r.SkipCfws();
            var comment = _r.Comment;
            // Whatever does not belong to the address is skipped up to the next member.
            bool broken = false;
            while (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] is not (',' or ';')) { _r.Pos++; broken = true; }
            if (local == null && domain == null)
            {
                if (start == _r.Pos && _r.Pos < _r.Text.Length) _r.Pos++;
                if (!broken) return;
            }
            Address(sb, comment, null, local ?? "MISSING_MAILBOX", string.IsNullOrEmpty(domain) ? (broken ? "SYNTAX_ERROR" : "MISSING_DOMAIN") : domain);
        }

        /// <summary>angle-addr after its "&lt;": [route ":"] addr-spec "&gt;".</summary>
        private void AngleAddr(StringBuilder sb, string? name)
        {
            string? route = null, local = null, domain = null;
            _r.SkipCfws();
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '@')
            {
                var r = new StringBuilder();
                while (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '@')
                {
                    _r.Pos++;
                    if (r.Length > 0) r.Append(',');
                    r.Append('@').Append(Domain());
                    _r.SkipCfws();
                    while (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == ',') { _r.Pos++; _r.SkipCfws(); }
                }
                route = r.ToString();
                if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == ':') _r.Pos++;
                _r.SkipCfws();
            }
            bool broken = false;
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] != '>')
            {
                local = LocalPart();
                _r.SkipCfws();
                if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '@') { _r.Pos++; domain = Domain(); _r.SkipCfws(); }
            }
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '>') { _r.Pos++; _r.SkipCfws(); }
            else broken = true;
            while (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] is not (',' or ';')) { if (_r.Text[_r.Pos++] == '>') break; broken = true; }
            Address(sb, string.IsNullOrEmpty(name) ? null : name, route, local ?? "MISSING_MAILBOX",
                    broken ? "SYNTAX_ERROR" : string.IsNullOrEmpty(domain) ? "MISSING_DOMAIN" : domain);
        }

        private static void Address(StringBuilder sb, string? name, string? adl, string? mailbox, string? host) =>
            sb.Append('(').Append(MessageView.NString(name)).Append(' ').Append(MessageView.NString(adl)).Append(' ')
              .Append(MessageView.NString(mailbox)).Append(' ').Append(MessageView.NString(host)).Append(')');

        /// <summary>phrase: words (atoms, quoted strings, and the dots of obs-phrase) joined by one space; null if none.</summary>
        private string? Phrase()
        {
            StringBuilder? words = null;
            while (true)
            {
                _r.SkipCfws();
                if (_r.Pos >= _r.Text.Length) break;
                string? word = _r.Text[_r.Pos] == '"' ? _r.Quoted() : IsAtext(_r.Text[_r.Pos]) || _r.Text[_r.Pos] == '.' ? Atom(dots: true) : null;
                if (word == null) break;
                words ??= new StringBuilder();
                if (words.Length > 0) words.Append(' ');
                words.Append(word);
            }
            return words?.ToString();
        }

        /// <summary>local-part: dot-atom, quoted string or obs-local-part (words joined by dots); null if none.</summary>
        private string? LocalPart()
        {
            var sb = new StringBuilder();
            bool any = false;
            while (_r.Pos < _r.Text.Length)
            {
                _r.SkipCfws();
                if (_r.Pos >= _r.Text.Length) break;
                var c = _r.Text[_r.Pos];
                if (c == '"') { sb.Append(_r.Quoted()); any = true; }
                else if (IsAtext(c)) { sb.Append(Atom(dots: false)); any = true; }
                else if (c == '.') { sb.Append('.'); _r.Pos++; any = true; continue; }
                else break;
                var save = _r.Pos;
                _r.SkipCfws();
                if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '.') continue;
                _r.Pos = save;
                break;
            }
            return any ? sb.ToString() : null;
        }

        /// <summary>domain: dot-atom or domain literal ("[...]", kept with its brackets).</summary>
        private string? Domain()
        {
            _r.SkipCfws();
            if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '[')
            {
                var end = _r.Text.IndexOf(']', _r.Pos);
                var lit = end < 0 ? _r.Text[_r.Pos..] : _r.Text[_r.Pos..(end + 1)];
                _r.Pos = end < 0 ? _r.Text.Length : end + 1;
                return lit.Replace(" ", "").Replace("\t", "");
            }
            var sb = new StringBuilder();
            while (_r.Pos < _r.Text.Length)
            {
                _r.SkipCfws();
                if (_r.Pos < _r.Text.Length && IsAtext(_r.Text[_r.Pos])) sb.Append(Atom(dots: false));
                else break;
                var save = _r.Pos;
                _r.SkipCfws();
                if (_r.Pos < _r.Text.Length && _r.Text[_r.Pos] == '.') { sb.Append('.'); _r.Pos++; continue; }
                _r.Pos = save;
                break;
            }
            return sb.Length == 0 ? null : sb.ToString();
        }

        private string Atom(bool dots)
        {
            var start = _r.Pos;
            while (_r.Pos < _r.Text.Length && (IsAtext(_r.Text[_r.Pos]) || (dots && _r.Text[_r.Pos] == '.'))) _r.Pos++;
            return _r.Text[start.._r.Pos];
        }

        /// <summary>atext (RFC 5322 3.2.3), with any 8-bit character (RFC 6532).</summary>
        private static bool IsAtext(char c) =>
            c > 127 || (c > ' ' && c < 127 && c is not ('(' or ')' or '<' or '>' or '[' or ']' or ':' or ';' or '@' or '\\' or ',' or '.' or '"'));
    }
}
