// IDLE (RFC 2177): the folder's watch wakes the session; DONE ends it.

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private async Task<ImapResponse> IdleAsync()
    {
        using var signal = new SemaphoreSlim(0);
        using var subscription = _selected != null ? options.Hub.Subscribe(_selected.Folder.Path, () => { try { signal.Release(); } catch (ObjectDisposedException) { } }) : null;
        await conn.WriteLineAsync("+ idling");
        // What changed before the watch began is told now.
        await SendUpdatesAsync(allowExpunge: true);
        await conn.FlushAsync();
        var read = conn.ReadLineAsync().AsTask();
        while (true)
        {
            var wake = signal.WaitAsync();
            var done = await Task.WhenAny(read, wake);
            if (done == read)
            {
                var line = await read;
                if (!line.IsLine) return ImapResponse.None.AndClose();
                if (!line.Text.Equals("DONE", StringComparison.OrdinalIgnoreCase)) return ImapResponse.Bad("Expected DONE.");
                return ImapResponse.Ok("Idle completed.");
            }
            // Let a burst of changes settle into one report.
            await Task.Delay(20);
            while (signal.CurrentCount > 0) await signal.WaitAsync();
            await SendUpdatesAsync(allowExpunge: true);
            await conn.FlushAsync();
        }
    }
}
