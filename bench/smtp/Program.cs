// bench/smtp: our mtad against a private Postfix, both driven by Postfix's
// smtp-source and both delivering by LMTP to the same lmtpd (with AuthD),
// each to its own mailbox. Each row: messages per second accepted (until
// smtp-source has its last "250") and end to end (until the last one is in
// the Maildir), the ratios, and peak memory (mtad / all Postfix processes).
// The "relay" rows send mail for another domain: both MTAs pass it by SMTP
// to their relay host, Postfix's smtp-sink, which writes each message to a
// file; end to end is until the last file is there.
// The "checks" rows take mail from a stranger on the MX with its checks on:
// a second mtad (reverse DNS, HELO, SPF, DKIM, ARC, DMARC) against the same
// Postfix given policyd-spf (Debian's postfix-policyd-spf-python), OpenDKIM
// and OpenDMARC as milters; DNS from NSD serving the test zones on
// 127.0.0.1:53 of the private network namespace bench/smtp/run starts, where
// /etc/resolv.conf names it for the add-ons. Each such row also prints ours
// with checks against ours without.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mail.Shared.Passwords;
using static Mail.Bench.BenchProcess;
using Mail.Bench;
using static Mail.Bench.BenchPostfix;

if (args.Length < 2) { Console.Error.WriteLine("usage: smtpbench BINDIR SCALE"); return 64; }
var bin = args[0];
var scale = double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
var smtpSource = FindProgram("smtp-source") ?? throw new InvalidOperationException("smtp-source (package postfix) is not installed");
var postfix = FindProgram("postfix") ?? throw new InvalidOperationException("postfix is not installed");
var postconf = FindProgram("postconf")!;
var postmap = FindProgram("postmap")!;
var dir = Directory.CreateTempSubdirectory("smtpbench-").FullName;
File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
Process? authd = null, lmtpd = null, mtad = null, sink = null, withChecks = null, nsd = null, opendkim = null, opendmarc = null, signing = null, signer = null, signer2 = null;
bool postfixStarted = false;
OnSignal(() => { if (postfixStarted) Run(postfix, "-c", Path.Combine(dir, "postfix/etc"), "stop"); });
try
{
    File.WriteAllText(Path.Combine(dir, "passwd"),
        $"ours@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\npostfix@bench.test:{PasswordScheme.Hash("pw", "SSHA256")}:5000:5001::::\n");
    File.WriteAllText(Path.Combine(dir, "domains"), "bench.test\n");
    Directory.CreateDirectory(Path.Combine(dir, "mail"));
    Run("chown", "5000:5001", Path.Combine(dir, "mail"));
    var (lmtpPort, oursPort, postfixPort, sinkPort, checkedPort, signPort) = (FreePort(), FreePort(), FreePort(), FreePort(), FreePort(), FreePort());
    var sinkDir = Path.Combine(dir, "sink");
    Directory.CreateDirectory(sinkDir);
    WriteAuthdConfig(dir, $"{dir}/mail");
    File.WriteAllText(Path.Combine(dir, "lmtpd.conf"), $"""
        listen = 127.0.0.1:{lmtpPort}
        socket =
        authd_socket = {dir}/authd.sock
        max_message_size = 10M
        max_connections = 1000
        log_file = {dir}/lmtpd.log
        """);
    File.WriteAllText(Path.Combine(dir, "mtad.conf"), $"""
        mx_listen = 127.0.0.1:{oursPort}
        submission_listen =
        submissions_listen =
        pickup_socket =
        authd_socket = {dir}/authd.sock
        spool_dir = {dir}/spool
        control_socket = {dir}/mtad.ctl
        lmtp_destination = 127.0.0.1:{lmtpPort}
        relayhost = [127.0.0.1]:{sinkPort}
        hostname = mx.bench.test
        log_file = {dir}/mtad.log
        """);
    // The same mtad with the MX's checks on: the client (127.0.0.1) is a stranger here.
    File.WriteAllText(Path.Combine(dir, "mtad-checks.conf"), File.ReadAllText(Path.Combine(dir, "mtad.conf"))
        .Replace($"mx_listen = 127.0.0.1:{oursPort}", $"mx_listen = 127.0.0.1:{checkedPort}")
        .Replace($"spool_dir = {dir}/spool", $"spool_dir = {dir}/spool-checks")
        .Replace($"control_socket = {dir}/mtad.ctl", $"control_socket = {dir}/mtad-checks.ctl")
        .Replace($"log_file = {dir}/mtad.log", $"log_file = {dir}/mtad-checks.log")
        + "\nmynetworks = 192.0.2.0/24\ndns_servers = 127.0.0.1:53\n");
    // The same mtad signing what it relays (mynetworks) with an RSA and an Ed25519 key of remote.test, smtp-source's sender domain.
    File.WriteAllText(Path.Combine(dir, "mtad-sign.conf"), File.ReadAllText(Path.Combine(dir, "mtad.conf"))
        .Replace($"mx_listen = 127.0.0.1:{oursPort}", $"mx_listen = 127.0.0.1:{signPort}")
        .Replace($"spool_dir = {dir}/spool", $"spool_dir = {dir}/spool-sign")
        .Replace($"control_socket = {dir}/mtad.ctl", $"control_socket = {dir}/mtad-sign.ctl")
        .Replace($"log_file = {dir}/mtad.log", $"log_file = {dir}/mtad-sign.log")
        + $"\ndkim_key_dir = {dir}/dkim\n");
    foreach (var (selector, algorithm) in new[] { ("r1", "rsa"), ("e1", "ed25519") })
        Run(Path.Combine(bin, "mailctl"), "dkim", "keygen", "remote.test", "--selector", selector, "--algorithm", algorithm, "--mta-config", Path.Combine(dir, "mtad-sign.conf"));
    // The sender's DKIM key (python3-dkim's dknewkey), published in its zone; one 4 KiB message signed with it.
    Run(FindProgram("dknewkey") ?? throw new InvalidOperationException("dknewkey (package python3-dkim) is not installed"), "--ktype", "rsa", Path.Combine(dir, "s1"));
    var signedMessage = SignedMessage(dir);
    nsd = StartDns(dir);
    StartPostfix(dir, postfixPort, lmtpPort, sinkPort);
    postfixStarted = true;
    File.SetUnixFileMode(sinkDir, (UnixFileMode)Convert.ToInt32("777", 8)); // smtp-sink writes as nobody
    sink = Start(FindProgram("smtp-sink") ?? throw new InvalidOperationException("smtp-sink (package postfix) is not installed"),
        [.. Environment.UserName == "root" ? new[] { "-u", "nobody" } : [], "-4", "-h", "sink.relay.test", "-d", sinkDir + "/", $"127.0.0.1:{sinkPort}", "256"]);
    authd = Start(Path.Combine(bin, "authd"), "--config", Path.Combine(dir, "authd.conf"));
    await WaitForFile(Path.Combine(dir, "authd.sock"));
    lmtpd = Start(Path.Combine(bin, "lmtpd"), "--config", Path.Combine(dir, "lmtpd.conf"));
    mtad = Start(Path.Combine(bin, "mtad"), "--config", Path.Combine(dir, "mtad.conf"));
    withChecks = Start(Path.Combine(bin, "mtad"), "--config", Path.Combine(dir, "mtad-checks.conf"));
    signing = Start(Path.Combine(bin, "mtad"), "--config", Path.Combine(dir, "mtad-sign.conf"));
    foreach (var p in new[] { lmtpPort, oursPort, postfixPort, sinkPort, checkedPort, signPort }) await WaitForPort(p);

    Console.WriteLine($"bench/smtp: smtp-source (one message per connection) into mtad and Postfix, both by LMTP into one lmtpd; median of 3 alternating rounds;");
    Console.WriteLine($"  both warmed with 1500 messages (and 500 relayed) first; spools and Maildir on {dir}; Postfix memory is the sum of its processes' peaks");
    Console.WriteLine($"{"size",-10}{"sessions",9}{"msgs",6}{"accept mtad/s",15}{"postfix/s",11}{"ratio",7}{"e2e mtad/s",12}{"postfix/s",11}{"ratio",7}   peak memory (mtad / all Postfix processes)");
    // Warm-up: JIT compilation for ours, process start-up and caches for Postfix.
    await Measure(smtpSource, oursPort, Path.Combine(dir, "mail/bench.test/ours/new"), "ours@bench.test", 4096, 4, 1500);
    await Measure(smtpSource, postfixPort, Path.Combine(dir, "mail/bench.test/postfix/new"), "postfix@bench.test", 4096, 4, 1500);
    await Measure(smtpSource, oursPort, sinkDir, "someone@relay.test", 4096, 4, 500);
    await Measure(smtpSource, postfixPort, sinkDir, "someone@relay.test", 4096, 4, 500);
    var master = int.Parse(File.ReadAllText(Path.Combine(dir, "postfix/queue/pid/master.pid")).Trim());
    foreach (var (size, sessions, count, relay) in new[] { (4096, 1, 400, false), (4096, 20, 2000, false), (102400, 1, 200, false), (102400, 20, 600, false),
                 (4096, 1, 400, true), (4096, 20, 2000, true) })
    {
        int n = Math.Max(20, (int)(count * scale));
        // Three alternating rounds, each side first in turn; the median of each.
        var runs = new Dictionary<bool, List<(double Accept, double EndToEnd)>> { [true] = [], [false] = [] };
        for (int round = 0; round < 3; round++)
            foreach (var ours in round % 2 == 0 ? new[] { true, false } : [false, true])
                runs[ours].Add(await Measure(smtpSource, ours ? oursPort : postfixPort,
                    relay ? sinkDir : Path.Combine(dir, "mail/bench.test", ours ? "ours" : "postfix", "new"),
                    relay ? "someone@relay.test" : ours ? "ours@bench.test" : "postfix@bench.test", size, sessions, n));
        (double Accept, double EndToEnd) Median(List<(double Accept, double EndToEnd)> r) =>
            (r.Select(x => x.Accept).Order().ElementAt(1), r.Select(x => x.EndToEnd).Order().ElementAt(1));
        var (o, p) = (Median(runs[true]), Median(runs[false]));
        var postfixKb = Descendants(master).Append(master).Sum(PeakKb);
        Console.WriteLine($"{size / 1024 + "K" + (relay ? " relay" : ""),-10}{sessions,9}{n,6}{o.Accept,15:0}{p.Accept,11:0}{o.Accept / p.Accept,7:0.00}{o.EndToEnd,12:0}{p.EndToEnd,11:0}{o.EndToEnd / p.EndToEnd,7:0.00}   " +
                          $"{PeakKb(mtad.Id) / 1024.0:0.0} MiB / {postfixKb / 1024.0:0.0} MiB");
    }

    // Checks on: Postfix gets its add-ons, ours is the second mtad.
    (opendkim, opendmarc) = StartMilters(dir);
    var (dkimPort, dmarcPort) = (int.Parse(File.ReadAllText(Path.Combine(dir, "opendkim.port"))), int.Parse(File.ReadAllText(Path.Combine(dir, "opendmarc.port"))));
    await WaitForPort(dkimPort);
    await WaitForPort(dmarcPort);
    var etc = Path.Combine(dir, "postfix/etc");
    Run(postconf, "-c", etc, "-e", $"smtpd_milters=inet:127.0.0.1:{dkimPort}, inet:127.0.0.1:{dmarcPort}", "milter_default_action=tempfail",
        "smtpd_recipient_restrictions=reject_unauth_destination, check_policy_service unix:private/policyd-spf", "policyd-spf_time_limit=3600s");
    Run(postfix, "-c", etc, "reload");
    await Measure(smtpSource, checkedPort, Path.Combine(dir, "mail/bench.test/ours/new"), "ours@bench.test", 4096, 4, 500);
    await Measure(smtpSource, postfixPort, Path.Combine(dir, "mail/bench.test/postfix/new"), "postfix@bench.test", 4096, 4, 500);
    CheckHeaders(Path.Combine(dir, "mail/bench.test"));
    // mtad's own CPU time per message (user + system, median of the rounds) beside the rates: unlike a
    // rate on this 2-core machine, it does not move with what else runs at the time.
    Console.WriteLine($"{"size",-10}{"sessions",9}{"msgs",6}{"checks mtad/s",15}{"postfix/s",11}{"ratio",7}{"mtad no checks/s",18}{"on/off",8}{"mtad CPU ms/msg on/off",24}   peak memory (mtad / Postfix, OpenDKIM, OpenDMARC)");
    foreach (var (size, sessions, count) in new[] { (4096, 1, 400), (4096, 20, 2000) })
    {
        int n = Math.Max(20, (int)(count * scale));
        var (o, p, plain, cpuOn, cpuOff) = await ThreeWay(withChecks, n, async which => (await Measure(smtpSource, which switch { 0 => checkedPort, 1 => postfixPort, _ => oursPort },
            Path.Combine(dir, "mail/bench.test", which == 1 ? "postfix" : "ours", "new"), which == 1 ? "postfix@bench.test" : "ours@bench.test", size, sessions, n)).Item1);
        var theirsKb = Descendants(master).Append(master).Sum(PeakKb) + PeakKb(opendkim.Id) + PeakKb(opendmarc.Id);
        Console.WriteLine($"{size / 1024 + "K checks",-10}{sessions,9}{n,6}{o,15:0}{p,11:0}{o / p,7:0.00}{plain,18:0}{o / plain,8:0.00}{$"{cpuOn:0.00} / {cpuOff:0.00}",24}   " +
                          $"{PeakKb(withChecks.Id) / 1024.0:0.0} MiB / {theirsKb / 1024.0:0.0} MiB");
    }
    // The same with a DKIM-signed message (sent by our own client: smtp-source cannot send a given message).
    foreach (var (sessions, count) in new[] { (1, 400), (20, 2000) })
    {
        int n = Math.Max(20, (int)(count * scale));
        var (o, p, plain, cpuOn, cpuOff) = await ThreeWay(withChecks, n, which => SendSigned(which switch { 0 => checkedPort, 1 => postfixPort, _ => oursPort }, signedMessage,
            Path.Combine(dir, "mail/bench.test", which == 1 ? "postfix" : "ours", "new"), which == 1 ? "postfix@bench.test" : "ours@bench.test", sessions, n));
        var theirsKb = Descendants(master).Append(master).Sum(PeakKb) + PeakKb(opendkim.Id) + PeakKb(opendmarc.Id);
        Console.WriteLine($"{"4K signed",-10}{sessions,9}{n,6}{o,15:0}{p,11:0}{o / p,7:0.00}{plain,18:0}{o / plain,8:0.00}{$"{cpuOn:0.00} / {cpuOff:0.00}",24}   " +
                          $"{PeakKb(withChecks.Id) / 1024.0:0.0} MiB / {theirsKb / 1024.0:0.0} MiB");
    }
    CheckHeaders(Path.Combine(dir, "mail/bench.test"));

    // Signing: mail from mynetworks, signed by ours with RSA-2048 and Ed25519, against Postfix with
    // OpenDKIM signing with the same two keys (and nothing else: the checks' milters and policy are off).
    Stop(opendkim!);
    Stop(opendmarc!);
    (opendkim, opendmarc) = (null, null);
    signer = StartSigner(dir, "r1", "rsa-sha256");
    signer2 = StartSigner(dir, "e1", "ed25519-sha256");
    var (rsaPort, edPort) = (int.Parse(File.ReadAllText(Path.Combine(dir, "opendkim-r1.port"))), int.Parse(File.ReadAllText(Path.Combine(dir, "opendkim-e1.port"))));
    await WaitForPort(rsaPort);
    await WaitForPort(edPort);
    Run(postconf, "-c", etc, "-e", $"smtpd_milters=inet:127.0.0.1:{rsaPort}, inet:127.0.0.1:{edPort}", "smtpd_recipient_restrictions=reject_unauth_destination");
    Run(postfix, "-c", etc, "reload");
    await Measure(smtpSource, signPort, Path.Combine(dir, "mail/bench.test/ours/new"), "ours@bench.test", 4096, 4, 500);
    await Measure(smtpSource, postfixPort, Path.Combine(dir, "mail/bench.test/postfix/new"), "postfix@bench.test", 4096, 4, 500);
    Console.WriteLine($"{"size",-10}{"sessions",9}{"msgs",6}{"signing mtad/s",15}{"postfix/s",11}{"ratio",7}{"mtad unsigned/s",18}{"on/off",8}{"mtad CPU ms/msg on/off",24}   peak memory (mtad / Postfix, two OpenDKIM)");
    foreach (var (sessions, count) in new[] { (1, 400), (20, 2000) })
    {
        int n = Math.Max(20, (int)(count * scale));
        var (o, p, plain, cpuOn, cpuOff) = await ThreeWay(signing, n, async which => (await Measure(smtpSource, which switch { 0 => signPort, 1 => postfixPort, _ => oursPort },
            Path.Combine(dir, "mail/bench.test", which == 1 ? "postfix" : "ours", "new"), which == 1 ? "postfix@bench.test" : "ours@bench.test", 4096, sessions, n)).Item1);
        var theirsKb = Descendants(master).Append(master).Sum(PeakKb) + PeakKb(signer.Id) + PeakKb(signer2.Id);
        Console.WriteLine($"{"4K signing",-10}{sessions,9}{n,6}{o,15:0}{p,11:0}{o / p,7:0.00}{plain,18:0}{o / plain,8:0.00}{$"{cpuOn:0.00} / {cpuOff:0.00}",24}   " +
                          $"{PeakKb(signing.Id) / 1024.0:0.0} MiB / {theirsKb / 1024.0:0.0} MiB");
    }
    // The last round ended with ours unsigned: one more message each, then their signatures.
    await Measure(smtpSource, signPort, Path.Combine(dir, "mail/bench.test/ours/new"), "ours@bench.test", 4096, 1, 1);
    await Measure(smtpSource, postfixPort, Path.Combine(dir, "mail/bench.test/postfix/new"), "postfix@bench.test", 4096, 1, 1);
    ShowSignatures(Path.Combine(dir, "mail/bench.test"));
}
finally
{
    if (mtad != null) Stop(mtad);
    if (withChecks != null) Stop(withChecks);
    if (signing != null) Stop(signing);
    if (sink != null) Stop(sink);
    foreach (var p in new[] { nsd, opendkim, opendmarc, signer, signer2 }) if (p != null) Stop(p);
    if (postfixStarted) Run(postfix, "-c", Path.Combine(dir, "postfix/etc"), "stop");
    if (lmtpd != null) Stop(lmtpd);
    if (authd != null) Stop(authd);
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;

// Three alternating rounds of: ours with the feature on (0), Postfix (1), ours without it (2), each
// side first in turn; the median rate of each, and ours' CPU time per message on and off.
async Task<(double On, double Postfix, double Off, double CpuOn, double CpuOff)> ThreeWay(Process on, int n, Func<int, Task<double>> run)
{
    var runs = new Dictionary<int, List<double>> { [0] = [], [1] = [], [2] = [] };
    var cpu = new Dictionary<int, List<double>> { [0] = [], [2] = [] };
    for (int round = 0; round < 3; round++)
        foreach (var which in round % 2 == 0 ? new[] { 0, 1, 2 } : [2, 1, 0])
        {
            var process = which == 0 ? on : mtad!;
            var before = CpuMs(process.Id);
            runs[which].Add(await run(which));
            if (which != 1) cpu[which].Add((CpuMs(process.Id) - before) / n);
        }
    double Median(List<double> values) => values.Order().ElementAt(1);
    return (Median(runs[0]), Median(runs[1]), Median(runs[2]), Median(cpu[0]), Median(cpu[2]));
}

void StartPostfix(string root, int port, int lmtpPort, int sinkPort)
{
    var etc = Path.Combine(root, "postfix/etc");
    Directory.CreateDirectory(etc);
    // policyd-spf writes its result as Authentication-Results in Postfix's name, for OpenDMARC to read;
    // its default skip_addresses would leave loopback unchecked.
    File.WriteAllText(Path.Combine(etc, "policyd-spf.conf"), "debugLevel = 0\nTestOnly = 1\nHELO_reject = Fail\nMail_From_reject = Fail\n" +
        "PermError_reject = False\nTempError_Defer = False\nHeader_Type = AR\nAuthserv_Id = mx.postfix.test\nskip_addresses = 192.0.2.0/24\n");
    File.WriteAllText(Path.Combine(etc, "vmailbox"), "postfix@bench.test x\n");
    Run(postmap, Path.Combine(etc, "vmailbox"));
    BenchPostfix.Start(root, port, new Dictionary<string, string>
    {
        ["relayhost"] = $"[127.0.0.1]:{sinkPort}", ["default_transport"] = "smtp",
        ["virtual_mailbox_domains"] = "bench.test", ["virtual_mailbox_maps"] = $"hash:{etc}/vmailbox",
        ["virtual_transport"] = $"lmtp:inet:127.0.0.1:{lmtpPort}",
    }, service => service == "policyd-spf", [$"policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf {etc}/policyd-spf.conf"]);
}

// NSD on 127.0.0.1:53 of the bench's network namespace: the sender's domain with SPF and
// DMARC records, the client's name and its reverse.
static Process StartDns(string root)
{
    var dns = Path.Combine(root, "dns");
    Directory.CreateDirectory(dns);
    var zones = new Dictionary<string, string>
    {
        ["remote.test"] = "@ TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\ns1._domainkey TXT " +
            string.Join(' ', File.ReadAllText(Path.Combine(root, "s1.dns")).Trim().Chunk(200).Select(c => "\"" + new string(c) + "\"")),
        ["client.test"] = "@ A 127.0.0.1",
        ["bench.test"] = "",
        ["0.0.127.in-addr.arpa"] = "1 PTR client.test.",
    };
    var conf = new StringBuilder($"server:\n  ip-address: 127.0.0.1\n  port: 53\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{dns}\"\n  pidfile: \"{dns}/nsd.pid\"\n" +
        $"  database: \"\"\n  zonelistfile: \"{dns}/zone.list\"\n  xfrdfile: \"{dns}/xfrd.state\"\n  xfrdir: \"{dns}\"\n  logfile: \"{dns}/nsd.log\"\n  do-ip6: no\n  rrl-ratelimit: 0\n" +
        "remote-control:\n  control-enable: no\n");
    foreach (var (zone, records) in zones)
    {
        File.WriteAllText(Path.Combine(dns, zone + ".zone"), $"$ORIGIN {zone}.\n$TTL 3600\n@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ NS ns.{zone}.\nns A 127.0.0.1\n{records}\n");
        conf.Append($"zone:\n  name: \"{zone}\"\n  zonefile: \"{zone}.zone\"\n");
    }
    File.WriteAllText(Path.Combine(dns, "nsd.conf"), conf.ToString());
    var nsd = Start(FindProgram("nsd") ?? throw new InvalidOperationException("nsd is not installed"), "-d", "-c", Path.Combine(dns, "nsd.conf"));
    WaitForPort(53).Wait();
    return nsd;
}

// OpenDKIM (verifying) and OpenDMARC as milters on loopback, as a Postfix MX runs them.
static (Process, Process) StartMilters(string root)
{
    var (dkimPort, dmarcPort) = (FreePort(), FreePort());
    File.WriteAllText(Path.Combine(root, "opendkim.port"), dkimPort.ToString());
    File.WriteAllText(Path.Combine(root, "opendmarc.port"), dmarcPort.ToString());
    File.WriteAllText(Path.Combine(root, "ignore-hosts"), "192.0.2.1\n");
    // Debian's OpenDKIM sends no query to the namespace's DNS server (neither Nameservers nor
    // ResolverConfiguration changes that): it gets the sender's key from TestDNSData instead, as
    // from a resolver's cache, so that it verifies the signatures as ours does.
    File.WriteAllText(Path.Combine(root, "dkim-dnsdata"), "s1._domainkey.remote.test " + File.ReadAllText(Path.Combine(root, "s1.dns")).Trim() + "\n");
    File.WriteAllText(Path.Combine(root, "opendkim.conf"), $"Mode v\nSocket inet:{dkimPort}@127.0.0.1\nPidFile {root}/opendkim.pid\n" +
        $"InternalHosts {root}/ignore-hosts\nAuthservID mx.postfix.test\nSyslog no\nTestDNSData file:{root}/dkim-dnsdata\n");
    File.WriteAllText(Path.Combine(root, "opendmarc.conf"), $"Socket inet:{dmarcPort}@127.0.0.1\nPidFile {root}/opendmarc.pid\nAuthservID mx.postfix.test\n" +
        $"TrustedAuthservIDs mx.postfix.test\nIgnoreHosts {root}/ignore-hosts\nPublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat\n" +
        "SPFIgnoreResults false\nSPFSelfValidate false\nRejectFailures true\nSyslog false\n");
    return (Start(FindProgram("opendkim") ?? throw new InvalidOperationException("opendkim is not installed"), "-f", "-x", Path.Combine(root, "opendkim.conf")),
            Start(FindProgram("opendmarc") ?? throw new InvalidOperationException("opendmarc is not installed"), "-f", "-c", Path.Combine(root, "opendmarc.conf")));
}

// OpenDKIM signing mail from loopback with one of the two keys mailctl made for remote.test,
// relaxed/relaxed, From, To and Subject oversigned: the same work ours does. Debian's OpenDKIM
// signs with one algorithm per instance (SignatureAlgorithm), so Postfix runs two, one after the other.
static Process StartSigner(string root, string selector, string algorithm)
{
    var port = FreePort();
    File.WriteAllText(Path.Combine(root, $"opendkim-{selector}.port"), port.ToString());
    var keys = Path.Combine(root, "dkim", "remote.test");
    File.WriteAllText(Path.Combine(root, $"KeyTable-{selector}"), $"{selector}._domainkey.remote.test remote.test:{selector}:{keys}/{selector}.key\n");
    File.WriteAllText(Path.Combine(root, $"SigningTable-{selector}"), $"*@remote.test {selector}._domainkey.remote.test\n");
    File.WriteAllText(Path.Combine(root, $"opendkim-{selector}.conf"), $"Mode s\nSocket inet:{port}@127.0.0.1\nPidFile {root}/opendkim-{selector}.pid\n" +
        $"KeyTable {root}/KeyTable-{selector}\nSigningTable refile:{root}/SigningTable-{selector}\nSignatureAlgorithm {algorithm}\nInternalHosts 127.0.0.0/8\n" +
        "Canonicalization relaxed/relaxed\nOversignHeaders From,To,Subject\nRequireSafeKeys false\nSyslog no\n");
    return Start(FindProgram("opendkim") ?? throw new InvalidOperationException("opendkim is not installed"), "-f", "-x", Path.Combine(root, $"opendkim-{selector}.conf"));
}

// The DKIM-Signature fields of one delivered message of each side.
static void ShowSignatures(string mail)
{
    foreach (var who in new[] { "ours", "postfix" })
    {
        var newest = new DirectoryInfo(Path.Combine(mail, who, "new")).EnumerateFiles().OrderByDescending(f => f.LastWriteTimeUtc).First();
        var header = File.ReadAllText(newest.FullName).Split("\n\n")[0];
        var signatures = Regex.Matches(header, @"^DKIM-Signature:.*(\n[ \t].*)*", RegexOptions.Multiline).Select(m => Regex.Replace(Regex.Match(m.Value, @"a=[\w-]+;.*?s=\w+", RegexOptions.Singleline).Value, @"\s+", " "));
        Console.WriteLine($"  {who}: {string.Join(" | ", signatures)}");
    }
}

// One delivered message of each side, to show that both ran their checks.
static void CheckHeaders(string mail)
{
    foreach (var who in new[] { "ours", "postfix" })
    {
        var newest = new DirectoryInfo(Path.Combine(mail, who, "new")).EnumerateFiles().OrderByDescending(f => f.LastWriteTimeUtc).First();
        var header = File.ReadAllText(newest.FullName).Split("\n\n")[0];
        var lines = header.Split('\n').Where(l => l.StartsWith("Authentication-Results:") || l.StartsWith("Received-SPF:") || l.StartsWith('\t') || l.StartsWith(' '))
            .Where(l => !l.Contains("by mx.") && !l.Contains("for <")).Take(12);
        Console.WriteLine($"  {who}: " + string.Join("\n    ", lines));
    }
}



// A 4 KiB message from sender@remote.test signed by python3-dkim's dkimsign with the key s1.
static byte[] SignedMessage(string root)
{
    var body = string.Concat(Enumerable.Range(0, 56).Select(i => $"line {i:00} of a signed message for the checks rows of the benchmark ......\r\n"));
    var message = $"From: <sender@remote.test>\r\nTo: <bench@bench.test>\r\nSubject: signed\r\nMessage-ID: <bench@remote.test>\r\n" +
                  $"Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n\r\n{body}";
    var psi = new ProcessStartInfo(FindProgram("dkimsign") ?? throw new InvalidOperationException("dkimsign (package python3-dkim) is not installed"))
        { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true };
    foreach (var a in new[] { "s1", "remote.test", Path.Combine(root, "s1.key") }) psi.ArgumentList.Add(a);
    using var p = Process.Start(psi)!;
    p.StandardInput.Write(message);
    p.StandardInput.Close();
    var signed = p.StandardOutput.ReadToEnd();
    p.WaitForExit();
    return Encoding.ASCII.GetBytes(signed);
}

// Sends `n` copies of one message, one per connection, over `sessions` parallel connections;
// returns messages per second until the last "250", after waiting for all to be delivered.
static async Task<double> SendSigned(int port, byte[] message, string maildirNew, string rcpt, int sessions, int n)
{
    var before = Count(maildirNew);
    int next = 0;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, sessions).Select(async _ =>
    {
        while (Interlocked.Increment(ref next) <= n)
        {
            using var tcp = new TcpClient { NoDelay = true }; // each line goes at once, as smtp-source's do
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            using var stream = tcp.GetStream();
            using var reader = new StreamReader(stream, Encoding.ASCII);
            async Task Step(string? command, string code)
            {
                if (command != null) await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
                string? line;
                do line = await reader.ReadLineAsync();
                while (line != null && line.Length > 3 && line[3] == '-');
                if (line == null || !line.StartsWith(code, StringComparison.Ordinal)) throw new InvalidOperationException($"port {port}: {command}: {line}");
            }
            await Step(null, "220");
            await Step("EHLO client.test", "250");
            await Step("MAIL FROM:<sender@remote.test>", "250");
            await Step($"RCPT TO:<{rcpt}>", "250");
            await Step("DATA", "354");
            await stream.WriteAsync(message);
            await Step(".", "250");
            await Step("QUIT", "221");
        }
    }));
    var rate = n / clock.Elapsed.TotalSeconds;
    var deadline = DateTime.UtcNow.AddMinutes(5);
    while (Count(maildirNew) < before + n)
    {
        if (DateTime.UtcNow > deadline) throw new TimeoutException($"port {port}: {Count(maildirNew) - before} of {n} delivered after 5 minutes");
        await Task.Delay(20);
    }
    return rate;
}

static int Count(string dir) => Directory.Exists(dir) ? Directory.EnumerateFiles(dir).Count() : 0;

// smtp-source sends `n` messages with `size` bytes of body over `sessions` parallel
// connections; returns messages per second accepted and delivered into `maildirNew`.
static async Task<(double, double)> Measure(string smtpSource, int port, string maildirNew, string rcpt, int size, int sessions, int n)
{
    var before = Count(maildirNew);
    var clock = Stopwatch.StartNew();
    var psi = new ProcessStartInfo(smtpSource) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in new[] { "-4", "-s", sessions.ToString(), "-m", n.ToString(), "-l", size.ToString(), "-f", "sender@remote.test", "-t", rcpt,
                 "-M", "client.test", "-S", "bench", $"127.0.0.1:{port}" })
        psi.ArgumentList.Add(a);
    using (var p = Process.Start(psi)!)
    {
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"smtp-source to port {port}: {await err}");
    }
    var accepted = clock.Elapsed.TotalSeconds;
    var deadline = DateTime.UtcNow.AddMinutes(5);
    while (Count(maildirNew) < before + n)
    {
        if (DateTime.UtcNow > deadline) throw new TimeoutException($"port {port}: {Count(maildirNew) - before} of {n} delivered after 5 minutes");
        await Task.Delay(20);
    }
    return (n / accepted, n / clock.Elapsed.TotalSeconds);
}
