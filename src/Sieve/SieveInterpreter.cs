// Runs compiled scripts against one message for one recipient (RFC 5228
// and the extensions SieveValidator admits) and answers what to do: the
// actions, the implicit keep, a fault. The scripts run in order (sieve_before,
// the user's, sieve_after) over one result, as one script would; "stop" ends
// them all. Bounds: steps, wall time, actions, redirects, include depth and
// count, variable sizes; a regular expression has a time-out. A fault drops
// every action and leaves the implicit keep: a broken script never loses mail.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using MimeKit;
using MimeKit.Utils;

namespace Mail.Sieve;

public sealed record SieveRunLimits
{
    public int MaxSteps { get; init; } = 100_000;
    public TimeSpan MaxTime { get; init; } = TimeSpan.FromSeconds(10);
    public int MaxActions { get; init; } = 32;
    public int MaxRedirects { get; init; } = 4;
    public int MaxIncludeDepth { get; init; } = 10;
    public int MaxIncludes { get; init; } = 255;
    public int MaxVariableSize { get; init; } = 4096;
    public int MaxVariables { get; init; } = 255;
    public int MaxBodySize { get; init; } = 1 << 20;
    public TimeSpan VacationDefault { get; init; } = TimeSpan.FromDays(7);
    public TimeSpan VacationMin { get; init; } = TimeSpan.FromDays(1);
    public TimeSpan VacationMax { get; init; } = TimeSpan.FromDays(60);
    public TimeSpan DuplicateDefault { get; init; } = TimeSpan.FromDays(14);
    public TimeSpan DuplicateMax { get; init; } = TimeSpan.FromDays(30);
    public static readonly SieveRunLimits Default = new();
}

/// <summary>What a script may ask of the place it runs in.</summary>
public sealed class SieveEnvironment
{
    public string Hostname { get; init; } = "localhost";
    public string Domain { get; init; } = "localhost";
    public string? RemoteIp { get; init; }
    public string? RemoteHost { get; init; }
    /// <summary>The recipient's own addresses, for vacation's "was it sent to me" check (the envelope recipient is added).</summary>
    public IReadOnlyList<string> UserAddresses { get; init; } = [];
    public Func<string, bool> MailboxExists { get; init; } = name => name.Equals("INBOX", StringComparison.OrdinalIgnoreCase);
    /// <summary>Was a duplicate-tracking key recorded and not expired?</summary>
    public Func<string, bool> DuplicateSeen { get; init; } = _ => false;
    /// <summary>An included script by name, :global or :personal; null when there is none.</summary>
    public Func<string, bool, (SieveCompiled? Script, SieveError? Error)?> Include { get; init; } = (_, _) => null;
    public DateTimeOffset Now { get; init; } = DateTimeOffset.Now;
    public TimeZoneInfo LocalZone { get; init; } = TimeZoneInfo.Local;
    public SieveRunLimits Limits { get; init; } = SieveRunLimits.Default;
}

public static class SieveInterpreter
{
    public static SieveResult Run(IReadOnlyList<SieveCompiled> scripts, SieveMessage message, SieveEnvironment environment)
    {
        var run = new Execution(message, environment);
        try
        {
            foreach (var script in scripts)
                if (run.Script(script) == Flow.Stop) break;
            run.Finish();
        }
        catch (SieveRuntimeException e)
        {
            run.Fail(new SieveError(e.Line, e.Message));
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or OverflowException or IndexOutOfRangeException)
        {
            // A case the interpreter does not know to refuse: a fault of ours, and still never a lost message.
            run.Fail(new SieveError(0, $"{InternalError}: {e.GetType().Name}: {e.Message}"));
        }
        return run.Result;
    }

    /// <summary>The start of the message of a fault the interpreter did not foresee (a bug of ours, not the script's).</summary>
    public const string InternalError = "internal error";

    private enum Flow { Next, Stop, Return }

    /// <summary>A command's or test's arguments: tags with their values, positional string lists, a number.</summary>
    private sealed class Args
    {
        private static readonly HashSet<string> Valued =
        [
            "comparator", "value", "count", "index", "zone", "content", "flags", "days", "seconds", "subject", "from", "handle",
            "addresses", "header", "uniqueid",
        ];

        public readonly Dictionary<string, SieveArgument?> Tags = new(StringComparer.Ordinal);
        public readonly List<StringListArgument> Strings = [];
        public long? Number;

        public Args(IReadOnlyList<SieveArgument> arguments)
        {
            for (int i = 0; i < arguments.Count; i++)
            {
                switch (arguments[i])
                {
                    case TagArgument t:
                        Tags[t.Name] = Valued.Contains(t.Name) && i + 1 < arguments.Count ? arguments[++i] : null;
                        break;
                    case NumberArgument n: Number = n.Value; break;
                    case StringListArgument s: Strings.Add(s); break;
                }
            }
        }

        public bool Has(string tag) => Tags.ContainsKey(tag);
        public string? Text(string tag) => Tags.TryGetValue(tag, out var v) && v is StringListArgument s ? s.Values[0] : null;
        public IReadOnlyList<string>? List(string tag) => Tags.TryGetValue(tag, out var v) && v is StringListArgument s ? s.Values : null;
        public long? Num(string tag) => Tags.TryGetValue(tag, out var v) && v is NumberArgument n ? n.Value : null;
    }

    /// <summary>One script's variables; included scripts share only those declared global.</summary>
    private sealed class Scope(SieveCompiled script)
    {
        public readonly SieveCompiled Script = script;
        public readonly Dictionary<string, string> Locals = new(StringComparer.OrdinalIgnoreCase);
        public readonly HashSet<string> GlobalNames = new(StringComparer.OrdinalIgnoreCase);
        public List<string> MatchVariables = [];
        public bool Variables => Script.Required.Contains("variables");
    }

    private sealed class Execution(SieveMessage message, SieveEnvironment env)
    {
        public readonly SieveResult Result = new();
        private readonly SieveRunLimits _limits = env.Limits;
        private readonly Dictionary<string, string> _globals = new(StringComparer.OrdinalIgnoreCase);
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly HashSet<(string, bool)> _includedOnce = [];
        private readonly List<(string, bool)> _including = [];
        private List<string> _flags = [];
        private int _steps, _includes, _redirects;
        private bool _rejected, _vacation;

        public Flow Script(SieveCompiled script)
        {
            var flow = Block(script.Script.Commands, new Scope(script));
            return flow == Flow.Stop ? Flow.Stop : Flow.Next;
        }

        public void Finish()
        {
            Result.ImplicitKeepFlags = Result.ImplicitKeep ? _flags.ToList() : [];
        }

        public void Fail(SieveError error)
        {
            Result.Error = error;
            Result.Actions.Clear();
            Result.DuplicateMarks.Clear();
            Result.ImplicitKeep = true;
            Result.ImplicitKeepFlags = [];
        }

        private void Step(int line)
        {
            if (++_steps > _limits.MaxSteps) throw new SieveRuntimeException(line, $"script ran more than {_limits.MaxSteps} steps");
            if ((_steps & 63) == 0 && _clock.Elapsed > _limits.MaxTime) throw new SieveRuntimeException(line, "script ran too long");
        }

        private Flow Block(IReadOnlyList<SieveCommand> commands, Scope scope)
        {
            bool? chainTaken = null; // within an if/elsif/else chain: whether a branch ran
            foreach (var c in commands)
            {
                Step(c.Line);
                switch (c.Name)
                {
                    case "if":
                        chainTaken = Test(c.Tests[0], scope);
                        if (chainTaken == true && Block(c.Block!, scope) is var f1 && f1 != Flow.Next) return f1;
                        continue;
                    case "elsif":
                        if (chainTaken == true) continue;
                        chainTaken = Test(c.Tests[0], scope);
                        if (chainTaken == true && Block(c.Block!, scope) is var f2 && f2 != Flow.Next) return f2;
                        continue;
                    case "else":
                        if (chainTaken == true) continue;
                        chainTaken = true;
                        if (Block(c.Block!, scope) is var f3 && f3 != Flow.Next) return f3;
                        continue;
                }
                chainTaken = null;
                var flow = Command(c, scope);
                if (flow != Flow.Next) return flow;
            }
            return Flow.Next;
        }

        // ---- strings and variables (RFC 5229) ----

        private string Expand(string s, Scope scope)
        {
            if (!scope.Variables || !s.Contains("${", StringComparison.Ordinal)) return s;
            var sb = new StringBuilder();
            int i = 0;
            while (i < s.Length)
            {
                int open = s.IndexOf("${", i, StringComparison.Ordinal);
                if (open < 0) { sb.Append(s, i, s.Length - i); break; }
                sb.Append(s, i, open - i);
                int close = s.IndexOf('}', open + 2);
                var name = close < 0 ? null : s[(open + 2)..close];
                if (name == null || !ValidReference(name))
                {
                    sb.Append("${");
                    i = open + 2;
                    continue;
                }
                sb.Append(Variable(name, scope));
                i = close + 1;
                if (sb.Length > _limits.MaxVariableSize * 4) break;
            }
            return sb.ToString();
        }

        private static bool ValidReference(string name)
        {
            if (name.Length == 0) return false;
            if (char.IsAsciiDigit(name[0])) return name.All(char.IsAsciiDigit);
            foreach (var part in name.Split('.'))
                if (part.Length == 0 || !(char.IsAsciiLetter(part[0]) || part[0] == '_') || !part.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_'))
                    return false;
            return true;
        }

        private string Variable(string name, Scope scope)
        {
            if (char.IsAsciiDigit(name[0]))
                return int.TryParse(name, out var n) && n < scope.MatchVariables.Count ? scope.MatchVariables[n] : "";
            if (scope.GlobalNames.Contains(name)) return _globals.GetValueOrDefault(name, "");
            if (name.StartsWith("global.", StringComparison.OrdinalIgnoreCase)) return _globals.GetValueOrDefault(name[7..], "");
            return scope.Locals.GetValueOrDefault(name, "");
        }

        private void SetVariable(string name, string value, Scope scope, int line)
        {
            if (value.Length > _limits.MaxVariableSize) value = value[.._limits.MaxVariableSize];
            Dictionary<string, string> target = scope.Locals;
            if (scope.GlobalNames.Contains(name)) target = _globals;
            else if (name.StartsWith("global.", StringComparison.OrdinalIgnoreCase)) { target = _globals; name = name[7..]; }
            if (!target.ContainsKey(name) && target.Count >= _limits.MaxVariables) throw new SieveRuntimeException(line, "too many variables");
            target[name] = value;
        }

        private List<string> Strings(StringListArgument a, Scope scope) => a.Values.Select(v => Expand(v, scope)).ToList();

        private string String(StringListArgument a, Scope scope) => Expand(a.Values[0], scope);

        // ---- commands ----

        private Flow Command(SieveCommand c, Scope scope)
        {
            var a = new Args(c.Arguments);
            switch (c.Name)
            {
                case "require": return Flow.Next;
                case "stop": return Flow.Stop;
                case "return": return Flow.Return;
                case "keep":
                    Keep(Flags(a, scope), c.Line);
                    Result.ImplicitKeep = false;
                    return Flow.Next;
                case "discard":
                    Add(new DiscardAction(c.Line));
                    Result.ImplicitKeep = false;
                    return Flow.Next;
                case "fileinto":
                {
                    var mailbox = String(a.Strings[0], scope);
                    bool copy = a.Has("copy");
                    if (mailbox.Equals("INBOX", StringComparison.OrdinalIgnoreCase)) Keep(Flags(a, scope), c.Line);
                    else
                    {
                        CheckNotRejected("fileinto", c.Line);
                        if (!Result.Actions.OfType<FileIntoAction>().Any(f => f.Mailbox == mailbox))
                            Add(new FileIntoAction(mailbox, Flags(a, scope), a.Has("create"), copy, c.Line));
                    }
                    if (!copy) Result.ImplicitKeep = false;
                    return Flow.Next;
                }
                case "redirect":
                {
                    var address = String(a.Strings[0], scope).Trim();
                    if (!ValidAddress(address)) throw new SieveRuntimeException(c.Line, $"redirect: invalid address '{Printable(address)}'");
                    CheckNotRejected("redirect", c.Line);
                    bool copy = a.Has("copy");
                    if (!Result.Actions.OfType<RedirectAction>().Any(r => r.Address.Equals(address, StringComparison.OrdinalIgnoreCase)))
                    {
                        if (++_redirects > _limits.MaxRedirects) throw new SieveRuntimeException(c.Line, $"more than {_limits.MaxRedirects} redirects");
                        Add(new RedirectAction(address, copy, c.Line));
                    }
                    if (!copy) Result.ImplicitKeep = false;
                    return Flow.Next;
                }
                case "reject" or "ereject":
                {
                    if (_rejected) throw new SieveRuntimeException(c.Line, "more than one reject");
                    if (Result.Actions.FirstOrDefault(x => x is KeepAction or FileIntoAction or RedirectAction or VacationAction) is { } other)
                        throw new SieveRuntimeException(c.Line, $"{c.Name} conflicts with the {Verb(other)} action on line {other.Line}");
                    _rejected = true;
                    Add(new RejectAction(String(a.Strings[0], scope), c.Name == "ereject", c.Line));
                    Result.ImplicitKeep = false;
                    return Flow.Next;
                }
                case "vacation":
                    Vacation(a, scope, c.Line);
                    return Flow.Next;
                case "setflag" or "addflag" or "removeflag":
                    Flagging(c.Name, a, scope, c.Line);
                    return Flow.Next;
                case "set":
                    Set(a, scope, c.Line);
                    return Flow.Next;
                case "global":
                    foreach (var name in a.Strings[0].Values) scope.GlobalNames.Add(name);
                    return Flow.Next;
                case "include":
                    return Include(a, scope, c.Line);
                case "addheader":
                    AddHeader(a, scope, c.Line);
                    return Flow.Next;
                case "deleteheader":
                    DeleteHeader(a, scope, c.Line);
                    return Flow.Next;
                default:
                    throw new SieveRuntimeException(c.Line, $"unknown command '{c.Name}'");
            }
        }

        private static string Verb(SieveAction a) => a switch
        {
            KeepAction => "keep", FileIntoAction => "fileinto", RedirectAction => "redirect", VacationAction => "vacation", _ => "other",
        };

        private void CheckNotRejected(string action, int line)
        {
            if (_rejected) throw new SieveRuntimeException(line, $"{action} conflicts with reject");
        }

        private void Add(SieveAction action)
        {
            if (Result.Actions.Count >= _limits.MaxActions) throw new SieveRuntimeException(action.Line, $"more than {_limits.MaxActions} actions");
            Result.Actions.Add(action);
        }

        private void Keep(IReadOnlyList<string> flags, int line)
        {
            CheckNotRejected("keep", line);
            if (Result.Actions.OfType<KeepAction>().FirstOrDefault() is { } kept)
            {
                // One copy in INBOX: a second keep only adds its flags.
                var merged = kept.Flags.Concat(flags).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
                Result.Actions[Result.Actions.IndexOf(kept)] = kept with { Flags = merged };
                return;
            }
            Add(new KeepAction(flags, line));
        }

        /// <summary>The :flags given, else imap4flags' internal variable (RFC 5232 5).</summary>
        private IReadOnlyList<string> Flags(Args a, Scope scope)
        {
            if (a.List("flags") is { } given) return NormalizeFlags(given.Select(f => Expand(f, scope)));
            return scope.Script.Required.Contains("imap4flags") ? _flags.ToList() : [];
        }

        private static readonly string[] SystemFlags = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

        /// <summary>Flags split at spaces, each once; an unknown system flag or a malformed keyword is dropped.</summary>
        private List<string> NormalizeFlags(IEnumerable<string> values)
        {
            var list = new List<string>();
            foreach (var value in values)
                foreach (var flag in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    string? f = flag.StartsWith('\\') ? SystemFlags.FirstOrDefault(s => s.Equals(flag, StringComparison.OrdinalIgnoreCase))
                        : flag.All(ch => ch > ' ' && ch < 127 && ch is not ('(' or ')' or '{' or '%' or '*' or '"' or '\\' or ']')) ? flag : null;
                    if (f == null) { Result.Warnings.Add($"flag '{Printable(flag)}' ignored"); continue; }
                    if (!list.Contains(f, StringComparer.OrdinalIgnoreCase)) list.Add(f);
                }
            return list;
        }

        private void Flagging(string verb, Args a, Scope scope, int line)
        {
            string? variable = a.Strings.Count == 2 ? Expand(a.Strings[0].Values[0], scope) : null;
            var given = NormalizeFlags(Strings(a.Strings[^1], scope));
            var current = variable == null ? _flags : NormalizeFlags([Variable(variable, scope)]);
            List<string> next = verb switch
            {
                "setflag" => given,
                "addflag" => current.Concat(given).Distinct(StringComparer.OrdinalIgnoreCase).ToList(),
                _ => current.Where(f => !given.Contains(f, StringComparer.OrdinalIgnoreCase)).ToList(),
            };
            if (variable == null) _flags = next;
            else SetVariable(variable, string.Join(' ', next), scope, line);
        }

        private void Set(Args a, Scope scope, int line)
        {
            var name = a.Strings[0].Values[0];
            if (!ValidReference(name) || char.IsAsciiDigit(name[0])) throw new SieveRuntimeException(line, $"set: invalid variable name '{Printable(name)}'");
            var value = String(a.Strings[1], scope);
            // RFC 5229 4.1: modifiers by precedence, highest first.
            if (a.Has("lower")) value = value.ToLowerInvariant();
            if (a.Has("upper")) value = value.ToUpperInvariant();
            if (a.Has("lowerfirst") && value.Length > 0) value = char.ToLowerInvariant(value[0]) + value[1..];
            if (a.Has("upperfirst") && value.Length > 0) value = char.ToUpperInvariant(value[0]) + value[1..];
            if (a.Has("quotewildcard")) value = Quote(value, "*?\\");
            if (a.Has("quoteregex")) value = Quote(value, "\\.^$*+?()[]{}|");
            if (a.Has("encodeurl")) value = Uri.EscapeDataString(value);
            if (a.Has("length")) value = new StringInfo(value).LengthInTextElements.ToString(CultureInfo.InvariantCulture);
            SetVariable(name, value, scope, line);
        }

        private static string Quote(string s, string special)
        {
            var sb = new StringBuilder(s.Length + 8);
            foreach (var ch in s)
            {
                if (special.Contains(ch)) sb.Append('\\');
                sb.Append(ch);
            }
            return sb.ToString();
        }

        private Flow Include(Args a, Scope scope, int line)
        {
            var name = String(a.Strings[0], scope);
            bool global = a.Has("global");
            if (name.Length == 0 || name.Contains('/') || name.Contains('\\') || name.StartsWith('.') || name.Any(char.IsControl))
                throw new SieveRuntimeException(line, $"include: invalid script name '{Printable(name)}'");
            var key = (name, global);
            if (a.Has("once") && !_includedOnce.Add(key)) return Flow.Next;
            if (_including.Contains(key)) throw new SieveRuntimeException(line, $"include: '{name}' includes itself");
            if (_including.Count >= _limits.MaxIncludeDepth) throw new SieveRuntimeException(line, $"includes nested deeper than {_limits.MaxIncludeDepth}");
            if (++_includes > _limits.MaxIncludes) throw new SieveRuntimeException(line, $"more than {_limits.MaxIncludes} includes");
            var found = env.Include(name, global);
            if (found == null)
            {
                if (a.Has("optional")) return Flow.Next;
                throw new SieveRuntimeException(line, $"include: {(global ? "global" : "personal")} script '{name}' not found");
            }
            if (found.Value.Script == null) throw new SieveRuntimeException(line, $"include: script '{name}': {found.Value.Error}");
            _including.Add(key);
            try
            {
                var inner = new Scope(found.Value.Script);
                var flow = Block(found.Value.Script.Script.Commands, inner);
                return flow == Flow.Stop ? Flow.Stop : Flow.Next;
            }
            finally { _including.RemoveAt(_including.Count - 1); }
        }

        // ---- editheader (RFC 5293) ----

        private static readonly string[] Protected = ["received", "auto-submitted"];

        private void AddHeader(Args a, Scope scope, int line)
        {
            var name = String(a.Strings[0], scope);
            var value = String(a.Strings[1], scope);
            if (!ValidFieldName(name)) throw new SieveRuntimeException(line, $"addheader: invalid header field name '{Printable(name)}'");
            if (Protected.Contains(name.ToLowerInvariant())) { Result.Warnings.Add($"addheader: {name} is protected"); return; }
            if (value.Contains('\0')) throw new SieveRuntimeException(line, "addheader: invalid value");
            var header = new Header(Encoding.UTF8, name, value.Replace("\r\n", " ").Replace('\n', ' '));
            if (a.Has("last")) message.Headers.Add(header);
            else message.Headers.Insert(0, header);
            message.HeadersChanged = true;
        }

        private void DeleteHeader(Args a, Scope scope, int line)
        {
            var name = String(a.Strings[0], scope);
            if (!ValidFieldName(name)) throw new SieveRuntimeException(line, $"deleteheader: invalid header field name '{Printable(name)}'");
            if (Protected.Contains(name.ToLowerInvariant())) { Result.Warnings.Add($"deleteheader: {name} is protected"); return; }
            var patterns = a.Strings.Count > 1 ? Strings(a.Strings[1], scope) : null;
            var matcher = Matcher(a, line);
            var fields = message.Fields(name).ToList();
            var chosen = Indexed(fields, a);
            bool changed = false;
            foreach (var field in chosen)
            {
                if (patterns != null && !patterns.Any(p => matcher.Match(field.Value, p, null, line))) continue;
                message.Headers.Remove(field);
                changed = true;
            }
            if (changed) message.HeadersChanged = true;
        }

        private static bool ValidFieldName(string name) =>
            name.Length is > 0 and < 998 && name.All(ch => ch > ' ' && ch < 127 && ch != ':');

        /// <summary>The :index'th of the fields (from the end with :last), or all of them (RFC 5260 6).</summary>
        private static IEnumerable<T> Indexed<T>(IReadOnlyList<T> items, Args a)
        {
            if (a.Num("index") is not { } index) return items;
            int i = a.Has("last") ? items.Count - (int)index : (int)index - 1;
            return i >= 0 && i < items.Count ? [items[i]] : [];
        }

        // ---- vacation (RFC 5230, 6131) ----

        private static readonly string[] ListHeaders = ["list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner", "list-archive"];

        private void Vacation(Args a, Scope scope, int line)
        {
            if (_vacation) throw new SieveRuntimeException(line, "more than one vacation");
            CheckNotRejected("vacation", line);
            _vacation = true;
            var reason = String(a.Strings[0], scope);
            var subject = a.Text("subject") is { } s ? Expand(s, scope) : null;
            var from = a.Text("from") is { } f ? Expand(f, scope) : null;
            var handle = a.Text("handle") is { } h ? Expand(h, scope)
                : reason + (subject ?? "") + (from ?? "<default-from>") + (a.Has("mime") ? "<MIME>" : "<NO-MIME>");
            var period = a.Num("seconds") is { } seconds ? TimeSpan.FromSeconds(seconds)
                : a.Num("days") is { } days ? TimeSpan.FromDays(days) : _limits.VacationDefault;
            if (period < _limits.VacationMin) period = _limits.VacationMin;
            if (period > _limits.VacationMax) period = _limits.VacationMax;
            var addresses = (a.List("addresses") ?? []).Select(x => Expand(x, scope)).Concat(env.UserAddresses).Append(message.EnvelopeTo)
                .Where(x => x.Length > 0).Select(Bare).ToList();
            var original = message.Fields("subject").FirstOrDefault()?.Value ?? "";
            subject ??= original.Length > 0 ? "Auto: " + original : "Automated reply";
            var messageId = message.Fields("message-id").FirstOrDefault()?.Value.Trim();
            var references = message.Fields("references").FirstOrDefault()?.Value.Trim();
            if (messageId != null) references = references == null ? messageId : references + " " + messageId;
            Add(new VacationAction(message.EnvelopeFrom, from ?? message.EnvelopeTo, subject, reason, a.Has("mime"), handle, period,
                messageId, references, Suppressed(addresses), line));
        }

        private static string Bare(string address)
        {
            address = address.Trim();
            int lt = address.LastIndexOf('<');
            int gt = address.LastIndexOf('>');
            return lt >= 0 && gt > lt ? address[(lt + 1)..gt] : address;
        }

        /// <summary>Why no reply goes out (RFC 5230 4.5, 5), or null.</summary>
        private string? Suppressed(List<string> addresses)
        {
            var sender = message.EnvelopeFrom;
            if (sender.Length == 0) return "null sender";
            if (addresses.Any(x => x.Equals(sender, StringComparison.OrdinalIgnoreCase))) return "sender is the recipient";
            int at = sender.LastIndexOf('@');
            var local = (at > 0 ? sender[..at] : sender).ToLowerInvariant();
            if (local is "mailer-daemon" or "listserv" or "majordomo" or "postmaster" || local.StartsWith("owner-", StringComparison.Ordinal)
                || local.EndsWith("-request", StringComparison.Ordinal) || local.EndsWith("-owner", StringComparison.Ordinal)
                || local.EndsWith("-bounces", StringComparison.Ordinal))
                return "sender is a list or a mail system";
            foreach (var h in message.Headers)
            {
                var field = h.Field.ToLowerInvariant();
                var value = h.Value.Trim();
                if (field == "auto-submitted" && !value.Equals("no", StringComparison.OrdinalIgnoreCase)) return "auto-submitted message";
                if (field == "precedence" && value.ToLowerInvariant() is "bulk" or "list" or "junk") return $"precedence {value.ToLowerInvariant()}";
                if (ListHeaders.Contains(field)) return "mailing list";
                if (field == "x-auto-response-suppress" && value.Split(',', StringSplitOptions.TrimEntries)
                        .Any(v => v.Equals("All", StringComparison.OrdinalIgnoreCase) || v.Equals("OOF", StringComparison.OrdinalIgnoreCase)))
                    return "auto-response suppressed";
            }
            foreach (var name in new[] { "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc" })
                foreach (var field in message.Fields(name))
                    foreach (var address in Addresses(field))
                        if (addresses.Any(x => x.Equals(address.Address, StringComparison.OrdinalIgnoreCase))) return null;
            return "not addressed to the recipient";
        }

        // ---- tests ----

        private bool Test(SieveTest t, Scope scope)
        {
            Step(t.Line);
            switch (t.Name)
            {
                case "true": return true;
                case "false": return false;
                case "not": return !Test(t.Tests[0], scope);
                case "allof":
                    foreach (var inner in t.Tests) if (!Test(inner, scope)) return false;
                    return true;
                case "anyof":
                    foreach (var inner in t.Tests) if (Test(inner, scope)) return true;
                    return false;
            }
            var a = new Args(t.Arguments);
            switch (t.Name)
            {
                case "exists":
                    return Strings(a.Strings[0], scope).All(name => message.Fields(name).Any());
                case "size":
                    return a.Has("over") ? message.Size > a.Number : message.Size < a.Number;
                case "header":
                    return Matches(a, scope, t.Line, Strings(a.Strings[0], scope).SelectMany(name => Indexed(message.Fields(name).ToList(), a))
                        .Select(h => h.Value), a.Strings[1]);
                case "address":
                    return Matches(a, scope, t.Line, Strings(a.Strings[0], scope).SelectMany(name => Indexed(message.Fields(name).ToList(), a))
                        .SelectMany(Addresses).Select(x => Part(x.Address, x.LocalPart, x.Domain, a)).OfType<string>(), a.Strings[1]);
                case "envelope":
                    return Matches(a, scope, t.Line, Strings(a.Strings[0], scope).SelectMany(part => Envelope(part.ToLowerInvariant()))
                        .Select(x => EnvelopePart(x, a)).OfType<string>(), a.Strings[1]);
                case "body":
                    return Matches(a, scope, t.Line, Body(a), a.Strings[0]);
                case "date":
                {
                    var header = String(a.Strings[0], scope);
                    var part = String(a.Strings[1], scope).ToLowerInvariant();
                    var dates = Indexed(message.Fields(header).ToList(), a)
                        .Select(h => DateUtils.TryParse(h.Value, out DateTimeOffset d) ? d : (DateTimeOffset?)null).OfType<DateTimeOffset>();
                    return Matches(a, scope, t.Line, dates.Select(d => DatePart(Zone(d, a, scope, t.Line), part, t.Line)).OfType<string>(), a.Strings[2]);
                }
                case "currentdate":
                {
                    var part = String(a.Strings[0], scope).ToLowerInvariant();
                    var now = Zone(env.Now, a, scope, t.Line);
                    return Matches(a, scope, t.Line, DatePart(now, part, t.Line) is { } v ? [v] : [], a.Strings[1]);
                }
                case "string":
                {
                    var source = Strings(a.Strings[0], scope);
                    if (a.Has("count")) source = source.Where(s => s.Length > 0).ToList();
                    return Matches(a, scope, t.Line, source, a.Strings[1]);
                }
                case "hasflag":
                {
                    IEnumerable<string> flags = a.Strings.Count == 2
                        ? NormalizeFlags(Strings(a.Strings[0], scope).Select(v => Variable(v, scope)))
                        : _flags;
                    return Matches(a, scope, t.Line, flags.ToList(), a.Strings[^1]);
                }
                case "duplicate":
                    return Duplicate(a, scope);
                case "mailboxexists":
                    return Strings(a.Strings[0], scope).All(env.MailboxExists);
                case "environment":
                {
                    var value = EnvironmentItem(String(a.Strings[0], scope).ToLowerInvariant());
                    return value != null && Matches(a, scope, t.Line, [value], a.Strings[1]);
                }
                case "spamtest":
                    return Matches(a, scope, t.Line, [SpamValue(a.Has("percent"))], a.Strings[0], numeric: true);
                case "virustest":
                    return Matches(a, scope, t.Line, ["0"], a.Strings[0], numeric: true);
                default:
                    throw new SieveRuntimeException(t.Line, $"unknown test '{t.Name}'");
            }
        }

        private SieveMatcher Matcher(Args a, int line, bool numeric = false)
        {
            var type = a.Has("contains") ? SieveMatchType.Contains : a.Has("matches") ? SieveMatchType.Matches : a.Has("regex") ? SieveMatchType.Regex
                : a.Has("value") ? SieveMatchType.Value : a.Has("count") ? SieveMatchType.Count : SieveMatchType.Is;
            var relation = (a.Text("value") ?? a.Text("count"))?.ToLowerInvariant();
            if (relation != null && relation is not ("gt" or "ge" or "lt" or "le" or "eq" or "ne"))
                throw new SieveRuntimeException(line, $"invalid relation '{Printable(relation)}'");
            var comparator = a.Text("comparator") switch
            {
                "i;octet" => SieveComparator.Octet,
                "i;ascii-numeric" => SieveComparator.AsciiNumeric,
                null when numeric => SieveComparator.AsciiNumeric,
                _ => SieveComparator.AsciiCasemap,
            };
            return new SieveMatcher(type, relation, comparator);
        }

        /// <summary>Does any value match any key? A successful :matches or :regex sets the match variables.</summary>
        private bool Matches(Args a, Scope scope, int line, IEnumerable<string> values, StringListArgument keyArgument, bool numeric = false)
        {
            var matcher = Matcher(a, line, numeric);
            var keys = Strings(keyArgument, scope);
            if (matcher.Type == SieveMatchType.Count)
            {
                var count = values.Count().ToString(CultureInfo.InvariantCulture);
                return keys.Any(k => matcher.Relate(SieveMatcher.CompareNumeric(count, k)));
            }
            bool capture = scope.Variables && matcher.Type is SieveMatchType.Matches or SieveMatchType.Regex;
            var captures = capture ? new List<string>() : null;
            foreach (var value in values)
            {
                Step(line);
                foreach (var key in keys)
                {
                    if (!matcher.Match(value, key, captures, line)) continue;
                    if (captures != null) scope.MatchVariables = captures;
                    return true;
                }
            }
            return false;
        }

        private static IEnumerable<MailboxAddress> Addresses(Header field)
        {
            if (!InternetAddressList.TryParse(ParserOptions.Default, field.RawValue, out var list)) return [];
            return list.Mailboxes;
        }

        private static string? Part(string all, string local, string domain, Args a)
        {
            if (a.Has("localpart")) return local;
            if (a.Has("domain")) return domain;
            if (a.Has("user") || a.Has("detail"))
            {
                int plus = local.IndexOf('+');
                if (a.Has("user")) return plus < 0 ? local : local[..plus];
                return plus < 0 ? null : local[(plus + 1)..];
            }
            return all;
        }

        private IEnumerable<string> Envelope(string part) => part switch
        {
            "from" => [message.EnvelopeFrom],
            "to" => [message.EnvelopeTo],
            "auth" => message.AuthUser is { } u ? [u] : [],
            _ => [],
        };

        private static string? EnvelopePart(string address, Args a)
        {
            int at = address.LastIndexOf('@');
            return Part(address, at < 0 ? address : address[..at], at < 0 ? "" : address[(at + 1)..], a);
        }

        /// <summary>body (RFC 5173): the raw body, the parts of the content types given, or the text parts.</summary>
        private IEnumerable<string> Body(Args a)
        {
            if (a.Has("raw")) return [message.RawBody(_limits.MaxBodySize)];
            var parsed = message.Parsed();
            var types = a.List("content");
            var values = new List<string>();
            long total = 0;
            foreach (var entity in parsed.BodyParts)
            {
                if (entity is not MimePart part) continue;
                var type = part.ContentType;
                bool wanted = types == null
                    ? type.IsMimeType("text", "*") && !part.IsAttachment
                    : types.Any(t => t.Length == 0 || (t.Contains('/') ? type.MimeType.Equals(t, StringComparison.OrdinalIgnoreCase)
                        : type.MediaType.Equals(t, StringComparison.OrdinalIgnoreCase)));
                if (!wanted) continue;
                string text;
                if (part is TextPart textPart) text = textPart.Text ?? "";
                else
                {
                    using var ms = new MemoryStream();
                    part.Content?.DecodeTo(ms);
                    text = Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
                }
                if (types == null && type.IsMimeType("text", "html")) text = StripTags(text);
                total += text.Length;
                if (total > _limits.MaxBodySize) break;
                values.Add(text);
            }
            return values;
        }

        private static string StripTags(string html)
        {
            var sb = new StringBuilder(html.Length);
            bool inTag = false;
            foreach (var ch in html)
            {
                if (ch == '<') inTag = true;
                else if (ch == '>') { inTag = false; sb.Append(' '); }
                else if (!inTag) sb.Append(ch);
            }
            return System.Net.WebUtility.HtmlDecode(sb.ToString());
        }

        // ---- date (RFC 5260) ----

        private DateTimeOffset Zone(DateTimeOffset d, Args a, Scope scope, int line)
        {
            if (a.Has("originalzone")) return d;
            if (a.Text("zone") is { } z)
            {
                z = Expand(z, scope);
                // +hhmm or -hhmm (RFC 5260 4.1), within the offsets clocks use (14 hours either way).
                if (z.Length == 5 && z[0] is '+' or '-' && int.TryParse(z.AsSpan(1, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var hh)
                    && int.TryParse(z.AsSpan(3, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var mm) && mm < 60 && hh * 60 + mm <= 14 * 60)
                    return d.ToOffset(TimeSpan.FromMinutes((z[0] == '-' ? -1 : 1) * (hh * 60 + mm)));
                throw new SieveRuntimeException(line, $"invalid :zone '{Printable(z)}'");
            }
            return TimeZoneInfo.ConvertTime(d, env.LocalZone);
        }

        private static string? DatePart(DateTimeOffset d, string part, int line)
        {
            var c = CultureInfo.InvariantCulture;
            var offset = d.Offset;
            var zone = (offset < TimeSpan.Zero ? "-" : "+") + offset.Duration().ToString("hhmm", c);
            return part switch
            {
                "year" => d.Year.ToString("D4", c),
                "month" => d.Month.ToString("D2", c),
                "day" => d.Day.ToString("D2", c),
                "date" => d.ToString("yyyy-MM-dd", c),
                "julian" => ((long)Math.Floor((d.Date - new DateTime(1858, 11, 17)).TotalDays)).ToString(c),
                "hour" => d.Hour.ToString("D2", c),
                "minute" => d.Minute.ToString("D2", c),
                "second" => d.Second.ToString("D2", c),
                "time" => d.ToString("HH:mm:ss", c),
                "iso8601" => d.ToString("yyyy-MM-dd'T'HH:mm:ss", c) + (offset == TimeSpan.Zero ? "Z" : zone.Insert(3, ":")),
                "std11" => d.ToString("ddd, dd MMM yyyy HH:mm:ss ", c) + zone,
                "zone" => zone,
                "weekday" => ((int)d.DayOfWeek).ToString(c),
                _ => throw new SieveRuntimeException(line, $"unknown date part '{Printable(part)}'"),
            };
        }

        // ---- duplicate (RFC 7352), environment (RFC 5183), spamtest (RFC 5235) ----

        private bool Duplicate(Args a, Scope scope)
        {
            string? id = a.Text("uniqueid") is { } u ? Expand(u, scope)
                : message.Fields(a.Text("header") is { } h ? Expand(h, scope) : "message-id").FirstOrDefault()?.Value.Trim();
            if (string.IsNullOrEmpty(id)) return false;
            var handle = a.Text("handle") is { } hd ? Expand(hd, scope) : "";
            var key = "duplicate\0" + handle + "\0" + id;
            var period = a.Num("seconds") is { } s ? TimeSpan.FromSeconds(s) : _limits.DuplicateDefault;
            if (period > _limits.DuplicateMax) period = _limits.DuplicateMax;
            bool seen = env.DuplicateSeen(key);
            if (!seen || a.Has("last")) Result.DuplicateMarks.Add(new DuplicateMark(key, period));
            return seen;
        }

        private string? EnvironmentItem(string name) => name switch
        {
            "domain" => env.Domain,
            "host" => env.Hostname,
            "location" => "MDA",
            "phase" => "during",
            "name" => "Mail Suite",
            "version" => "1.0",
            "remote-ip" => env.RemoteIp,
            "remote-host" => env.RemoteHost,
            _ => null,
        };

        /// <summary>From X-Spam-Status as the MX's checks write it: untested 0, "No" 1, "Yes" 10; :percent ten times that, as Pigeonhole counts.</summary>
        private string SpamValue(bool percent)
        {
            var status = message.Fields("x-spam-status").FirstOrDefault()?.Value.Trim();
            if (status == null) return "0";
            bool spam = status.StartsWith("yes", StringComparison.OrdinalIgnoreCase);
            return percent ? (spam ? "100" : "10") : (spam ? "10" : "1");
        }

    }

    /// <summary>A redirect's target: local@domain, no brackets, spaces or lists (RFC 5228 4.2).</summary>
    internal static bool ValidAddress(string address)
    {
        if (address.Length is 0 or > 320 || address.Any(ch => ch <= ' ' || ch == 127 || ch is '<' or '>' or ',' or '(' or ')' or '"')) return false;
        int at = address.LastIndexOf('@');
        return at > 0 && at < address.Length - 1 && address.IndexOf('@') == at && !address.EndsWith('.');
    }

    internal static string Printable(string s) => new(s.Select(ch => ch is >= ' ' and <= '~' ? ch : '?').Take(100).ToArray());
}
