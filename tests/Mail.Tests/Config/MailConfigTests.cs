using System.Collections;
using Mail.Shared.Config;
using Mail.Tests.Support;

namespace Mail.Tests.Config;

public sealed class MailConfigTests
{
    private static readonly Setting[] Settings =
    [
        Setting.Int("max_connections", 100, 1, 10000, "How many."),
        Setting.Bool("verbose", false, "Talk more."),
        Setting.Duration("idle_timeout", "5m", "Idle limit."),
        Setting.Size("quota", "1G", "Quota."),
        Setting.Path("spool", "/var/spool/x", "Spool."),
        Setting.Choice("driver", "file", "Driver.", "file", "pgsql"),
    ];

    private static MailConfig Load(string? text, IDictionary? env = null)
    {
        using var dir = new TempDir();
        string? path = null;
        if (text != null)
        {
            path = dir["test.conf"];
            File.WriteAllText(path, text);
        }
        return MailConfig.Load("testd", Settings, path, env ?? new Hashtable());
    }

    [Test]
    public void Defaults_apply_when_nothing_is_set()
    {
        var c = Load(null);
        Assert.That(c.GetInt("max_connections"), Is.EqualTo(100));
        Assert.That(c.GetBool("verbose"), Is.False);
        Assert.That(c.GetDuration("idle_timeout"), Is.EqualTo(TimeSpan.FromMinutes(5)));
        Assert.That(c.GetSize("quota"), Is.EqualTo(1L << 30));
        Assert.That(c.NonDefaults(), Is.Empty);
    }

    [Test]
    public void File_sets_values_and_environment_overrides_file()
    {
        var c = Load("# comment\nmax_connections = 20\nverbose = yes\n\nidle_timeout=30s\n",
            new Hashtable { ["TESTD_MAX_CONNECTIONS"] = "7" });
        Assert.That(c.GetInt("max_connections"), Is.EqualTo(7));
        Assert.That(c.GetBool("verbose"), Is.True);
        Assert.That(c.GetDuration("idle_timeout"), Is.EqualTo(TimeSpan.FromSeconds(30)));
    }

    [Test]
    public void Print_config_shows_only_changed_values()
    {
        var c = Load("max_connections = 20\ndriver = file\n");
        Assert.That(c.NonDefaults(), Is.EqualTo("max_connections = 20\n"));
    }

    [TestCase("max_connections = lots", "bad value 'lots' for 'max_connections'")]
    [TestCase("max_connections = 0", "must be between 1 and 10000")]
    [TestCase("verbose = maybe", "bad value 'maybe' for 'verbose'")]
    [TestCase("idle_timeout = 5 fortnights", "bad value '5 fortnights' for 'idle_timeout'")]
    [TestCase("quota = 3X", "bad value '3X' for 'quota'")]
    [TestCase("driver = ldap", "must be one of: file, pgsql")]
    [TestCase("no_such_key = 1", "unknown parameter 'no_such_key'")]
    [TestCase("just words", "expected 'key = value'")]
    public void Bad_values_stop_the_load_naming_key_value_and_place(string line, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Load("# first\n" + line + "\n"))!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.Message, Does.StartWith("testd: "));
        Assert.That(e.Message, Does.Contain("test.conf:2"));
    }

    [Test]
    public void Bad_environment_value_names_the_variable()
    {
        var e = Assert.Throws<ConfigException>(() => Load(null, new Hashtable { ["TESTD_VERBOSE"] = "perhaps" }))!;
        Assert.That(e.Message, Does.Contain("environment TESTD_VERBOSE"));
    }

    [Test]
    public void Relative_paths_are_taken_from_the_config_folder()
    {
        using var dir = new TempDir();
        var path = dir["x.conf"];
        File.WriteAllText(path, "spool = spool\n");
        var c = MailConfig.Load("testd", Settings, path, new Hashtable());
        Assert.That(c.GetPath("spool"), Is.EqualTo(System.IO.Path.Combine(dir.Path, "spool")));
    }

    [Test]
    public void Reference_documents_every_setting_with_its_default()
    {
        var text = MailConfig.Reference("testd", Settings);
        foreach (var s in Settings)
        {
            Assert.That(text, Does.Contain($"#{s.Key} = {s.Default}"));
            Assert.That(text, Does.Contain("# " + s.Doc));
        }
    }

    [Test]
    public void Authd_rejects_a_bad_value_at_start_with_a_clear_message()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["authd.conf"], "auth_failure_delay = soon\n");
        var r = Run.Program(Repo.Program("authd"), ["--config", dir["authd.conf"]]);
        Assert.That(r.ExitCode, Is.EqualTo(78));
        Assert.That(r.Stderr, Does.Contain("bad value 'soon' for 'auth_failure_delay'"));
    }

    [Test]
    public void Authd_print_config_shows_the_changed_values()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["authd.conf"], "mail_uid = 1234\nrecipient_delimiter = +\n");
        var r = Run.Program(Repo.Program("authd"), ["--config", dir["authd.conf"], "--print-config"]);
        Assert.That(r.ExitCode, Is.EqualTo(0));
        Assert.That(r.Stdout, Is.EqualTo("mail_uid = 1234\n"));
    }
}
