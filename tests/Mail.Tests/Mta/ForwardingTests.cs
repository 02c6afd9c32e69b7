using System.Text;
using System.Text.RegularExpressions;
using Mail.Mta;
using Mail.Queue;
using Mail.Shared.Config;
using Mail.Shared.Passwords;
using Mail.Tests.Support;
using Microsoft.AspNetCore.Builder;

namespace Mail.Tests.Mta;

/// <summary>
/// Mail an alias of ours sends on to another domain: from a stranger's server (127.0.0.2, allowed by
/// sender.test's SPF) to fwd@example.org, which forwards to alice@remote.test, a private Postfix.
/// At the far end SPF (python3-spf) passes for the SRS sender from our address, ARC (python3-dkim's
/// arc_verify) passes over the checks we made on arrival, and a bounce to the SRS address comes
/// back to the original sender.
/// </summary>
[NonParallelizable]
public sealed class ForwardingTests
{
    private TempDir _keys = null!;
    private ZoneServer _dns = null!;
    private AuthDServer _authd = null!;
    private LmtpServer _lmtp = null!;
    private PostfixServer _remote = null!;
    private TempDir _vmail = null!;
    private WebApplication _mta = null!;
    private int _mx;

    private string RemoteInbox => Path.Combine(_vmail.Path, "mailbox", "new");

    [OneTimeSetUp]
    public async Task Start()
    {
        _keys = new TempDir();
        var made = Run.Program(Peers.Require("dknewkey"), ["--ktype", "rsa", _keys["s1"]]);
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        _authd = await AuthDServer.StartAsync();
        await _authd.AddUserAsync("bob@example.org", PasswordScheme.Hash("bob pass", "SHA512-CRYPT"));
        File.AppendAllText(_authd.Dir["virtual"], "fwd@example.org alice@remote.test\n");
        _lmtp = await LmtpServer.StartAsync(_authd);
        _vmail = new TempDir();
        _remote = PostfixServer.StartMailbox(_vmail, "mx.remote.test", "remote.test, sender.test");
        _mx = Ports.Free();
        var conf = _authd.Dir["mtad.conf"];
        File.WriteAllText(conf, $"""
            mx_listen = 127.0.0.1:{_mx}
            submission_listen =
            submissions_listen =
            mynetworks = 192.0.2.0/24
            authd_socket = {_authd.Socket}
            spool_dir = {_authd.Dir["spool"]}
            control_socket = {_authd.Dir["run/mtad.ctl"]}
            pickup_socket =
            lmtp_destination = 127.0.0.1:{_lmtp.Port}
            hostname = mx.example.org
            relayhost = [127.0.0.1]:{_remote.Port}
            dkim_key_dir = {_authd.Dir["dkim"]}
            retry_min = 1h
            """);
        var keygen = Run.Program(Repo.Program("mailctl"), ["dkim", "keygen", "example.org", "--algorithm", "rsa", "--selector", "fwd", "--mta-config", conf]);
        Assert.That(keygen.ExitCode, Is.Zero, keygen.Stderr);
        string Txt(string record) => string.Join(' ', record.Chunk(200).Select(c => "\"" + new string(c) + "\""));
        var ours = Regex.Matches(keygen.Stdout, "\"([^\"]*)\"").Select(m => m.Groups[1].Value);
        _dns = ZoneServer.Start(
            ("sender.test", $"""
                @ TXT "v=spf1 ip4:127.0.0.2 -all"
                _dmarc TXT "v=DMARC1; p=reject"
                s1._domainkey TXT {Txt(File.ReadAllText(_keys["s1.dns"]).Trim())}
                """),
            ("example.org", $"""
                @ TXT "v=spf1 ip4:127.0.0.1 -all"
                fwd._domainkey TXT {Txt(string.Concat(ours))}
                """),
            ("0.0.127.in-addr.arpa", "2 PTR mail.sender.test."));
        File.AppendAllText(conf, $"\ndns_servers = {_dns.Address}\n");
        _mta = MtaHost.Build(MailConfig.Load("mtad", MtaSettings.Settings, conf, new System.Collections.Hashtable()));
        await _mta.StartAsync();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_mta != null) { await _mta.StopAsync(); await _mta.DisposeAsync(); }
        _remote?.Dispose();
        _vmail?.Dispose();
        if (_lmtp != null) await _lmtp.DisposeAsync();
        if (_authd != null) await _authd.DisposeAsync();
        _dns?.Dispose();
        _keys?.Dispose();
    }

    /// <summary>smtplib from <paramref name="source"/> on our MX: "sent" or the refusal.</summary>
    private string Send(string source, string sender, string rcpt, string message)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["m.eml"], message);
        var script = """
            import smtplib, sys
            port, src, sender, rcpt, path = sys.argv[1:6]
            s = smtplib.SMTP('127.0.0.1', int(port), local_hostname='mail.sender.test', source_address=(src, 0), timeout=60)
            try:
                s.sendmail(sender, [rcpt], open(path, 'rb').read()); print('sent')
            except smtplib.SMTPRecipientsRefused as e:
                code, msg = list(e.recipients.values())[0]; print(code, msg.decode())
            s.quit()
            """;
        var run = Run.Program("/usr/bin/python3", ["-c", script, _mx.ToString(), source, sender, rcpt, dir["m.eml"]]);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout.Trim();
    }

    private async Task<string> ArrivedAsync(string marker)
    {
        string? found = null;
        Assert.That(await Wait.UntilAsync(() => Directory.Exists(RemoteInbox) &&
            (found = Directory.GetFiles(RemoteInbox).Select(File.ReadAllText).FirstOrDefault(m => m.Contains(marker))) != null, TimeSpan.FromSeconds(30)),
            Is.True, $"'{marker}' did not arrive at the far end: {_authd.Log()}\n--- far end:\n{_remote.Log()}");
        return found!.Replace("\n", "\r\n");
    }

    [Test]
    public async Task A_forwarded_message_passes_SPF_by_SRS_and_ARC_at_the_far_end_and_a_bounce_comes_back()
    {
        var message = $"From: Alice <alice@sender.test>\r\nTo: fwd@example.org\r\nSubject: forwarded\r\nMessage-ID: <{Guid.NewGuid():N}@sender.test>\r\n\r\nPlease pass this on.\r\n";
        var signed = Run.Program(Peers.Require("dkimsign"), ["s1", "sender.test", _keys["s1.key"]], message);
        Assert.That(signed.ExitCode, Is.Zero, signed.Stderr);
        Assert.That(Send("127.0.0.2", "alice@sender.test", "fwd@example.org", signed.Stdout), Is.EqualTo("sent"));
        var arrived = await ArrivedAsync("Subject: forwarded");

        // The envelope sender, as the far end saw it: an SRS address of ours.
        var returnPath = Regex.Match(arrived, @"^Return-Path: <([^>]*)>", RegexOptions.Multiline).Groups[1].Value;
        Assert.That(returnPath, Does.Match(@"^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=sender\.test=alice@example\.org$"));
        var spf = Run.Program("/usr/bin/python3", ["-c", $$"""
            import dns.resolver, spf
            r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; r.port = {{_dns.Port}}
            dns.resolver.default_resolver = r
            print(spf.check2(i='127.0.0.1', s='{{returnPath}}', h='mx.example.org', timeout=10)[0])
            """]);
        Assert.That(spf.Stdout.Trim(), Is.EqualTo("pass"), spf.Stderr);

        // ARC: sealed by example.org over what our MX found on arrival; the original signature still holds.
        Assert.That(arrived, Does.Contain("ARC-Seal: i=1; a=rsa-sha256").And.Contain("d=example.org"));
        Assert.That(Regex.Match(arrived, @"ARC-Authentication-Results: i=1; mx\.example\.org;[^\r]*(\r\n\s[^\r]*)*").Value, Does.Contain("spf=pass").And.Contain("dkim=pass").And.Contain("dmarc=pass"));
        Assert.That(PythonDkim.ArcVerify(_dns, Encoding.UTF8.GetBytes(arrived)), Is.EqualTo("pass"), "python3-dkim's arc_verify");
        Assert.That(PythonDkim.Verify(_dns, Encoding.UTF8.GetBytes(arrived)), Is.EqualTo("True"));

        // A bounce to the SRS address goes back to the original sender; a forged one is refused.
        var bounce = "From: MAILER-DAEMON@mx.remote.test\r\nTo: " + returnPath + "\r\nSubject: bounce of forwarded\r\n\r\nUndeliverable.\r\n";
        Assert.That(Send("127.0.0.3", "", returnPath, bounce), Is.EqualTo("sent"));
        var back = await ArrivedAsync("Subject: bounce of forwarded");
        Assert.That(back, Does.Contain("Delivered-To: alice@sender.test"));
        var forged = "SRS0=AAAA" + returnPath[9..];
        Assert.That(Send("127.0.0.3", "", forged, bounce), Is.EqualTo($"550 5.1.1 <{forged}>: Recipient address rejected: invalid or expired SRS address"));
    }
}
