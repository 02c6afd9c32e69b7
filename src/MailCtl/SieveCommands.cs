// mailctl sieve check FILE: a Sieve script checked as ManageSieve's
// CHECKSCRIPT and lmtpd check it (the same parser and validator): "ok", or
// the first fault with its line, as Pigeonhole's sievec reports it.
using System.CommandLine;
using Mail.Sieve;

namespace Mail.MailCtl;

internal static class SieveCommands
{
    public static Command Build()
    {
        var file = new Argument<string>("file") { Description = "The script, or - for standard input" };
        var check = new Command("check", "Check a Sieve script: syntax, required extensions, commands, tests and their arguments") { file };
        check.SetAction(p =>
        {
            var path = p.GetValue(file)!;
            string text;
            try { text = path == "-" ? Console.In.ReadToEnd() : File.ReadAllText(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine("mailctl: " + e.Message);
                return CtlContext.ExitDataErr;
            }
            SieveCompiler.Compile(text, Path.GetFileNameWithoutExtension(path), out var error);
            if (error == null)
            {
                Console.WriteLine($"{path}: ok");
                return 0;
            }
            Console.WriteLine($"{path}: {error}");
            return 1;
        });
        var scriptFile = new Argument<string>("file") { Description = "The script" };
        var messageFile = new Argument<string>("message") { Description = "The message (a file as a Maildir keeps it), or - for standard input" };
        var from = new Option<string>("--envelope-from") { Description = "MAIL FROM of the message (default: the From address)" };
        var to = new Option<string>("--envelope-to") { Description = "The recipient the script runs for (default: the first To address)" };
        var test = new Command("test", "Run a Sieve script on a message and print the actions it takes, changing nothing")
            { scriptFile, messageFile, from, to };
        test.SetAction(p => Test(p.GetValue(scriptFile)!, p.GetValue(messageFile)!, p.GetValue(from), p.GetValue(to)));
        return new Command("sieve", "Sieve filters: check a script, test it on a message") { check, test };
    }

    /// <summary>
    /// As Pigeonhole's sieve-test: the script runs as lmtpd would run it for the recipient
    /// (includes from the script's folder), and each action is printed; nothing is stored or sent.
    /// </summary>
    private static int Test(string scriptPath, string messagePath, string? from, string? to)
    {
        string text;
        byte[] bytes;
        try
        {
            text = File.ReadAllText(scriptPath);
            bytes = messagePath == "-" ? ReadAll(Console.OpenStandardInput()) : File.ReadAllBytes(messagePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("mailctl: " + e.Message);
            return CtlContext.ExitDataErr;
        }
        var compiled = SieveCompiler.Compile(text, Path.GetFileNameWithoutExtension(scriptPath), out var error);
        if (compiled == null)
        {
            Console.WriteLine($"{scriptPath}: {error}");
            return 1;
        }
        var probe = SieveMessage.FromBytes(bytes, "", "");
        from ??= FirstAddress(probe, "from") ?? "";
        to ??= FirstAddress(probe, "to") ?? "";
        var message = SieveMessage.FromBytes(bytes, from, to);
        var folder = Path.GetDirectoryName(Path.GetFullPath(scriptPath))!;
        var cache = new SieveScriptCache();
        var environment = new SieveEnvironment
        {
            Hostname = Environment.MachineName,
            Domain = to.Contains('@') ? to[(to.LastIndexOf('@') + 1)..] : Environment.MachineName,
            Include = (name, _) => cache.Get(Path.Combine(folder, name + ".sieve")),
            MailboxExists = _ => true,
        };
        var result = SieveInterpreter.Run([compiled], message, environment);
        foreach (var line in result.Describe()) Console.WriteLine(line);
        return result.Error == null ? 0 : 1;
    }

    private static string? FirstAddress(SieveMessage message, string field)
    {
        var header = message.Fields(field).FirstOrDefault();
        return header != null && MimeKit.InternetAddressList.TryParse(header.Value, out var list) ? list.Mailboxes.FirstOrDefault()?.Address : null;
    }

    private static byte[] ReadAll(Stream input)
    {
        using var ms = new MemoryStream();
        input.CopyTo(ms);
        return ms.ToArray();
    }
}
