// What a parsed script may say (RFC 5228 and the extensions we take): require
// first and only extensions we know; every command and test known, and its
// extension required; if/elsif/else in order, with a test and a block where
// they take one; each command's and test's tags known and given the value
// they take, and the number of its positional arguments right. The first
// fault is the answer, with its line, as ManageSieve's CHECKSCRIPT and
// PUTSCRIPT report it (RFC 5804 2.6) and Pigeonhole words it.
namespace Mail.Sieve;

public static class SieveValidator
{
    /// <summary>The extensions a script may require (the SIEVE capability).</summary>
    public static readonly IReadOnlyList<string> Extensions =
    [
        "fileinto", "reject", "ereject", "envelope", "encoded-character", "imap4flags", "copy", "body", "variables", "vacation",
        "vacation-seconds", "relational", "comparator-i;ascii-numeric", "subaddress", "date", "index", "regex", "include",
        "duplicate", "editheader", "mailbox", "environment", "spamtest", "spamtestplus", "virustest",
    ];

    private enum V { None, String, StringList, Number }

    /// <summary>A command's or test's shape: its extension, positional string lists (min, max) and tags with what follows them.</summary>
    private sealed record Shape(string? Extension, int Min, int Max, Dictionary<string, V> Tags, bool Number = false);

    private static readonly Dictionary<string, V> Match = new()
    {
        ["is"] = V.None, ["contains"] = V.None, ["matches"] = V.None, ["regex"] = V.None, ["value"] = V.String, ["count"] = V.String,
        ["comparator"] = V.String,
    };

    private static Dictionary<string, V> With(Dictionary<string, V> a, params (string Tag, V Value)[] more)
    {
        var d = new Dictionary<string, V>(a);
        foreach (var (t, v) in more) d[t] = v;
        return d;
    }

    private static readonly Dictionary<string, V> AddressTags = With(Match, ("all", V.None), ("localpart", V.None), ("domain", V.None),
        ("user", V.None), ("detail", V.None), ("index", V.Number), ("last", V.None));

    private static readonly Dictionary<string, Shape> Commands = new()
    {
        ["require"] = new(null, 1, 1, []),
        ["stop"] = new(null, 0, 0, []),
        ["keep"] = new(null, 0, 0, new() { ["flags"] = V.StringList }),
        ["discard"] = new(null, 0, 0, []),
        ["redirect"] = new(null, 1, 1, new() { ["copy"] = V.None }),
        ["fileinto"] = new("fileinto", 1, 1, new() { ["copy"] = V.None, ["create"] = V.None, ["flags"] = V.StringList }),
        ["reject"] = new("reject", 1, 1, []),
        ["ereject"] = new("ereject", 1, 1, []),
        ["vacation"] = new("vacation", 1, 1, new()
        {
            ["days"] = V.Number, ["seconds"] = V.Number, ["subject"] = V.String, ["from"] = V.String, ["addresses"] = V.StringList,
            ["mime"] = V.None, ["handle"] = V.String,
        }),
        ["setflag"] = new("imap4flags", 1, 2, []),
        ["addflag"] = new("imap4flags", 1, 2, []),
        ["removeflag"] = new("imap4flags", 1, 2, []),
        ["set"] = new("variables", 2, 2, new()
        {
            ["lower"] = V.None, ["upper"] = V.None, ["lowerfirst"] = V.None, ["upperfirst"] = V.None, ["quotewildcard"] = V.None,
            ["quoteregex"] = V.None, ["length"] = V.None, ["encodeurl"] = V.None,
        }),
        ["include"] = new("include", 1, 1, new() { ["personal"] = V.None, ["global"] = V.None, ["once"] = V.None, ["optional"] = V.None }),
        ["return"] = new("include", 0, 0, []),
        ["global"] = new("include", 1, 1, []),
        ["addheader"] = new("editheader", 2, 2, new() { ["last"] = V.None }),
        ["deleteheader"] = new("editheader", 1, 2, With(Match, ("index", V.Number), ("last", V.None))),
    };

    private static readonly Dictionary<string, Shape> Tests = new()
    {
        ["address"] = new(null, 2, 2, AddressTags),
        ["envelope"] = new("envelope", 2, 2, AddressTags),
        ["header"] = new(null, 2, 2, With(Match, ("index", V.Number), ("last", V.None), ("mime", V.None), ("anychild", V.None))),
        ["exists"] = new(null, 1, 1, []),
        ["size"] = new(null, 0, 0, new() { ["over"] = V.None, ["under"] = V.None }, Number: true),
        ["true"] = new(null, 0, 0, []),
        ["false"] = new(null, 0, 0, []),
        ["body"] = new("body", 1, 1, With(Match, ("raw", V.None), ("content", V.StringList), ("text", V.None))),
        ["date"] = new("date", 3, 3, With(Match, ("zone", V.String), ("originalzone", V.None), ("index", V.Number), ("last", V.None))),
        ["currentdate"] = new("date", 2, 2, With(Match, ("zone", V.String))),
        ["string"] = new("variables", 2, 2, Match),
        ["hasflag"] = new("imap4flags", 1, 2, Match),
        ["duplicate"] = new("duplicate", 0, 0, new()
        {
            ["handle"] = V.String, ["header"] = V.String, ["uniqueid"] = V.String, ["seconds"] = V.Number, ["last"] = V.None,
        }),
        ["mailboxexists"] = new("mailbox", 1, 1, []),
        ["environment"] = new("environment", 2, 2, Match),
        ["spamtest"] = new("spamtest", 1, 1, With(Match, ("percent", V.None))),
        ["virustest"] = new("virustest", 1, 1, Match),
    };

    /// <summary>Tags that belong to an extension beyond the command's or test's own.</summary>
    private static readonly Dictionary<string, string> TagExtensions = new()
    {
        ["regex"] = "regex", ["value"] = "relational", ["count"] = "relational", ["user"] = "subaddress", ["detail"] = "subaddress",
        ["copy"] = "copy", ["create"] = "mailbox", ["flags"] = "imap4flags", ["seconds"] = "vacation-seconds", ["index"] = "index",
        ["last"] = "index", ["percent"] = "spamtestplus",
    };

    private static readonly HashSet<string> Comparators = ["i;octet", "i;ascii-casemap", "i;ascii-numeric"];

    /// <summary>The first fault of the script, or null when it may run.</summary>
    public static SieveError? Validate(SieveScript script)
    {
        var required = new HashSet<string>(StringComparer.Ordinal);
        bool pastRequire = false;
        foreach (var command in script.Commands)
        {
            if (command.Name != "require") { pastRequire = true; continue; }
            if (pastRequire) return new(command.Line, "require must come before the other commands");
            if (command.Arguments is not [StringListArgument list] || command.Tests.Count > 0)
                return new(command.Line, "require takes one string list");
            foreach (var extension in list.Values)
            {
                if (!Extensions.Contains(extension.ToLowerInvariant())) return new(command.Line, $"require: unknown Sieve capability '{SieveInterpreter.Printable(extension)}'");
                required.Add(extension.ToLowerInvariant());
            }
        }
        if (required.Contains("spamtestplus")) required.Add("spamtest");
        return Block(script.Commands, required, topLevel: true);
    }

    private static SieveError? Block(IReadOnlyList<SieveCommand> commands, HashSet<string> required, bool topLevel)
    {
        string? previous = null;
        foreach (var c in commands)
        {
            if (c.Name == "require" && !topLevel) return new(c.Line, "require is allowed at the top of the script only");
            if (c.Name is "if" or "elsif" or "else")
            {
                if (c.Name != "if" && previous is not ("if" or "elsif")) return new(c.Line, $"{c.Name} without an if before it");
                if (c.Arguments.Count > 0) return new(c.Line, $"{c.Name} takes no arguments");
                if (c.Name == "else" ? c.Tests.Count != 0 : c.Tests.Count != 1) return new(c.Line, c.Name == "else" ? "else takes no test" : $"{c.Name} needs one test");
                if (c.Block == null) return new(c.Line, $"{c.Name} needs a block");
                if (c.Tests.Count == 1 && Test(c.Tests[0], required) is { } wrong) return wrong;
                if (Block(c.Block, required, topLevel: false) is { } inner) return inner;
                previous = c.Name;
                continue;
            }
            previous = c.Name;
            if (!Commands.TryGetValue(c.Name, out var shape)) return new(c.Line, $"unknown command '{c.Name}'");
            if (shape.Extension != null && !required.Contains(shape.Extension))
                return new(c.Line, $"{c.Name} needs require \"{shape.Extension}\"");
            if (c.Block != null) return new(c.Line, $"{c.Name} takes no block");
            if (c.Tests.Count > 0) return new(c.Line, $"{c.Name} takes no test");
            if (c.Name != "require" && Arguments(c.Name, c.Arguments, shape, required, c.Line) is { } bad) return bad;
            // A constant redirect address is checked now, so that a typo is refused when the script is stored.
            if (c.Name == "redirect" && c.Arguments.OfType<StringListArgument>().FirstOrDefault() is { } target
                && !(required.Contains("variables") && target.Values[0].Contains("${", StringComparison.Ordinal))
                && !SieveInterpreter.ValidAddress(target.Values[0].Trim()))
                return new(target.Line, $"redirect: invalid address '{SieveInterpreter.Printable(target.Values[0])}'");
        }
        return null;
    }

    private static SieveError? Test(SieveTest t, HashSet<string> required)
    {
        switch (t.Name)
        {
            case "not":
                if (t.Arguments.Count > 0 || t.Tests.Count != 1) return new(t.Line, "not takes one test");
                return Test(t.Tests[0], required);
            case "allof" or "anyof":
                if (t.Arguments.Count > 0 || t.Tests.Count == 0) return new(t.Line, $"{t.Name} takes a list of tests");
                foreach (var inner in t.Tests)
                    if (Test(inner, required) is { } bad) return bad;
                return null;
        }
        if (!Tests.TryGetValue(t.Name, out var shape)) return new(t.Line, $"unknown test '{t.Name}'");
        if (shape.Extension != null && !required.Contains(shape.Extension)) return new(t.Line, $"{t.Name} needs require \"{shape.Extension}\"");
        if (t.Tests.Count > 0) return new(t.Line, $"{t.Name} takes no nested test");
        return Arguments(t.Name, t.Arguments, shape, required, t.Line);
    }

    private static SieveError? Arguments(string name, IReadOnlyList<SieveArgument> arguments, Shape shape, HashSet<string> required, int line)
    {
        int positional = 0, numbers = 0, matchTypes = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < arguments.Count; i++)
        {
            switch (arguments[i])
            {
                case TagArgument tag:
                    if (!shape.Tags.TryGetValue(tag.Name, out var takes)) return new(tag.Line, $"{name}: unknown tag :{tag.Name}");
                    if (TagExtensions.TryGetValue(tag.Name, out var extension) && !required.Contains(extension)
                        && !(name == "duplicate" && tag.Name is "seconds" or "last") && !(name == "vacation" && tag.Name == "seconds" && required.Contains("vacation-seconds")))
                        return new(tag.Line, $"{name}: :{tag.Name} needs require \"{extension}\"");
                    if (!seen.Add(tag.Name)) return new(tag.Line, $"{name}: :{tag.Name} given twice");
                    if (tag.Name is "is" or "contains" or "matches" or "regex" or "value" or "count" && ++matchTypes > 1)
                        return new(tag.Line, $"{name}: more than one match type");
                    if (takes == V.None) break;
                    if (i + 1 >= arguments.Count) return new(tag.Line, $"{name}: :{tag.Name} needs a value");
                    var value = arguments[++i];
                    bool fits = takes switch
                    {
                        V.Number => value is NumberArgument,
                        V.String => value is StringListArgument { IsList: false },
                        _ => value is StringListArgument,
                    };
                    if (!fits) return new(value.Line, $"{name}: :{tag.Name} needs {(takes == V.Number ? "a number" : takes == V.String ? "a string" : "a string list")}");
                    if (tag.Name == "comparator")
                    {
                        var comparator = ((StringListArgument)value).Values[0];
                        if (!Comparators.Contains(comparator)) return new(value.Line, $"{name}: unknown comparator '{SieveInterpreter.Printable(comparator)}'");
                        if (comparator == "i;ascii-numeric" && !required.Contains("comparator-i;ascii-numeric"))
                            return new(value.Line, $"{name}: comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\"");
                    }
                    break;
                case NumberArgument when shape.Number:
                    numbers++;
                    break;
                case NumberArgument n:
                    return new(n.Line, $"{name}: unexpected number");
                default:
                    positional++;
                    break;
            }
        }
        if (shape.Number && (numbers != 1 || seen.Contains("over") == seen.Contains("under")))
            return new(line, $"{name} needs :over or :under and a number");
        if (positional < shape.Min || positional > shape.Max)
            return new(line, $"{name} takes {(shape.Min == shape.Max ? shape.Min.ToString() : $"{shape.Min} to {shape.Max}")} string argument{(shape.Max == 1 ? "" : "s")}, not {positional}");
        return null;
    }

}
