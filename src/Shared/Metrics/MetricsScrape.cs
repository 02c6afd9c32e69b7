// The reading side of the metrics endpoint, for `mailctl status`: one GET
// /metrics over TCP or a Unix socket, and the Prometheus text format (0.0.4)
// parsed into samples. Bounded: 4 MB of text, a few seconds.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Mail.Shared.Net;

namespace Mail.Shared.Metrics;

public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string Label(string name) => Labels.TryGetValue(name, out var v) ? v : "";
}

public static class MetricsScrape
{
    private const int MaxBytes = 4 << 20;

    /// <summary>The samples the endpoint serves now; throws IOException or SocketException when it does not answer.</summary>
    public static async Task<IReadOnlyList<Sample>> GetAsync(ListenAddress address, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var socket = new Socket(address.EndPoint.AddressFamily, SocketType.Stream,
            address.EndPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        await socket.ConnectAsync(address.EndPoint, cts.Token).ConfigureAwait(false);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync("GET /metrics HTTP/1.0\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n"u8.ToArray(), cts.Token).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await stream.ReadAsync(chunk, cts.Token).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > MaxBytes) throw new IOException("metrics answer too large");
            buffer.Write(chunk, 0, n);
        }
        var text = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        int body = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (!text.StartsWith("HTTP/1.", StringComparison.Ordinal) || body < 0 || text.Split(' ', 3)[1] != "200")
            throw new IOException("not a metrics answer: " + text.Split('\n')[0].Trim());
        return Parse(text[(body + 4)..]);
    }

    /// <summary>Samples of the Prometheus text format; comments and malformed lines skipped.</summary>
    public static List<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#') continue;
            int i = 0;
            while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
            var name = line[..i];
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (i < line.Length && line[i] == '{')
            {
                i++;
                while (i < line.Length && line[i] != '}')
                {
                    int eq = line.IndexOf('=', i);
                    if (eq < 0 || eq + 1 >= line.Length || line[eq + 1] != '"') break;
                    var key = line[i..eq].Trim(' ', ',');
                    var value = new StringBuilder();
                    int j = eq + 2;
                    for (; j < line.Length && line[j] != '"'; j++)
                    {
                        if (line[j] == '\\' && j + 1 < line.Length)
                        {
                            j++;
                            value.Append(line[j] == 'n' ? '\n' : line[j]);
                        }
                        else value.Append(line[j]);
                    }
                    labels[key] = value.ToString();
                    i = j + 1;
                    while (i < line.Length && line[i] == ',') i++;
                }
                i++;
            }
            var rest = line[Math.Min(i, line.Length)..].Trim().Split(' ');
            if (name.Length == 0 || rest.Length == 0) continue;
            var number = rest[0] switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, var t => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN };
            if (!double.IsNaN(number)) samples.Add(new Sample(name, labels, number));
        }
        return samples;
    }
}
