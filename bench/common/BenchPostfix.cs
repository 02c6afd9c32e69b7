// A private Postfix for a benchmark, in ROOT/postfix: the system's master.cf
// with smtpd on a loopback port and no other inet service, nothing chrooted;
// main.cf with the settings every bench shares and the caller's own.
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Mail.Bench;

internal static class BenchPostfix
{
    /// <summary>Starts it; the configuration folder (for `postfix -c ETC stop`).</summary>
    public static string Start(string root, int port, IReadOnlyDictionary<string, string> settings,
        Func<string, bool>? dropService = null, IEnumerable<string>? extraServices = null)
    {
        var etc = Path.Combine(root, "postfix/etc");
        Directory.CreateDirectory(etc);
        var lines = new List<string>();
        foreach (var line in File.ReadAllText("/etc/postfix/master.cf").Split('\n'))
        {
            var f = Regex.Split(line.Trim(), @"\s+");
            if (line.Length == 0 || line[0] == '#' || char.IsWhiteSpace(line[0]) || f.Length < 8) { lines.Add(line); continue; }
            if (f[0] == "smtp" && f[1] == "inet") f[0] = $"127.0.0.1:{port}";
            else if (f[1] == "inet" || dropService?.Invoke(f[0]) == true) continue;
            f[4] = "n"; // no chroot
            lines.Add(string.Join(' ', f));
        }
        lines.AddRange(extraServices ?? []);
        File.WriteAllText(Path.Combine(etc, "master.cf"), string.Join('\n', lines));
        File.WriteAllText(Path.Combine(etc, "main.cf"), "");
        var all = new Dictionary<string, string>
        {
            ["compatibility_level"] = "3.6", ["queue_directory"] = Path.Combine(root, "postfix/queue"), ["data_directory"] = Path.Combine(root, "postfix/data"),
            ["inet_interfaces"] = "127.0.0.1", ["inet_protocols"] = "ipv4", ["mydestination"] = "", ["myhostname"] = "mx.postfix.test",
            ["mynetworks"] = "127.0.0.0/8", ["maillog_file"] = Path.Combine(root, "postfix/maillog"), ["maillog_file_prefixes"] = root,
            ["smtputf8_enable"] = "no",
        };
        foreach (var (k, v) in settings) all[k] = v;
        var postconf = BenchProcess.FindProgram("postconf") ?? throw new InvalidOperationException("postfix is not installed");
        var postfix = BenchProcess.FindProgram("postfix")!;
        Run(postconf, ["-c", etc, "-e", .. all.Select(kv => $"{kv.Key}={kv.Value}")]);
        Directory.CreateDirectory(Path.Combine(root, "postfix/queue"));
        Directory.CreateDirectory(Path.Combine(root, "postfix/data"));
        foreach (var step in new[] { "set-permissions", "check", "start" }) Run(postfix, "-c", etc, step);
        return etc;
    }

    /// <summary>Runs a program to its end; throws with its error output when it fails.</summary>
    public static void Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {err.Result}");
    }
}
