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
            var script = SieveParser.Parse(text, out var error);
            error ??= SieveValidator.Validate(script!);
            if (error == null)
            {
                Console.WriteLine($"{path}: ok");
                return 0;
            }
            Console.WriteLine($"{path}: {error}");
            return 1;
        });
        return new Command("sieve", "Sieve filters: check a script") { check };
    }
}
