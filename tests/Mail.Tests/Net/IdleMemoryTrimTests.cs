using Mail.Shared.Net;

namespace Mail.Tests.Net;

/// <summary>After a busy spell and a few quiet seconds, the daemon collects its garbage and gives the memory back.</summary>
[NonParallelizable]
public sealed class IdleMemoryTrimTests
{
    [Test]
    public async Task A_quiet_spell_after_allocating_brings_one_trim()
    {
        using var stop = new CancellationTokenSource();
        IdleMemoryTrim.Start(stop.Token);
        var before = IdleMemoryTrim.Trims;
        // A burst: more garbage than the trim's threshold, while a connection is "active".
        for (int i = 0; i < 64; i++) { IdleMemoryTrim.Touch(); GC.KeepAlive(new byte[1 << 20]); }
        var deadline = DateTime.UtcNow + IdleMemoryTrim.Quiet + TimeSpan.FromSeconds(10);
        while (IdleMemoryTrim.Trims == before && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.That(IdleMemoryTrim.Trims, Is.GreaterThan(before), "a trim ran once the process was quiet");
        // Quiet and nothing allocated since: no further trim.
        var after = IdleMemoryTrim.Trims;
        await Task.Delay(IdleMemoryTrim.Quiet + TimeSpan.FromSeconds(2));
        Assert.That(IdleMemoryTrim.Trims, Is.EqualTo(after), "no trim without new garbage");
        stop.Cancel();
    }
}
