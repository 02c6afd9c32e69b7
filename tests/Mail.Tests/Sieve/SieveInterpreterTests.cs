using System.Text;
using Mail.Sieve;

namespace Mail.Tests.Sieve;

/// <summary>
/// What sieve-test cannot show: the bounds of a run, vacation's rules on whom not to answer,
/// duplicate records, and that a fault leaves nothing but the implicit keep.
/// </summary>
public sealed class SieveInterpreterTests
{
    private const string Plain = "From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nHi.\r\n";

    private static SieveResult Run(string script, string message = Plain, string from = "bob@example.com", string to = "alice@example.org",
        SieveEnvironment? environment = null)
    {
        var compiled = SieveCompiler.Compile(script, "test", out var error);
        Assert.That(error, Is.Null, "the test script compiles");
        return SieveInterpreter.Run([compiled!], SieveMessage.FromBytes(Encoding.UTF8.GetBytes(message), from, to), environment ?? new SieveEnvironment());
    }

    private static void KeptOnlyAfterFault(SieveResult r, string fault)
    {
        Assert.That(r.Error?.Message, Does.Contain(fault));
        Assert.That(r.Actions, Is.Empty, "every action is dropped");
        Assert.That(r.ImplicitKeep, Is.True, "the message is kept");
    }

    [Test]
    public void Redirects_beyond_the_limit_are_a_fault_and_the_message_is_kept()
    {
        var script = string.Concat(Enumerable.Range(1, 5).Select(i => $"redirect \"r{i}@example.net\";\n"));
        KeptOnlyAfterFault(Run(script), "more than 4 redirects");
        Assert.That(Run("redirect \"a@example.net\"; redirect \"A@example.net\";").Actions, Has.Count.EqualTo(1), "the same address once");
    }

    [Test]
    public void Actions_beyond_the_limit_and_steps_beyond_the_limit_are_faults()
    {
        var many = "require \"fileinto\";\n" + string.Concat(Enumerable.Range(1, 40).Select(i => $"fileinto \"f{i}\";\n"));
        KeptOnlyAfterFault(Run(many), "more than 32 actions");
        var tests = "require \"fileinto\";\n" + string.Concat(Enumerable.Range(1, 200).Select(i => $"if header :contains \"subject\" \"zz{i}\" {{ fileinto \"x\"; }}\n"));
        var environment = new SieveEnvironment { Limits = new SieveRunLimits { MaxSteps = 100 } };
        KeptOnlyAfterFault(Run(tests, environment: environment), "more than 100 steps");
    }

    [Test]
    public void A_regular_expression_that_takes_too_long_is_a_fault()
    {
        var message = Plain.Replace("Subject: hello", "Subject: " + new string('a', 40) + "!");
        KeptOnlyAfterFault(Run("require \"regex\"; if header :regex \"subject\" \"^(a+)+$\" { discard; }", message), "regular expression took too long");
    }

    [Test]
    public void Includes_that_loop_or_nest_too_deep_are_faults()
    {
        var self = SieveCompiler.Compile("require \"include\"; include :personal \"self\";", "self", out _)!;
        var environment = new SieveEnvironment { Include = (name, _) => name == "self" ? (self, null) : null };
        KeptOnlyAfterFault(Run("require \"include\"; include \"self\";", environment: environment), "includes itself");
        KeptOnlyAfterFault(Run("require \"include\"; include \"absent\";"), "personal script 'absent' not found");
        Assert.That(Run("require \"include\"; include :optional \"absent\"; discard;").Actions, Has.Count.EqualTo(1));
    }

    [TestCase("", "null sender")]
    [TestCase("alice@example.org", "sender is the recipient")]
    [TestCase("MAILER-DAEMON@example.com", "sender is a list or a mail system")]
    [TestCase("owner-list@example.com", "sender is a list or a mail system")]
    [TestCase("list-request@example.com", "sender is a list or a mail system")]
    public void Vacation_does_not_answer_these_senders(string sender, string why)
    {
        var r = Run("require \"vacation\"; vacation \"away\";", from: sender);
        Assert.That(r.Actions.OfType<VacationAction>().Single().Suppressed, Is.EqualTo(why));
    }

    [TestCase("Auto-Submitted: auto-replied\r\n", "auto-submitted message")]
    [TestCase("Precedence: bulk\r\n", "precedence bulk")]
    [TestCase("List-Id: <x.example.com>\r\n", "mailing list")]
    [TestCase("X-Auto-Response-Suppress: OOF\r\n", "auto-response suppressed")]
    public void Vacation_does_not_answer_automatic_or_list_mail(string header, string why)
    {
        var r = Run("require \"vacation\"; vacation \"away\";", Plain.Replace("Subject:", header + "Subject:"));
        Assert.That(r.Actions.OfType<VacationAction>().Single().Suppressed, Is.EqualTo(why));
    }

    [Test]
    public void Vacation_answers_only_mail_addressed_to_the_recipient_or_its_addresses()
    {
        var bcc = Plain.Replace("To: alice@example.org", "To: team@example.org");
        Assert.That(Run("require \"vacation\"; vacation \"away\";", bcc).Actions.OfType<VacationAction>().Single().Suppressed,
            Is.EqualTo("not addressed to the recipient"));
        var v = Run("require \"vacation\"; vacation :addresses \"team@example.org\" :subject \"Away\" \"back Monday\";", bcc)
            .Actions.OfType<VacationAction>().Single();
        Assert.That(v.Suppressed, Is.Null);
        Assert.That((v.To, v.Subject, v.InReplyTo, v.Period), Is.EqualTo(("bob@example.com", "Away", "<1@example.com>", TimeSpan.FromDays(7))));
        var auto = Run("require \"vacation\"; vacation \"away\";").Actions.OfType<VacationAction>().Single();
        Assert.That(auto.Subject, Is.EqualTo("Auto: hello"), "RFC 5230 4.3's default subject");
    }

    [Test]
    public void Duplicate_records_the_id_only_when_new_and_reports_a_seen_one()
    {
        var seen = new HashSet<string>();
        var environment = new SieveEnvironment { DuplicateSeen = seen.Contains };
        var first = Run("require \"duplicate\"; if duplicate { discard; }", environment: environment);
        Assert.That(first.Actions, Is.Empty);
        Assert.That(first.DuplicateMarks.Select(m => m.Period), Is.EqualTo(new[] { TimeSpan.FromDays(14) }));
        seen.Add(first.DuplicateMarks[0].Key);
        var second = Run("require \"duplicate\"; if duplicate { discard; }", environment: environment);
        Assert.That(second.Actions.Single(), Is.TypeOf<DiscardAction>());
        Assert.That(second.DuplicateMarks, Is.Empty, "without :last the first sighting's period stands");
        Assert.That(Run("require \"duplicate\"; if duplicate :last { discard; }", environment: environment).DuplicateMarks, Has.Count.EqualTo(1));
    }

    [Test]
    public void Editheader_protects_received_and_changes_what_later_tests_see()
    {
        var message = "Received: from a\r\n" + Plain;
        var r = Run("require [\"editheader\", \"fileinto\"]; deleteheader \"received\"; addheader \"X-A\" \"1\"; if exists \"received\" { fileinto \"kept\"; } if header :is \"x-a\" \"1\" { fileinto \"added\"; }", message);
        Assert.That(r.Actions.OfType<FileIntoAction>().Select(f => f.Mailbox), Is.EqualTo(new[] { "kept", "added" }));
        Assert.That(r.Warnings, Does.Contain("deleteheader: received is protected"));
    }

    [Test]
    public void Encoded_characters_and_variables_meet_in_one_string()
    {
        var r = Run("require [\"encoded-character\", \"variables\", \"fileinto\"]; set \"x\" \"${hex:41}\"; fileinto \"${x}-${unicode:263a}\";");
        Assert.That(r.Actions.OfType<FileIntoAction>().Single().Mailbox, Is.EqualTo("A-\u263a"));
    }

    [TestCase("-2500")]
    [TestCase("+1401")]
    [TestCase("+01x0")]
    public void A_zone_no_clock_uses_is_a_fault(string zone)
    {
        var message = Plain.Replace("Subject:", "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nSubject:");
        KeptOnlyAfterFault(Run($"require [\"date\", \"fileinto\"]; if date :zone \"{zone}\" \"date\" \"hour\" \"10\" {{ fileinto \"x\"; }}", message), "invalid :zone");
        Assert.That(Run("require [\"date\", \"fileinto\"]; if date :zone \"+1400\" \"date\" \"hour\" \"00\" { fileinto \"x\"; }", message).Actions,
            Has.Count.EqualTo(1), "+1400 is a zone clocks use");
    }
}
