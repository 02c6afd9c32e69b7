// Gives memory back once a busy spell is over. The garbage collector runs
// when the allocations since its last run reach its budget, so after a burst
// (logins, a large listing) the garbage of the burst can stay resident for
// as long as the daemon then sits idle, which for an IMAP server holding
// thousands of IDLE connections is most of the time. When no connection has
// read anything for a few seconds after some activity, one full collection
// runs and returns the freed memory to the system, and the pages of code the
// activity ran are given back (the role Dovecot's hibernation of idle
// sessions plays). A trim of a daemon's small heap costs a few milliseconds,
// once per quiet spell.
using System.Runtime;

namespace Mail.Shared.Net;

public sealed class IdleMemoryTrim(Func<long> lastActivity)
{
    /// <summary>Quiet for this long before a trim.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromSeconds(3);

    private static long _lastActivity = Environment.TickCount64;
    private static int _running;

    /// <summary>Notes that a connection did something (LineConnection calls it on each read).</summary>
    public static void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);

    /// <summary>
    /// Runs the process's trim, driven by the connections' reads, until <paramref name="stopping"/>;
    /// a second call while one runs does nothing.
    /// </summary>
    public static void Start(CancellationToken stopping)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1) return;
        _ = Task.Run(async () =>
        {
            try { await new IdleMemoryTrim(() => Volatile.Read(ref _lastActivity)).RunAsync(stopping); }
            finally { Volatile.Write(ref _running, 0); }
        });
    }

    /// <summary>One full collection that returns the freed memory, and the clean pages of mapped files given back (WorkingSet).</summary>
    public static void Trim()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        WorkingSet.DropCleanFilePages();
    }

    private int _trims;

    /// <summary>How many trims this loop has run.</summary>
    public int Trims => Volatile.Read(ref _trims);

    /// <summary>Checks once a second; trims when it has been quiet after activity since the last trim.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        long trimmedAfter = lastActivity();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                var last = lastActivity();
                if (last == trimmedAfter || Environment.TickCount64 - last < Quiet.TotalMilliseconds) continue;
                Trim();
                trimmedAfter = last;
                Interlocked.Increment(ref _trims);
            }
        }
        catch (OperationCanceledException) { }
    }
}
