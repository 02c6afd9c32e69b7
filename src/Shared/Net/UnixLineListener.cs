// A line protocol on a Unix socket served without Kestrel, for a daemon whose
// clients open a connection for one or two requests (AuthD under Dovecot: every
// login process and every mail process connects anew). Kestrel hands each new
// connection to the thread pool and announces its close there too, and every
// hand-over wakes a sleeping thread; here the session starts on the thread that
// accepted it and, with the process's socket completions inline (AuthD sets
// them), runs on the socket's event thread from start to end, reading and
// writing the socket through SocketPipe (two pooled buffers). Limits, gate,
// metrics, logs and the stopping token are those of LineListener.ListenLines.
using System.Net.Sockets;
using Mail.Shared.Logging;
using NLog;

namespace Mail.Shared.Net;

public sealed class UnixLineListener
{
    private static readonly Logger Log = MailLog.For("net");
    private readonly LineListenerOptions _options;
    private readonly ConnectionGate _gate;
    private CancellationToken _stopping;
    private readonly Func<LineConnection, Task> _session;
    private readonly Socket _socket;
    private readonly string _path;
    private readonly UnixDomainSocketEndPoint _endPoint;
    private int _active;
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _accepting = Task.CompletedTask;

    private UnixLineListener(LineListenerOptions options, UnixFileMode mode, ConnectionGate gate, Func<LineConnection, Task> session)
    {
        _options = options;
        _gate = gate;
        _session = session;
        _endPoint = (UnixDomainSocketEndPoint)options.Address.EndPoint;
        _path = _endPoint.ToString()!;
        LineListener.PrepareUnixSocket(_path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _socket.Bind(options.Address.EndPoint);
            File.SetUnixFileMode(_path, mode); // before anyone can connect
            _socket.Listen(512);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
    }

    /// <summary>Binds the socket with <paramref name="mode"/>; clients wait in its backlog until <see cref="Start"/>.</summary>
    public static UnixLineListener Bind(LineListenerOptions options, UnixFileMode mode, ConnectionGate gate, Func<LineConnection, Task> session) =>
        new(options, mode, gate, session);

    /// <summary>Accepts until <paramref name="stopping"/>, which also reaches every session.</summary>
    public void Start(CancellationToken stopping)
    {
        _stopping = stopping;
        _accepting = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        using var registration = _stopping.Register(static s => ((Socket)s!).Dispose(), _socket);
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException || _stopping.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException e)
            {
                // Out of descriptors or memory: say so, and wait a moment rather than spin.
                Log.Error($"{_options.Name}: accept failed: {e.Message}");
                try { await Task.Delay(100, _stopping).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
                continue;
            }
            Interlocked.Increment(ref _active);
            // Runs on this thread up to the session's first wait for the client.
            _ = ServeAsync(client);
        }
        if (Volatile.Read(ref _active) == 0) _idle.TrySetResult();
    }

    private async Task ServeAsync(Socket client)
    {
        var pipe = new SocketPipe(client);
        try
        {
            await LineListener.ServeAsync(new LineConnection(pipe, _endPoint, null, _options.Name, _options.Limits, _stopping, false, () => _gate.Stressed),
                _options, _gate, _session).ConfigureAwait(false);
        }
        finally
        {
            pipe.Dispose();
            if (Interlocked.Decrement(ref _active) == 0 && _stopping.IsCancellationRequested) _idle.TrySetResult();
        }
    }

    /// <summary>After stopping: waits up to <paramref name="timeout"/> for the sessions to end, and removes the socket file.</summary>
    public void WaitStopped(TimeSpan timeout)
    {
        if (!_stopping.IsCancellationRequested) _socket.Dispose(); // never started
        _accepting.Wait(timeout);
        if (Volatile.Read(ref _active) == 0) _idle.TrySetResult();
        _idle.Task.Wait(timeout);
        try { File.Delete(_path); } catch (IOException) { }
    }
}
