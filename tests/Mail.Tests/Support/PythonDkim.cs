// python3-dkim as the independent verifier of DKIM and ARC: its key look-ups
// (a function txt(name)) answered by a test's zone server.
namespace Mail.Tests.Support;

internal static class PythonDkim
{
    /// <summary>
    /// Runs <paramref name="body"/> with the message's bytes as m and txt(name) answering from
    /// <paramref name="dns"/>; returns what it printed.
    /// </summary>
    public static string Run(ZoneServer dns, byte[] message, string body)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["m.eml"], message);
        var script = $$"""
            import sys, dkim, dns.resolver
            r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; r.port = {{dns.Port}}
            def txt(name, timeout=5):
                try: return b''.join(b''.join(a.strings) for a in r.resolve(name.decode().rstrip('.'), 'TXT'))
                except Exception: return None
            m = open(sys.argv[1], 'rb').read()

            """ + body;
        var run = Support.Run.Program("/usr/bin/python3", ["-c", script, dir["m.eml"]]);
        Assert.That(run.ExitCode, Is.Zero, run.Stderr);
        return run.Stdout.Trim();
    }

    /// <summary>dkim.verify of each signature, in order: "True" or "False" each, space-separated.</summary>
    public static string Verify(ZoneServer dns, byte[] message) => Run(dns, message, """
        d = dkim.DKIM(m)
        n = sum(1 for h in d.headers if h[0].lower() == b'dkim-signature')
        def ok(i):
            try: return d.verify(idx=i, dnsfunc=txt)
            except dkim.ValidationError: return False
        print(' '.join(str(ok(i)) for i in range(n)))
        """);

    /// <summary>dkim.arc_verify (what arcverify runs): the chain's cv.</summary>
    public static string ArcVerify(ZoneServer dns, byte[] message) => Run(dns, message, """
        cv, results, reason = dkim.arc_verify(m, dnsfunc=txt)
        print(cv.decode())
        """);
}
