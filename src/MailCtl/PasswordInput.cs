// Reads a password from the terminal without echo, or one line from standard
// input when it is not a terminal. Passwords never come from the command line
// of the directory commands: argv is visible to every user through ps.
using System.Text;

namespace Mail.MailCtl;

internal static class PasswordInput
{
    public static string? Read(string prompt, bool confirm)
    {
        if (Console.IsInputRedirected)
        {
            var line = Console.In.ReadLine();
            return line?.TrimEnd('\r');
        }
        var first = Prompt(prompt);
        if (!confirm) return first;
        var second = Prompt("Retype new password: ");
        if (first != second)
        {
            Console.Error.WriteLine("mailctl: passwords do not match");
            return null;
        }
        return first;
    }

    private static string Prompt(string prompt)
    {
        Console.Error.Write(prompt);
        var sb = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter) break;
            if (key.Key == ConsoleKey.Backspace) { if (sb.Length > 0) sb.Length--; continue; }
            if (!char.IsControl(key.KeyChar)) sb.Append(key.KeyChar);
        }
        Console.Error.WriteLine();
        return sb.ToString();
    }
}
