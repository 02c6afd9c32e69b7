// A program's configuration: the declared settings, overridden by a
// `key = value` file and then by environment variables PROGRAM_KEY. Every
// value is checked at load; the first bad one stops the program with a message
// that names the key, the value and where it came from.
using System.Collections;
using System.Globalization;
using System.Text;

namespace Mail.Shared.Config;

public sealed class ConfigException(string message) : Exception(message);

public sealed class MailConfig
{
    private readonly Dictionary<string, Setting> _settings;
    private readonly Dictionary<string, (string Value, string Source)> _values = new(StringComparer.Ordinal);

    public string Program { get; }
    public string? FilePath { get; }
    public IReadOnlyList<Setting> Settings { get; }

    private MailConfig(string program, IReadOnlyList<Setting> settings, string? filePath)
    {
        Program = program;
        Settings = settings;
        FilePath = filePath;
        _settings = settings.ToDictionary(s => s.Key, StringComparer.Ordinal);
    }

    /// <summary>Loads the file (if any) and the environment, and checks every value.</summary>
    public static MailConfig Load(string program, IReadOnlyList<Setting> settings, string? filePath,
        IDictionary? environment = null)
    {
        var config = new MailConfig(program, settings, filePath);
        if (filePath != null)
        {
            if (!File.Exists(filePath))
                throw new ConfigException($"{program}: configuration file {filePath} does not exist");
            int lineNo = 0;
            foreach (var raw in File.ReadLines(filePath))
            {
                lineNo++;
                var line = raw.Trim();
                if (line.Length == 0 || line[0] == '#') continue;
                int eq = line.IndexOf('=');
                if (eq <= 0)
                    throw new ConfigException($"{program}: {filePath}:{lineNo}: expected 'key = value'");
                config.Set(line[..eq].Trim(), line[(eq + 1)..].Trim(), $"{filePath}:{lineNo}");
            }
        }
        environment ??= Environment.GetEnvironmentVariables();
        var prefix = program.ToUpperInvariant() + "_";
        foreach (var setting in settings)
        {
            var name = prefix + setting.Key.ToUpperInvariant();
            if (environment[name] is string value)
                config.Set(setting.Key, value, "environment " + name);
        }
        return config;
    }

    private void Set(string key, string value, string source)
    {
        if (!_settings.TryGetValue(key, out var setting))
            throw new ConfigException($"{Program}: {source}: unknown parameter '{key}'");
        var why = setting.Check(value);
        if (why != null)
            throw new ConfigException($"{Program}: {source}: bad value '{value}' for '{key}': {why}");
        _values[key] = (value, source);
    }

    public string Get(string key) =>
        _values.TryGetValue(key, out var v) ? v.Value
        : _settings.TryGetValue(key, out var s) ? s.Default
        : throw new ArgumentException($"undeclared parameter {key}");

    public long GetInt(string key) => long.Parse(Get(key), CultureInfo.InvariantCulture);
    public bool GetBool(string key) => ValueParsers.TryBool(Get(key), out var b) && b;
    public TimeSpan GetDuration(string key) => ValueParsers.TryDuration(Get(key), out var d) ? d : throw Bad(key);
    public long GetSize(string key) => ValueParsers.TrySize(Get(key), out var n) ? n : throw Bad(key);
    public string[] GetList(string key) =>
        Get(key).Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>A path setting; a relative value is taken from the configuration file's folder.</summary>
    public string GetPath(string key)
    {
        var value = Get(key);
        if (value.Length == 0 || System.IO.Path.IsPathRooted(value)) return value;
        var baseDir = FilePath != null ? System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(FilePath))! : Environment.CurrentDirectory;
        return System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDir, value));
    }

    private ConfigException Bad(string key) => new($"{Program}: bad value for '{key}'");

    /// <summary>The settings whose values differ from their defaults, as `postconf -n` prints them.</summary>
    public string NonDefaults()
    {
        var sb = new StringBuilder();
        foreach (var s in Settings)
            if (_values.TryGetValue(s.Key, out var v) && v.Value != s.Default)
                sb.Append(s.Key).Append(" = ").Append(v.Value).Append('\n');
        return sb.ToString();
    }

    /// <summary>Every setting with its documentation and default: the reference configuration file.</summary>
    public static string Reference(string program, IReadOnlyList<Setting> settings)
    {
        var sb = new StringBuilder();
        sb.Append("# ").Append(program).Append(" configuration. Every parameter is shown with its default.\n");
        sb.Append("# Environment variables ").Append(program.ToUpperInvariant()).Append("_KEY override this file.\n");
        foreach (var s in settings)
        {
            sb.Append('\n');
            foreach (var line in s.Doc.Split('\n'))
                sb.Append("# ").Append(line).Append('\n');
            sb.Append("#").Append(s.Key).Append(" = ").Append(s.Default).Append('\n');
        }
        return sb.ToString();
    }
}
