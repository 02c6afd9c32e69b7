// mailctl: the administrator's command line for the suite.
using System.CommandLine;
using Mail.MailCtl;

var root = new RootCommand("Administer the mail suite: users, domains, aliases, look-ups, the queue, mail-authentication checks, DKIM keys, DNS records, Sieve scripts and the dev stack.");
root.Options.Add(CtlContext.ConfigOption);
root.Subcommands.Add(PwCommand.Build());
root.Subcommands.Add(AuthCommands.Build());
root.Subcommands.Add(LookupCommand.Build());
root.Subcommands.Add(DirectoryCommands.BuildDomain());
root.Subcommands.Add(DirectoryCommands.BuildUser());
root.Subcommands.Add(DirectoryCommands.BuildAlias());
root.Subcommands.Add(QueueCommands.Build());
root.Subcommands.Add(CheckCommands.Build());
root.Subcommands.Add(DkimCommands.Build());
root.Subcommands.Add(DnsCommands.Build());
root.Subcommands.Add(DmarcCommands.Build());
root.Subcommands.Add(SieveCommands.Build());
root.Subcommands.Add(TlsCommands.Build());
root.Subcommands.Add(SetupCommand.Build());
root.Subcommands.Add(StatusCommand.Build());
root.Subcommands.Add(DevStack.Build());
// "@domain" is a catch-all address here, not a response file.
return await root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null }).InvokeAsync();
