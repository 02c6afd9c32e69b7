// mail-fuzz TARGET           run TARGET under AFL++ (afl-fuzz starts it; fuzz/run does that)
// mail-fuzz TARGET FILE...   run TARGET once on each FILE, as the tests do with the kept cases
// mail-fuzz queue-file --make-seed FILE   write a queue file to start from
using Mail.Fuzz;

if (args.Length == 0 || !Targets.All.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: mail-fuzz TARGET [FILE...]; targets: {string.Join(", ", Targets.All.Keys)}");
    return 2;
}
if (args is ["queue-file", "--make-seed", var seedPath])
{
    // A real queue file to start the fuzzer from (the format has a digest the fuzzer cannot forge).
    await using var w = new Mail.Queue.QueueFileWriter(seedPath, new Mail.Queue.QueueEnvelope(DateTimeOffset.UnixEpoch, "ann@example.org",
        ["bob@example.org", "carol@example.org"], new Dictionary<string, string> { ["stranger"] = "yes" }));
    w.WriteContent("Subject: seed\r\n\r\nA body.\r\n"u8);
    await w.CommitAsync();
    return 0;
}
if (args.Length > 1)
{
    foreach (var file in args[1..]) target(File.ReadAllBytes(file));
    Console.WriteLine($"{args[0]}: {args.Length - 1} inputs, no finding");
    return 0;
}
SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
{
    var input = new MemoryStream();
    stream.CopyTo(input);
    target(input.ToArray());
});
return 0;
