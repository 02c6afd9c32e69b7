using Mail.Sieve;
using Mail.Tests.Support;

namespace Mail.Tests.Sieve;

/// <summary>What a parsed script may say: extensions required, commands and tests known, their arguments right.</summary>
public sealed class SieveValidatorTests
{
    private static SieveError? Check(string text)
    {
        var script = SieveParser.Parse(text, out var error);
        Assert.That(error, Is.Null, "the test scripts parse");
        return SieveValidator.Validate(script!);
    }

    [TestCase("require [\"fileinto\", \"imap4flags\", \"vacation\", \"envelope\", \"copy\", \"mailbox\"];\n" +
              "if anyof (header :contains \"subject\" \"newsletter\", address :is :domain \"from\" \"shop.example\") { fileinto :create :copy \"News\"; addflag \"\\\\Seen\"; stop; }\n" +
              "elsif size :over 5M { discard; } else { keep; }\n" +
              "if not envelope :localpart :is \"from\" \"bob\" { vacation :days 7 :addresses [\"bob@example.org\"] :subject \"Away\" \"I am away.\"; }")]
    [TestCase("require [\"relational\", \"comparator-i;ascii-numeric\", \"spamtestplus\"];\nif spamtest :percent :value \"ge\" :comparator \"i;ascii-numeric\" \"50\" { discard; }")]
    [TestCase("require [\"variables\", \"regex\"];\nif header :regex \"subject\" \"^\\\\[(.*)\\\\]\" { set \"tag\" \"${1}\"; }")]
    [TestCase("require \"copy\";\nredirect :copy \"a@example.org\";")]
    public void Valid_scripts_pass(string text) => Assert.That(Check(text), Is.Null);

    [TestCase("fileinto \"x\";", 1, "fileinto needs require \"fileinto\"")]
    [TestCase("redirect :copy \"a@example.org\";", 1, "redirect: :copy needs require \"copy\"")]
    [TestCase("require \"frobnicate\";", 1, "require: unknown Sieve capability 'frobnicate'")]
    [TestCase("keep;\nrequire \"fileinto\";", 2, "require must come before the other commands")]
    [TestCase("elsif true { keep; }", 1, "elsif without an if before it")]
    [TestCase("if true keep;", 1, "if needs a block")]
    [TestCase("if true { stop; }\nkeep;\nelse { keep; }", 3, "else without an if before it")]
    [TestCase("if frob { keep; }", 1, "unknown test 'frob'")]
    [TestCase("if size 100 { keep; }", 1, "size needs :over or :under and a number")]
    [TestCase("if header :contains \"subject\" { keep; }", 1, "header takes 2 string arguments, not 1")]
    [TestCase("if header :is :contains \"a\" \"b\" { keep; }", 1, "header: more than one match type")]
    [TestCase("if header :comparator \"i;frob\" \"a\" \"b\" { keep; }", 1, "header: unknown comparator 'i;frob'")]
    [TestCase("if header :value \"gt\" \"a\" \"b\" { keep; }", 1, "header: :value needs require \"relational\"")]
    [TestCase("require \"vacation\";\nvacation :days \"7\" \"away\";", 2, "vacation: :days needs a number")]
    [TestCase("keep \"x\";", 1, "keep takes 0 string arguments, not 1")]
    [TestCase("discard { keep; }", 1, "discard takes no block")]
    [TestCase("if not (true, false) { keep; }", 1, "not takes one test")]
    [TestCase("if true { require \"fileinto\"; }", 1, "require is allowed at the top of the script only")]
    public void Each_fault_is_named_with_its_line(string text, int line, string message) =>
        Assert.That(Check(text), Is.EqualTo(new SieveError(line, message)));

    [Test]
    public void Mailctl_sieve_check_says_ok_or_the_fault_and_its_line()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["good.sieve"], "require \"fileinto\";\nif header :contains \"subject\" \"x\" { fileinto \"Y\"; }\n");
        File.WriteAllText(dir["bad.sieve"], "require \"fileinto\";\nif header :contains \"subject\" { fileinto \"Y\"; }\n");
        var good = Run.Program(Repo.Program("mailctl"), ["sieve", "check", dir["good.sieve"]]);
        Assert.That((good.ExitCode, good.Stdout), Is.EqualTo((0, $"{dir["good.sieve"]}: ok\n")));
        var bad = Run.Program(Repo.Program("mailctl"), ["sieve", "check", dir["bad.sieve"]]);
        Assert.That((bad.ExitCode, bad.Stdout), Is.EqualTo((1, $"{dir["bad.sieve"]}: line 2: header takes 2 string arguments, not 1\n")));
    }
}
