using Mail.Sieve;

namespace Mail.Tests.Sieve;

/// <summary>The Sieve grammar (RFC 5228 8) on scripts as Roundcube writes them and on broken ones.</summary>
public sealed class SieveParserTests
{
    // As Roundcube's managesieve plugin writes a filter set (its header comment, rules and vacation).
    private const string Roundcube = """
        require ["fileinto","vacation","imap4flags","envelope"];
        # rule:[Newsletters]
        if anyof (header :contains "subject" "newsletter", address :is "from" ["news@example.com","info@shop.example"])
        {
        	fileinto :create "Newsletters";
        	addflag "\\Seen";
        	stop;
        }
        # rule:[Big]
        if size :over 5M { fileinto "INBOX.Big"; }
        elsif not envelope :domain :is "from" "example.org" { keep; }
        # rule:[Away]
        if true
        {
        	vacation :days 7 :addresses ["bob@example.org"] :subject "Away" text:
        I am away until Monday.
        ..A line that starts with a dot.
        .
        ;
        }
        """;

    [Test]
    public void A_script_as_Roundcube_writes_it_parses_into_its_commands()
    {
        var script = SieveParser.Parse(Roundcube, out var error);
        Assert.That(error, Is.Null);
        Assert.That(script!.Commands.Select(c => c.Name), Is.EqualTo(new[] { "require", "if", "if", "elsif", "if" }));
        Assert.That(((StringListArgument)script.Commands[0].Arguments[0]).Values, Is.EqualTo(new[] { "fileinto", "vacation", "imap4flags", "envelope" }));
        var first = script.Commands[1];
        Assert.That((first.Tests.Single().Name, first.Tests.Single().Tests.Select(t => t.Name)), Is.EqualTo(("anyof", new[] { "header", "address" })));
        Assert.That(first.Block!.Select(c => c.Name), Is.EqualTo(new[] { "fileinto", "addflag", "stop" }));
        Assert.That(first.Block![0].Arguments[0], Is.EqualTo(new TagArgument("create", 5)));
        Assert.That(((StringListArgument)first.Block[1].Arguments[0]).Values.Single(), Is.EqualTo("\\Seen"));
        Assert.That(((NumberArgument)script.Commands[2].Tests[0].Arguments[1]).Value, Is.EqualTo(5L << 20));
        Assert.That(script.Commands[3].Tests[0].Name, Is.EqualTo("not"));
        var vacation = script.Commands[4].Block!.Single();
        Assert.That(((StringListArgument)vacation.Arguments[^1]).Values.Single(), Is.EqualTo("I am away until Monday.\r\n.A line that starts with a dot.\r\n"));
        Assert.That(vacation.Line, Is.EqualTo(15));
    }

    [Test]
    public void Comments_escapes_and_quantifiers_follow_the_rfc()
    {
        var script = SieveParser.Parse("/* a\r\nbracket comment */ if header :is \"x\" \"a\\\"b\\\\c\\d\" { discard; } # end\r\nkeep;", out var error);
        Assert.That(error, Is.Null);
        Assert.That(((StringListArgument)script!.Commands[0].Tests[0].Arguments[2]).Values.Single(), Is.EqualTo("a\"b\\cd"));
        Assert.That(script.Commands[1].Line, Is.EqualTo(3));
        Assert.That(((NumberArgument)SieveParser.Parse("if size :under 10k { keep; }", out _)!.Commands[0].Tests[0].Arguments[1]).Value, Is.EqualTo(10240));
    }

    [TestCase("keep", 1, "missing ; after keep")]
    [TestCase("if true {\n keep;\n", 3, "missing } at the end of the script")]
    [TestCase("keep;\n}", 2, "} without a block to close")]
    [TestCase("fileinto \"unterminated;\n", 1, "unterminated string")]
    [TestCase("keep;\n/* open", 2, "unterminated /* comment")]
    [TestCase("vacation text:\nhello\n", 1, "text: string without its closing '.' line")]
    [TestCase("if header :is \"a\" [\"b\" \"c\"] { keep; }", 1, ", or ] expected in a string list, not '\"'")]
    [TestCase("if anyof (true; false) { keep; }", 1, ", or ) expected in a test list, not ';'")]
    [TestCase("if size :over 99999999999999999999 { keep; }", 1, "number too large")]
    [TestCase("keep;\n\n 42;", 3, "a command was expected, not '4'")]
    public void A_broken_script_gets_its_error_and_line(string text, int line, string message)
    {
        Assert.That(SieveParser.Parse(text, out var error), Is.Null);
        Assert.That(error, Is.EqualTo(new SieveError(line, message)));
    }

    [Test]
    public void Limits_hold_for_nesting_size_and_strings()
    {
        var deep = string.Concat(Enumerable.Repeat("if true { ", 40)) + "keep;" + new string('}', 40);
        SieveParser.Parse(deep, out var error);
        Assert.That(error!.Message, Does.StartWith("blocks nested deeper than 32"));
        var notNot = "if " + string.Concat(Enumerable.Repeat("not ", 100)) + "true { keep; }";
        SieveParser.Parse(notNot, out error);
        Assert.That(error!.Message, Does.StartWith("tests nested deeper than"));
        SieveParser.Parse("keep;", out error, new SieveLimits { MaxScriptSize = 4 });
        Assert.That(error!.Message, Is.EqualTo("script larger than 4 characters"));
        SieveParser.Parse($"fileinto \"{new string('x', 100)}\";", out error, new SieveLimits { MaxStringLength = 50 });
        Assert.That(error!.Message, Is.EqualTo("string longer than 50 characters"));
    }

    [Test]
    public void Every_prefix_of_a_script_parses_or_fails_with_an_error_and_never_throws()
    {
        for (int i = 0; i <= Roundcube.Length; i++)
        {
            var script = SieveParser.Parse(Roundcube[..i], out var error);
            Assert.That(script == null, Is.EqualTo(error != null), $"prefix {i}");
        }
    }
}
