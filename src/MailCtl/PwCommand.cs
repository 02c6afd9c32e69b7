// mailctl pw: makes and checks password hashes, as `doveadm pw` does.
using System.CommandLine;
using Mail.Shared.Passwords;

namespace Mail.MailCtl;

internal static class PwCommand
{
    public static Command Build()
    {
        var scheme = new Option<string>("--scheme", "-s") { Description = "Scheme of the new hash", DefaultValueFactory = _ => PasswordScheme.DefaultScheme };
        var test = new Option<string?>("--test", "-t") { Description = "Check the password against this hash instead of making one" };
        var plain = new Option<string?>("--plaintext", "-p") { Description = "The password (as doveadm pw -p; prefer the prompt or stdin)" };
        var list = new Option<bool>("--list", "-l") { Description = "List the known schemes" };
        var cmd = new Command("pw", "Make a password hash (as doveadm pw), or test one with -t") { scheme, test, plain, list };
        cmd.SetAction(parse =>
        {
            if (parse.GetValue(list))
            {
                Console.WriteLine(string.Join(' ', PasswordScheme.Schemes));
                return 0;
            }
            var hash = parse.GetValue(test);
            var password = parse.GetValue(plain) ?? PasswordInput.Read(hash != null ? "Enter password to verify: " : "Enter new password: ", hash == null);
            if (password == null) return CtlContext.ExitUsage;
            if (hash != null)
            {
                if (PasswordScheme.Verify(password, hash))
                {
                    Console.WriteLine(hash + " (verified)");
                    return 0;
                }
                Console.Error.WriteLine("mailctl: password mismatch");
                return 1;
            }
            var name = parse.GetValue(scheme)!.ToUpperInvariant();
            if (!PasswordScheme.IsKnown(name))
            {
                Console.Error.WriteLine($"mailctl: unknown scheme '{name}'; known: {string.Join(' ', PasswordScheme.Schemes)}");
                return CtlContext.ExitUsage;
            }
            Console.WriteLine(PasswordScheme.Hash(password, name));
            return 0;
        });
        return cmd;
    }
}
