// mailctl auth test USER [PASS]: logs in through AuthD with SASL PLAIN, as
// `doveadm auth test` does through Dovecot's auth. mailctl auth lookup USER
// prints the user's mailbox record (`doveadm user`).
using System.CommandLine;
using Mail.Shared.Auth;

namespace Mail.MailCtl;

internal static class AuthCommands
{
    public static Command Build()
    {
        var auth = new Command("auth", "Test logins and look up users through AuthD");

        var user = new Argument<string>("user") { Description = "The login name, user@domain" };
        var pass = new Argument<string?>("password") { Description = "The password (else read from the prompt or stdin)", Arity = ArgumentArity.ZeroOrOne };
        var test = new Command("test", "Authenticate USER through AuthD (as doveadm auth test)") { user, pass };
        test.SetAction((parse, ct) => CtlContext.RunAsync(async () =>
        {
            var config = CtlContext.LoadConfig(parse);
            var name = parse.GetValue(user)!;
            var password = parse.GetValue(pass) ?? PasswordInput.Read("Password: ", confirm: false);
            if (password == null) return CtlContext.ExitUsage;
            using var client = CtlContext.ConnectAuth(config);
            var result = await client.AuthenticatePlainAsync(name, password, Local("mailctl"), ct);
            switch (result.Status)
            {
                case SaslStatus.Success:
                    Console.WriteLine($"passdb: {name} auth succeeded");
                    Console.WriteLine($"extra fields:\n  user={result.User}");
                    return 0;
                case SaslStatus.Tempfail:
                    Console.Error.WriteLine($"passdb: {name} auth failed temporarily: {result.Reason}");
                    return CtlContext.ExitTempFail;
                default:
                    Console.Error.WriteLine($"passdb: {name} auth failed");
                    return CtlContext.ExitNoPerm;
            }
        }));
        auth.Subcommands.Add(test);

        var who = new Argument<string>("user") { Description = "user@domain" };
        var lookup = new Command("lookup", "Print a user's mailbox record (as doveadm user)") { who };
        lookup.SetAction((parse, ct) => CtlContext.RunAsync(async () =>
        {
            var config = CtlContext.LoadConfig(parse);
            using var client = CtlContext.ConnectAuth(config);
            var reply = await client.Api.LookupUserAsync(new LookupUserRequest { User = parse.GetValue(who)!, Client = Local("mailctl") }, cancellationToken: ct);
            if (reply.Status == LookupStatus.Tempfail) { Console.Error.WriteLine($"mailctl: temporary failure: {reply.Reason}"); return CtlContext.ExitTempFail; }
            if (reply.Status != LookupStatus.Ok) { Console.Error.WriteLine($"userdb lookup: user {parse.GetValue(who)} doesn't exist"); return CtlContext.ExitNoPerm; }
            var u = reply.User;
            Console.WriteLine($"user      : {u.User}\nhome      : {u.Home}\nmaildir   : {u.Maildir}\nuid       : {u.Uid}\ngid       : {u.Gid}");
            Console.WriteLine($"quota     : {(u.QuotaBytes == 0 ? "none" : u.QuotaBytes + " bytes")}{(u.QuotaMessages == 0 ? "" : $", {u.QuotaMessages} messages")}\nactive    : {(u.Active ? "yes" : "no")}");
            return 0;
        }));
        auth.Subcommands.Add(lookup);
        return auth;
    }

    public static ClientInfo Local(string service) => new() { Service = service, RemoteIp = "127.0.0.1", Secured = true, SessionId = "mailctl" };
}
