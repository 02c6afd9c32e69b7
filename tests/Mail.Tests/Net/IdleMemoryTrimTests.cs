using Mail.Shared.Net;

namespace Mail.Tests.Net;

/// <summary>After a busy spell and a few quiet seconds, the daemon collects its garbage and gives the memory back.</summary>
[NonParallelizable]
public sealed class IdleMemoryTrimTests
{
    [Test]
    public async Task A_quiet_spell_after_allocating_brings_one_trim_and_activity_holds_it_back()
    {
        long lastActivity = Environment.TickCount64;
        var trim = new IdleMemoryTrim(() => Interlocked.Read(ref lastActivity));
        using var stop = new CancellationTokenSource();
        var loop = trim.RunAsync(stop.Token);
        // A busy spell: more garbage than the threshold while connections keep reading.
        var busyUntil = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        while (DateTime.UtcNow < busyUntil)
        {
            Interlocked.Exchange(ref lastActivity, Environment.TickCount64);
            GC.KeepAlive(new byte[1 << 20]);
            await Task.Delay(10);
        }
        Assert.That(trim.Trims, Is.EqualTo(0), "no trim while connections are busy");
        // Then quiet: one trim follows.
        var deadline = DateTime.UtcNow + IdleMemoryTrim.Quiet + TimeSpan.FromSeconds(10);
        while (trim.Trims == 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.That(trim.Trims, Is.EqualTo(1), "a trim once the process was quiet");
        // Still quiet: no second trim without new activity.
        await Task.Delay(IdleMemoryTrim.Quiet + TimeSpan.FromSeconds(1.5));
        Assert.That(trim.Trims, Is.EqualTo(1), "one trim per quiet spell");
        stop.Cancel();
        await loop;
    }
}
