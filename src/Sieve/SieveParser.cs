// The Sieve grammar (RFC 5228 8): comments (# and /* */), identifiers, tags,
// numbers with K/M/G, quoted strings with \ escapes, text: multi-line strings
// with dot-stuffing, string lists, test lists and blocks, into a syntax tree
// with a line number on every node. The script is a user's text: the parser
// is pure, never throws for bad syntax (an error with its line is the
// answer), and every size has a limit (script, string, nesting, commands,
// list lengths), so a script costs bounded time and memory to parse.
using System.Text;

namespace Mail.Sieve;

public abstract record SieveArgument(int Line);

/// <summary>":name", its name lower-cased without the colon.</summary>
public sealed record TagArgument(string Name, int Line) : SieveArgument(Line);

/// <summary>A number, its K, M or G quantifier applied.</summary>
public sealed record NumberArgument(long Value, int Line) : SieveArgument(Line);

/// <summary>One string (<paramref name="IsList"/> false) or a bracketed list of them.</summary>
public sealed record StringListArgument(IReadOnlyList<string> Values, bool IsList, int Line) : SieveArgument(Line);

/// <summary>A test: its name (lower-cased), arguments, and nested tests (allof, anyof, not).</summary>
public sealed record SieveTest(string Name, IReadOnlyList<SieveArgument> Arguments, IReadOnlyList<SieveTest> Tests, int Line);

/// <summary>A command: its name (lower-cased), arguments, the test of if/elsif, and its block.</summary>
public sealed record SieveCommand(string Name, IReadOnlyList<SieveArgument> Arguments, IReadOnlyList<SieveTest> Tests,
    IReadOnlyList<SieveCommand>? Block, int Line);

public sealed record SieveScript(IReadOnlyList<SieveCommand> Commands);

public sealed record SieveError(int Line, string Message)
{
    public override string ToString() => $"line {Line}: {Message}";
}

public sealed record SieveLimits
{
    public int MaxScriptSize { get; init; } = 1 << 20;
    public int MaxStringLength { get; init; } = 1 << 16;
    public int MaxNesting { get; init; } = 32;
    public int MaxCommands { get; init; } = 10_000;
    public int MaxListLength { get; init; } = 1_000;
    public static readonly SieveLimits Default = new();
}

public static class SieveParser
{
    /// <summary>The script's syntax tree, or null and the first error.</summary>
    public static SieveScript? Parse(string text, out SieveError? error, SieveLimits? limits = null)
    {
        limits ??= SieveLimits.Default;
        error = null;
        if (text.Length > limits.MaxScriptSize) { error = new SieveError(1, $"script larger than {limits.MaxScriptSize} characters"); return null; }
        var p = new Parser(text, limits);
        var commands = p.Commands(topLevel: true, depth: 0);
        error = p.Error;
        return error == null ? new SieveScript(commands!) : null;
    }

    private sealed class Parser(string s, SieveLimits limits)
    {
        private int _at, _line = 1, _commands;
        public SieveError? Error;

        private bool Fail(string message, int? line = null)
        {
            Error ??= new SieveError(line ?? _line, message);
            return false;
        }

        /// <summary>Skips white space and comments; false after an unterminated bracket comment.</summary>
        private bool Skip()
        {
            while (_at < s.Length)
            {
                char c = s[_at];
                if (c == '\n') { _line++; _at++; }
                else if (c is ' ' or '\t' or '\r') _at++;
                else if (c == '#') { while (_at < s.Length && s[_at] != '\n') _at++; }
                else if (c == '/' && _at + 1 < s.Length && s[_at + 1] == '*')
                {
                    int start = _line;
                    _at += 2;
                    while (_at < s.Length && !(s[_at] == '*' && _at + 1 < s.Length && s[_at + 1] == '/'))
                    {
                        if (s[_at] == '\n') _line++;
                        _at++;
                    }
                    if (_at >= s.Length) return Fail("unterminated /* comment", start);
                    _at += 2;
                }
                else break;
            }
            return true;
        }

        private char Peek() => _at < s.Length ? s[_at] : '\0';

        private static bool IsIdentifierStart(char c) => char.IsAsciiLetter(c) || c == '_';

        private string? Identifier()
        {
            if (!IsIdentifierStart(Peek())) return null;
            int start = _at;
            while (_at < s.Length && (char.IsAsciiLetterOrDigit(s[_at]) || s[_at] == '_')) _at++;
            return s[start.._at].ToLowerInvariant();
        }

        /// <summary>Commands up to "}" (inside a block) or the end of the script.</summary>
        public List<SieveCommand>? Commands(bool topLevel, int depth)
        {
            if (depth > limits.MaxNesting) { Fail($"blocks nested deeper than {limits.MaxNesting}"); return null; }
            var list = new List<SieveCommand>();
            while (true)
            {
                if (!Skip()) return null;
                if (_at >= s.Length)
                {
                    if (!topLevel) { Fail("missing } at the end of the script"); return null; }
                    return list;
                }
                if (Peek() == '}')
                {
                    if (topLevel) { Fail("} without a block to close"); return null; }
                    _at++;
                    return list;
                }
                var command = Command(depth);
                if (command == null) return null;
                if (++_commands > limits.MaxCommands) { Fail($"more than {limits.MaxCommands} commands"); return null; }
                list.Add(command);
            }
        }

        private SieveCommand? Command(int depth)
        {
            int line = _line;
            var name = Identifier();
            if (name == null) { Fail($"a command was expected, not '{Shown(Peek())}'"); return null; }
            var (arguments, tests) = Arguments(depth);
            if (arguments == null) return null;
            if (!Skip()) return null;
            if (Peek() == ';') { _at++; return new SieveCommand(name, arguments, tests!, null, line); }
            if (Peek() == '{')
            {
                _at++;
                var block = Commands(topLevel: false, depth + 1);
                return block == null ? null : new SieveCommand(name, arguments, tests!, block, line);
            }
            Fail(_at >= s.Length ? $"missing ; after {name}" : $"; or {{ expected after {name}, not '{Shown(Peek())}'");
            return null;
        }

        /// <summary>*argument [test / test-list]</summary>
        private (List<SieveArgument>? Arguments, List<SieveTest>? Tests) Arguments(int depth)
        {
            var arguments = new List<SieveArgument>();
            while (true)
            {
                if (!Skip()) return (null, null);
                int line = _line;
                char c = Peek();
                if (c == ':')
                {
                    _at++;
                    var tag = Identifier();
                    if (tag == null) { Fail("a tag name was expected after ':'"); return (null, null); }
                    arguments.Add(new TagArgument(tag, line));
                }
                else if (char.IsAsciiDigit(c))
                {
                    var number = Number();
                    if (number == null) return (null, null);
                    arguments.Add(new NumberArgument(number.Value, line));
                }
                else if (c is '"' or '[' || StartsText())
                {
                    var list = StringList();
                    if (list == null) return (null, null);
                    arguments.Add(list);
                }
                else break;
                if (arguments.Count > limits.MaxListLength) { Fail("too many arguments"); return (null, null); }
            }
            var tests = new List<SieveTest>();
            if (Peek() == '(')
            {
                var list = TestList(depth);
                if (list == null) return (null, null);
                tests.AddRange(list);
            }
            else if (IsIdentifierStart(Peek()))
            {
                var test = Test(depth);
                if (test == null) return (null, null);
                tests.Add(test);
            }
            return (arguments, tests);
        }

        private SieveTest? Test(int depth)
        {
            if (depth > limits.MaxNesting) { Fail($"tests nested deeper than {limits.MaxNesting}"); return null; }
            int line = _line;
            var name = Identifier();
            if (name == null) { Fail($"a test was expected, not '{Shown(Peek())}'"); return null; }
            var (arguments, tests) = Arguments(depth + 1);
            return arguments == null ? null : new SieveTest(name, arguments, tests!, line);
        }

        private List<SieveTest>? TestList(int depth)
        {
            _at++; // (
            var tests = new List<SieveTest>();
            while (true)
            {
                if (!Skip()) return null;
                var test = Test(depth + 1);
                if (test == null) return null;
                tests.Add(test);
                if (tests.Count > limits.MaxListLength) { Fail("too many tests in a list"); return null; }
                if (!Skip()) return null;
                if (Peek() == ',') { _at++; continue; }
                if (Peek() == ')') { _at++; return tests; }
                Fail($", or ) expected in a test list, not '{Shown(Peek())}'");
                return null;
            }
        }

        private long? Number()
        {
            int start = _at;
            while (_at < s.Length && char.IsAsciiDigit(s[_at])) _at++;
            if (_at - start > 18 || !long.TryParse(s.AsSpan(start, _at - start), out var value)) { Fail("number too large"); return null; }
            long factor = char.ToUpperInvariant(Peek()) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
            if (factor > 1) _at++;
            if (value > long.MaxValue / factor) { Fail("number too large"); return null; }
            if (IsIdentifierStart(Peek()) || char.IsAsciiDigit(Peek())) { Fail($"bad number '{s[start.._at]}{Shown(Peek())}'"); return null; }
            return value * factor;
        }

        private bool StartsText() => string.Compare(s, _at, "text:", 0, 5, StringComparison.OrdinalIgnoreCase) == 0;

        private StringListArgument? StringList()
        {
            int line = _line;
            if (Peek() != '[')
            {
                var one = String();
                return one == null ? null : new StringListArgument([one], false, line);
            }
            _at++;
            var values = new List<string>();
            while (true)
            {
                if (!Skip()) return null;
                var value = String();
                if (value == null) return null;
                values.Add(value);
                if (values.Count > limits.MaxListLength) { Fail("string list too long"); return null; }
                if (!Skip()) return null;
                if (Peek() == ',') { _at++; continue; }
                if (Peek() == ']') { _at++; return new StringListArgument(values, true, line); }
                Fail($", or ] expected in a string list, not '{Shown(Peek())}'");
                return null;
            }
        }

        private string? String()
        {
            if (Peek() == '"') return Quoted();
            if (StartsText()) return MultiLine();
            Fail($"a string was expected, not '{Shown(Peek())}'");
            return null;
        }

        /// <summary>RFC 5228 2.4.2: \" and \\ are the character escaped; a backslash before another character is dropped.</summary>
        private string? Quoted()
        {
            int line = _line;
            _at++;
            var sb = new StringBuilder();
            while (_at < s.Length)
            {
                char c = s[_at++];
                if (c == '"') return sb.ToString();
                if (c == '\\' && _at < s.Length) c = s[_at++];
                if (c == '\n') _line++;
                sb.Append(c);
                if (sb.Length > limits.MaxStringLength) { Fail($"string longer than {limits.MaxStringLength} characters", line); return null; }
            }
            Fail("unterminated string", line);
            return null;
        }

        /// <summary>text: to a line holding "." alone; a line starting ".." loses its first dot (RFC 5228 2.4.2).</summary>
        private string? MultiLine()
        {
            int line = _line;
            _at += 5;
            while (_at < s.Length && s[_at] is ' ' or '\t') _at++;
            if (Peek() == '#') while (_at < s.Length && s[_at] != '\n') _at++;
            if (Peek() == '\r') _at++;
            if (Peek() != '\n') { Fail("text: must end its line", line); return null; }
            _at++;
            _line++;
            var sb = new StringBuilder();
            while (_at < s.Length)
            {
                int end = s.IndexOf('\n', _at);
                var raw = end < 0 ? s[_at..] : s[_at..end];
                _at = end < 0 ? s.Length : end + 1;
                if (end >= 0) _line++;
                var content = raw.EndsWith('\r') ? raw[..^1] : raw;
                if (content == ".") return sb.ToString();
                sb.Append(content.StartsWith("..", StringComparison.Ordinal) ? content[1..] : content).Append("\r\n");
                if (sb.Length > limits.MaxStringLength) { Fail($"string longer than {limits.MaxStringLength} characters", line); return null; }
            }
            Fail("text: string without its closing '.' line", line);
            return null;
        }

        private static string Shown(char c) => c == '\0' ? "end of script" : c < ' ' || c > '~' ? $"\\u{(int)c:x4}" : c.ToString();
    }
}
