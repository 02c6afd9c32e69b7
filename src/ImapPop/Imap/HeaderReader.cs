// A cursor over a structured header value (RFC 5322 3.2): white space and
// comments skipped, quoted strings read with their quoted pairs undone.
using System.Text;

namespace Mail.ImapPop.Imap;

internal ref struct HeaderReader(string text)
{
    public readonly string Text = text;
    public int Pos;

    /// <summary>The text of the last comment skipped, or null.</summary>
    public string? Comment;

    public readonly bool End => Pos >= Text.Length;
    public readonly char Peek => Text[Pos];

    public bool Take(char c)
    {
        if (End || Text[Pos] != c) return false;
        Pos++;
        return true;
    }

    /// <summary>Skips white space and (nested) comments, keeping the last comment's text.</summary>
    public void SkipCfws()
    {
        while (Pos < Text.Length)
        {
            var c = Text[Pos];
            if (c is ' ' or '\t' or '\r' or '\n') { Pos++; continue; }
            if (c != '(') return;
            int depth = 0;
            var comment = new StringBuilder();
            while (Pos < Text.Length)
            {
                c = Text[Pos++];
                if (c == '\\' && Pos < Text.Length) { if (depth > 0) comment.Append(Text[Pos]); Pos++; continue; }
                if (c == '(') { if (depth++ > 0) comment.Append(c); continue; }
                if (c == ')') { if (--depth == 0) break; comment.Append(c); continue; }
                comment.Append(c);
            }
            var trimmed = comment.ToString().Trim();
            Comment = trimmed.Length == 0 ? null : trimmed;
        }
    }

    /// <summary>A quoted string's content (the cursor on its opening quote); an unclosed one runs to the end.</summary>
    public string Quoted()
    {
        var sb = new StringBuilder();
        Pos++;
        while (Pos < Text.Length && Text[Pos] != '"')
        {
            if (Text[Pos] == '\\' && Pos + 1 < Text.Length) Pos++;
            sb.Append(Text[Pos++]);
        }
        if (Pos < Text.Length) Pos++;
        return sb.ToString();
    }
}
