using System.Text.RegularExpressions;
using Mail.Sieve;
using Mail.Tests.Support;

namespace Mail.Tests.Sieve;

/// <summary>
/// Every script of the corpus (each extension, Roundcube's generated shape, includes, faults) on
/// every message of the corpus, run by our interpreter and by Pigeonhole's sieve-test: the same
/// actions, or a difference listed below with its reason.
/// </summary>
public sealed class SieveDifferentialTests
{
    private static readonly string Corpus = Path.Combine(Repo.Root, "tests", "Mail.Tests", "Sieve", "Corpus");

    /// <summary>The envelope each message arrives with: MAIL FROM, and the recipient the script runs for.</summary>
    private static readonly Dictionary<string, (string From, string To)> Envelopes = new()
    {
        ["plain"] = ("bob@example.com", "alice@example.org"),
        ["list"] = ("announce-bounces@lists.example.com", "alice@example.org"),
        ["spam"] = ("winner@lottery.example", "alice@example.org"),
        ["multipart"] = ("billing@shop.example", "alice+billing@example.org"),
        ["auto"] = ("mailer-daemon@example.org", "alice@example.org"),
        ["minimal"] = ("x@y.example", "alice@example.org"),
    };

    /// <summary>Where we differ from Pigeonhole on purpose: (script, message) and why.</summary>
    private static readonly Dictionary<(string, string), string> Differences = new()
    {
        // RFC 5228 2.7.1: "??voice*" matches two characters, then "voice", then anything. Pigeonhole
        // 0.5.19 takes it as matching any value of two or more characters (m2-Me- for "Meeting ...").
        [("matches", "plain")] = "Pigeonhole's ?-prefixed :matches",
        [("matches", "list")] = "Pigeonhole's ?-prefixed :matches",
        [("matches", "spam")] = "Pigeonhole's ?-prefixed :matches",
        [("matches", "auto")] = "Pigeonhole's ?-prefixed :matches",
    };

    public static IEnumerable<TestCaseData> Pairs() =>
        from script in Directory.GetFiles(Path.Combine(Corpus, "scripts"), "*.sieve").Order()
        from message in Directory.GetFiles(Path.Combine(Corpus, "messages"), "*.eml").Order()
        select new TestCaseData(Path.GetFileNameWithoutExtension(script), Path.GetFileNameWithoutExtension(message))
            .SetName($"{Path.GetFileNameWithoutExtension(script)} on {Path.GetFileNameWithoutExtension(message)}");

    private static TempDir? _dir;

    [OneTimeSetUp]
    public void SetUp()
    {
        Peers.Require("sieve-test");
        _dir = new TempDir();
        // sieve-test drops root for the mail user; everything it reads must be readable by that user.
        foreach (var sub in new[] { "scripts", "messages", "personal", "global" })
        {
            Directory.CreateDirectory(_dir[sub]);
            foreach (var f in Directory.GetFiles(Path.Combine(Corpus, sub))) File.Copy(f, Path.Combine(_dir[sub], Path.GetFileName(f)));
        }
        File.WriteAllText(_dir["dovecot.conf"], $"""
            mail_location = maildir:{_dir["maildir"]}
            base_dir = {_dir["run"]}
            log_path = /dev/stderr
            {(Mail.Shared.IO.Ownership.IsRoot ? "mail_uid = 65534\nmail_gid = 65534" : "")}
            plugin {'{'}
              sieve = file:{_dir["personal"]}
              sieve_global = {_dir["global"]}
              sieve_extensions = +editheader +vacation-seconds +spamtest +spamtestplus +virustest
              sieve_spamtest_status_type = text
              sieve_spamtest_status_header = X-Spam-Status: ([A-Za-z]+),
              sieve_spamtest_text_value1 = No
              sieve_spamtest_text_value10 = Yes
            {'}'}
            """);
        foreach (var p in Directory.EnumerateFileSystemEntries(_dir.Path, "*", SearchOption.AllDirectories).Append(_dir.Path))
            File.SetUnixFileMode(p, Directory.Exists(p) ? (UnixFileMode)0x1ff : (UnixFileMode)0x1b6);
    }

    [OneTimeTearDown]
    public void TearDown() => _dir?.Dispose();

    [TestCaseSource(nameof(Pairs))]
    public void Same_actions_as_pigeonhole(string script, string message)
    {
        var (from, to) = Envelopes[message];
        var scriptPath = Path.Combine(_dir!["scripts"], script + ".sieve");
        var messagePath = Path.Combine(_dir["messages"], message + ".eml");
        var theirs = Pigeonhole(scriptPath, messagePath, from, to);
        var ours = Ours(scriptPath, messagePath, from, to);
        if (Differences.TryGetValue((script, message), out var why))
        {
            Assert.That(ours, Is.Not.EqualTo(theirs), $"listed as a difference ({why}) but the same now");
            return;
        }
        Assert.That(ours, Is.EqualTo(theirs));
    }

    private static List<string> Pigeonhole(string script, string message, string from, string to)
    {
        var args = new List<string> { "-c", _dir!["dovecot.conf"], "-a", to };
        if (from.Length > 0) args.AddRange(["-f", from]);
        var run = Run.Program("sieve-test", [.. args, script, message]);
        var actions = new List<string>();
        string? last = null;
        void Flush() { if (last != null) actions.Add(last); last = null; }
        foreach (var raw in (run.Stdout + "\n" + run.Stderr).Split('\n'))
        {
            var line = raw.TrimEnd();
            Match m;
            if ((m = Regex.Match(line, @"^ \* store message in folder: (.*)$")).Success) { Flush(); last = "store " + m.Groups[1].Value; }
            else if ((m = Regex.Match(line, @"^\s+\+ add IMAP flags: (.*)$")).Success && last != null) last += " " + FlagSet(m.Groups[1].Value.Split(' '));
            else if ((m = Regex.Match(line, @"^ \* redirect message to: <(.*)>$")).Success) { Flush(); last = "redirect " + m.Groups[1].Value; }
            else if (line.StartsWith(" * reject message", StringComparison.Ordinal)) { Flush(); last = "reject"; }
            else if (line == " * discard") { Flush(); last = "discard"; }
            else if (line == " * send vacation message:") { Flush(); last = "vacation"; }
            else if (line.Contains("final result: failed; resolved with successful implicit keep", StringComparison.Ordinal))
                return ["error", "store INBOX"]; // the actions so far are dropped; the implicit keep is not printed
            else if (line.Contains("failed to compile sieve script", StringComparison.Ordinal)) { Flush(); last = "compile error"; }
        }
        Flush();
        actions.Sort(StringComparer.Ordinal);
        return actions;
    }

    private static List<string> Ours(string script, string message, string from, string to)
    {
        var compiled = SieveCompiler.Compile(File.ReadAllText(script), Path.GetFileNameWithoutExtension(script), out var error);
        if (compiled == null) return ["compile error"];
        var cache = new SieveScriptCache();
        var environment = new SieveEnvironment
        {
            Include = (name, global) => cache.Get(Path.Combine(_dir![global ? "global" : "personal"], name + ".sieve")),
            MailboxExists = _ => true,
        };
        var result = SieveInterpreter.Run([compiled], SieveMessage.Load(message, from, to), environment);
        var actions = new List<string>();
        if (result.Error != null) actions.Add("error");
        foreach (var a in result.Actions)
        {
            actions.Add(a switch
            {
                KeepAction k => "store INBOX" + Flags(k.Flags),
                FileIntoAction f => "store " + f.Mailbox + Flags(f.Flags),
                RedirectAction r => "redirect " + r.Address,
                RejectAction => "reject",
                DiscardAction => "discard",
                VacationAction => "vacation",
                _ => a.ToString(),
            });
        }
        if (result.ImplicitKeep) actions.Add("store INBOX" + Flags(result.ImplicitKeepFlags));
        actions.Sort(StringComparer.Ordinal);
        return actions;
    }

    private static string Flags(IReadOnlyList<string> flags) => flags.Count == 0 ? "" : " " + FlagSet(flags);

    private static string FlagSet(IEnumerable<string> flags) =>
        "[" + string.Join(' ', flags.Where(f => f.Length > 0).Select(f => f.ToLowerInvariant()).Distinct().Order(StringComparer.Ordinal)) + "]";
}
