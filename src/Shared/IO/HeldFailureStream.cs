// A writer in front of a file that must not stop the reading of a message when
// the disk fails: the first I/O error is held, later writes are dropped, and
// the receiver, having read the message to its end in step with the client,
// asks for the failure and answers it (a full disk is a 452, not a lost session).
namespace Mail.Shared.IO;

public sealed class HeldFailureStream(Stream inner) : WriteOnlyStream
{
    /// <summary>The first write error, if any.</summary>
    public Exception? Failure { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Failure != null) return;
        try { inner.Write(buffer); }
        catch (Exception e) when (StorageError.Is(e)) { Failure = e; }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        if (Failure != null) return;
        try { await inner.WriteAsync(buffer, ct).ConfigureAwait(false); }
        catch (Exception e) when (StorageError.Is(e)) { Failure = e; }
    }
}
