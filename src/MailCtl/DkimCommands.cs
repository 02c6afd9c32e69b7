// mailctl dkim keygen|list: the DKIM signing keys in mtad's dkim_key_dir.
// keygen writes a new key (RSA-2048, Ed25519, or both side by side) and prints
// the TXT record to publish; list prints every key with its record. A key is
// never replaced: rotation is a new selector, published, then the old key's
// file removed once mail signed with it has arrived everywhere.
using System.CommandLine;
using Mail.MailAuth;
using MimeKit.Cryptography;

namespace Mail.MailCtl;

internal static class DkimCommands
{
    private static readonly Option<string?> MtaConfig = new("--mta-config") { Description = "mtad's configuration file (mtad.conf)", Recursive = true };

    public static Command Build()
    {
        var cmd = new Command("dkim", "DKIM signing keys: make one, list them with the DNS records to publish") { MtaConfig };

        var domain = new Argument<string>("domain") { Description = "The domain that signs (the From address's domain)" };
        var selector = new Option<string?>("--selector") { Description = "The selector (default: the year and month, with r or e for the algorithm, e.g. 202612r)" };
        var algorithm = new Option<string>("--algorithm") { Description = "rsa (2048 bits), ed25519, or both (the default: two signatures side by side)", DefaultValueFactory = _ => "both" };
        algorithm.AcceptOnlyFromAmong("rsa", "ed25519", "both");
        var keygen = new Command("keygen", "Make a signing key for a domain and print its DNS record") { domain, selector, algorithm };
        keygen.SetAction(p => Run(() =>
        {
            var dir = KeyDir(p);
            var name = p.GetValue(domain)!.Trim().TrimEnd('.').ToLowerInvariant();
            if (!System.Text.RegularExpressions.Regex.IsMatch(name, @"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$"))
            {
                Console.Error.WriteLine($"mailctl: '{name}' is not a domain name");
                return CtlContext.ExitUsage;
            }
            var which = p.GetValue(algorithm)!;
            var given = p.GetValue(selector);
            if (given != null && which == "both")
            {
                Console.Error.WriteLine("mailctl: --selector names one key: give --algorithm rsa or ed25519 with it");
                return CtlContext.ExitUsage;
            }
            if (given != null && !DkimKeyring.IsSelector(given))
            {
                Console.Error.WriteLine($"mailctl: '{given}' is not a selector (letters, digits, - and _)");
                return CtlContext.ExitUsage;
            }
            var stamp = DateTime.UtcNow.ToString("yyyyMM", System.Globalization.CultureInfo.InvariantCulture);
            foreach (var a in which == "both" ? ["rsa", "ed25519"] : new[] { which })
            {
                var key = DkimSigningKey.Generate(dir, name, given ?? stamp + a[0],
                    a == "rsa" ? DkimSignatureAlgorithm.RsaSha256 : DkimSignatureAlgorithm.Ed25519Sha256);
                Console.Error.WriteLine($"mailctl: wrote {key.Path}");
                Console.WriteLine(Zone(key));
            }
            return 0;
        }));

        var listDomain = new Argument<string?>("domain") { Description = "Only this domain's keys", Arity = ArgumentArity.ZeroOrOne };
        var list = new Command("list", "Every signing key and the TXT record it needs") { listDomain };
        list.SetAction(p => Run(() =>
        {
            var keyring = new DkimKeyring(KeyDir(p));
            var only = p.GetValue(listDomain)?.Trim().TrimEnd('.').ToLowerInvariant();
            var domains = Directory.Exists(keyring.Directory)
                ? Directory.EnumerateDirectories(keyring.Directory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList() : [];
            int n = 0;
            foreach (var d in domains.Where(d => only == null || d == only))
                foreach (var key in keyring.KeysOf(d))
                {
                    Console.WriteLine(Zone(key));
                    n++;
                }
            foreach (var error in keyring.Errors) Console.Error.WriteLine($"mailctl: unusable key: {error}");
            if (n == 0) Console.Error.WriteLine($"mailctl: no DKIM keys in {keyring.Directory}{(only != null ? " for " + only : "")}");
            return n > 0 ? 0 : 1;
        }));

        cmd.Subcommands.Add(keygen);
        cmd.Subcommands.Add(list);
        return cmd;
    }

    /// <summary>A zone-file line: the record's name and its text in strings of at most 255 characters (RFC 1035 3.3.14).</summary>
    public static string Zone(DkimSigningKey key) => $"{key.RecordName}. IN TXT {Strings(key.TxtRecord())}";

    public static string Strings(string text) => string.Join(' ', text.Chunk(255).Select(c => "\"" + new string(c) + "\""));

    private static string KeyDir(ParseResult p)
    {
        var dir = CtlContext.LoadMtaConfig(p.GetValue(MtaConfig)).GetPath("dkim_key_dir");
        return dir.Length > 0 ? dir : throw new Mail.Shared.Config.ConfigException("mailctl: mtad.conf sets no dkim_key_dir: DKIM signing is off");
    }

    private static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Mail.Shared.Config.ConfigException e) { Console.Error.WriteLine(e.Message); return CtlContext.ExitConfig; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine("mailctl: " + e.Message);
            return CtlContext.ExitCantCreate;
        }
    }
}
