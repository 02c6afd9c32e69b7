// mailctl domain|user|alias add/list/remove: edits the directory that
// authd.conf names. AuthD sees each change on its next look-up.
using Mail.Shared.Smtp;
using System.CommandLine;
using Mail.Shared.Config;
using Mail.Shared.Passwords;
using Mail.Shared.UserDirectory;

namespace Mail.MailCtl;

internal static class DirectoryCommands
{
    public static Command BuildDomain()
    {
        var cmd = new Command("domain", "Add, list and remove virtual domains");
        var name = new Argument<string>("domain");
        var add = new Command("add", "Receive mail for a domain") { name };
        add.SetAction((p, ct) => Edit(p, async d => { await d.AddDomainAsync(p.GetValue(name)!, ct); Console.WriteLine($"domain {p.GetValue(name)!.ToLowerInvariant()} added"); return 0; }));
        var list = new Command("list", "List the domains");
        list.SetAction((p, ct) => Edit(p, async d => { foreach (var x in await d.ListDomainsAsync(ct)) Console.WriteLine(x.Name); return 0; }));
        var rmName = new Argument<string>("domain");
        var remove = new Command("remove", "Stop receiving mail for a domain (it must have no mailboxes)") { rmName };
        remove.SetAction((p, ct) => Edit(p, async d => Report(await d.RemoveDomainAsync(p.GetValue(rmName)!, ct), "domain", p.GetValue(rmName)!)));
        cmd.Subcommands.Add(add);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(remove);
        return cmd;
    }

    public static Command BuildUser()
    {
        var cmd = new Command("user", "Add, list and remove mailboxes");
        var address = new Argument<string>("address");
        var quota = new Option<string?>("--quota", "-q") { Description = "Quota in bytes, e.g. 1G (default: none)" };
        var scheme = new Option<string>("--scheme", "-s") { Description = "Password scheme", DefaultValueFactory = _ => PasswordScheme.DefaultScheme };
        var add = new Command("add", "Add a mailbox; the password is read from the prompt or stdin") { address, quota, scheme };
        add.SetAction((p, ct) => Edit(p, async d =>
        {
            var addr = p.GetValue(address)!;
            if (!MailAddress.TryParse(addr, out var a) || a.Local.Contains('/') || a.Local.StartsWith('.'))
                throw new DirectoryAdminException($"'{addr}' is not a valid mailbox address");
            long q = 0;
            var qText = p.GetValue(quota);
            if (qText != null && !ValueParsers.TrySize(qText, out q)) throw new DirectoryAdminException($"bad quota '{qText}'");
            var s = p.GetValue(scheme)!.ToUpperInvariant();
            if (!PasswordScheme.IsKnown(s)) throw new DirectoryAdminException($"unknown scheme '{s}'");
            var password = PasswordInput.Read("Enter new password: ", confirm: true);
            if (string.IsNullOrEmpty(password)) throw new DirectoryAdminException("no password given");
            await d.AddUserAsync(new DirectoryUser(a.ToString(), PasswordScheme.Hash(password, s), QuotaBytes: q), ct);
            Console.WriteLine($"user {a} added");
            return 0;
        }));
        var pwAddress = new Argument<string>("address");
        var passwd = new Command("passwd", "Change a mailbox's password (read from the prompt or stdin)") { pwAddress, scheme };
        passwd.SetAction((p, ct) => Edit(p, async d =>
        {
            var password = PasswordInput.Read("Enter new password: ", confirm: true);
            if (string.IsNullOrEmpty(password)) throw new DirectoryAdminException("no password given");
            var addr = MailAddress.TryParse(p.GetValue(pwAddress), out var a) ? a.ToString() : p.GetValue(pwAddress)!;
            return Report(await d.SetPasswordAsync(addr, PasswordScheme.Hash(password, p.GetValue(scheme)!), ct), "user", addr, "password changed");
        }));
        var domain = new Argument<string?>("domain") { Arity = ArgumentArity.ZeroOrOne };
        var list = new Command("list", "List mailboxes, of one domain or all") { domain };
        list.SetAction((p, ct) => Edit(p, async d =>
        {
            foreach (var u in await d.ListUsersAsync(p.GetValue(domain), ct))
                Console.WriteLine($"{u.Address}{(u.QuotaBytes > 0 ? $"  quota={u.QuotaBytes}" : "")}{(u.Active ? "" : "  (disabled)")}");
            return 0;
        }));
        var rmAddress = new Argument<string>("address");
        var remove = new Command("remove", "Remove a mailbox from the directory (its Maildir stays on disk)") { rmAddress };
        remove.SetAction((p, ct) => Edit(p, async d =>
        {
            var addr = MailAddress.TryParse(p.GetValue(rmAddress), out var a) ? a.ToString() : p.GetValue(rmAddress)!;
            return Report(await d.RemoveUserAsync(addr, ct), "user", addr);
        }));
        cmd.Subcommands.Add(add);
        cmd.Subcommands.Add(passwd);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(remove);
        return cmd;
    }

    public static Command BuildAlias()
    {
        var cmd = new Command("alias", "Add, list and remove aliases and catch-alls (@domain)");
        var address = new Argument<string>("address") { Description = "alias@domain, or @domain for a catch-all" };
        var targets = new Argument<string[]>("targets") { Arity = ArgumentArity.OneOrMore, Description = "Where its mail goes" };
        var add = new Command("add", "Add an alias") { address, targets };
        add.SetAction((p, ct) => Edit(p, async d =>
        {
            var list = p.GetValue(targets)!.SelectMany(t => t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            await d.AddAliasAsync(p.GetValue(address)!, list, ct);
            Console.WriteLine($"alias {p.GetValue(address)!.ToLowerInvariant()} added");
            return 0;
        }));
        var domain = new Argument<string?>("domain") { Arity = ArgumentArity.ZeroOrOne };
        var list = new Command("list", "List aliases, of one domain or all") { domain };
        list.SetAction((p, ct) => Edit(p, async d =>
        {
            foreach (var a in await d.ListAliasesAsync(p.GetValue(domain), ct)) Console.WriteLine(DirectoryFiles.FormatAlias(a.Address, a.Targets));
            return 0;
        }));
        var rmAddress = new Argument<string>("address");
        var remove = new Command("remove", "Remove an alias") { rmAddress };
        remove.SetAction((p, ct) => Edit(p, async d => Report(await d.RemoveAliasAsync(p.GetValue(rmAddress)!, ct), "alias", p.GetValue(rmAddress)!)));
        cmd.Subcommands.Add(add);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(remove);
        return cmd;
    }

    private static Task<int> Edit(ParseResult parse, Func<IDirectoryAdmin, Task<int>> action) =>
        CtlContext.RunAsync(() => action(CtlContext.OpenDirectory(CtlContext.LoadConfig(parse))));

    private static int Report(bool done, string kind, string name, string what = "removed")
    {
        if (done) { Console.WriteLine($"{kind} {name} {what}"); return 0; }
        Console.Error.WriteLine($"mailctl: no {kind} {name}");
        return 1;
    }
}
