// A text file read whole into an immutable snapshot and read again when it
// changes. A reader sees the old snapshot or the new one, never a mix: the file
// is re-read until its size and time stamp are the same before and after.
using Mail.Shared.Logging;
using NLog;

namespace Mail.Shared.UserDirectory;

/// <param name="required">A missing required file is a fault (temporary failure); a missing optional one is empty.</param>
public sealed class WatchedFile<T>(string path, Func<string, IReadOnlyList<string>, T> parse, bool required) where T : class
{
    private static readonly Logger Log = MailLog.For("directory");
    private readonly object _lock = new();
    private (DateTime Mtime, long Size, bool Exists) _stamp = (DateTime.MinValue, -1, false);
    private T? _snapshot;

    public string Path => path;

    /// <summary>The current contents; re-read if the file changed since the last call.</summary>
    public T Current
    {
        get
        {
            var stamp = Stamp();
            var snap = Volatile.Read(ref _snapshot);
            if (snap != null && stamp == _stamp) return snap;
            lock (_lock)
            {
                if (_snapshot != null && Stamp() == _stamp) return _snapshot;
                for (int attempt = 0; attempt < 10; attempt++)
                {
                    var before = Stamp();
                    string[] lines;
                    try
                    {
                        lines = before.Exists ? File.ReadAllLines(path) : [];
                    }
                    catch (FileNotFoundException) { lines = []; }
                    catch (IOException e)
                    {
                        throw new DirectoryUnavailableException($"cannot read {path}: {e.Message}", e);
                    }
                    catch (UnauthorizedAccessException e)
                    {
                        throw new DirectoryUnavailableException($"cannot read {path}: {e.Message}", e);
                    }
                    if (Stamp() != before) continue;
                    var parsed = parse(path, lines);
                    _stamp = before;
                    Volatile.Write(ref _snapshot, parsed);
                    if (snap != null) Log.Info($"reloaded {path}");
                    return parsed;
                }
                if (_snapshot != null) return _snapshot;
                throw new DirectoryUnavailableException($"{path} keeps changing while being read");
            }
        }
    }

    private (DateTime Mtime, long Size, bool Exists) Stamp()
    {
        var fi = new FileInfo(path);
        if (fi.Exists) return (fi.LastWriteTimeUtc, fi.Length, true);
        if (required || System.IO.Directory.Exists(path))
            throw new DirectoryUnavailableException($"{path} is missing or not a regular file");
        return (DateTime.MinValue, -1, false);
    }
}
