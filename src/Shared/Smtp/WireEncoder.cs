// A stored message as it goes on the wire: CRLF line ends, and for DATA a
// leading dot doubled (RFC 5321 4.5.2). The inverse of DataWriter. The queue
// keeps a message's CRLF lines as they came, and they pass as they are; a bare
// LF (a notice mtad wrote, a queue file of an older version) gains its CR.
// Pure and resumable: fed any split of the content, it gives the same bytes;
// the caller adds the final "." line of DATA.
namespace Mail.Shared.Smtp;

public sealed class WireEncoder(bool dotStuff)
{
    private bool _atLineStart = true;
    private bool _lastWasCr;

    /// <summary>Bytes <see cref="Encode"/> may write for <paramref name="inputLength"/> input bytes (each LF or stuffed dot doubles).</summary>
    public static int MaxOutput(int inputLength) => 2 * inputLength;

    /// <summary>Encodes <paramref name="input"/> into <paramref name="output"/> (at least MaxOutput long); returns the bytes written.</summary>
    public int Encode(ReadOnlySpan<byte> input, Span<byte> output)
    {
        int o = 0;
        while (input.Length > 0)
        {
            if (dotStuff && _atLineStart && input[0] == '.') output[o++] = (byte)'.';
            int lf = input.IndexOf((byte)'\n');
            if (lf < 0)
            {
                input.CopyTo(output[o..]);
                o += input.Length;
                _atLineStart = false;
                _lastWasCr = input[^1] == '\r';
                break;
            }
            input[..lf].CopyTo(output[o..]);
            o += lf;
            bool hasCr = lf > 0 ? input[lf - 1] == '\r' : _lastWasCr;
            if (!hasCr) output[o++] = (byte)'\r';
            output[o++] = (byte)'\n';
            _lastWasCr = false;
            _atLineStart = true;
            input = input[(lf + 1)..];
        }
        return o;
    }

    /// <summary>Ends the content: a last line without its LF gets its CRLF. Writes at most 2 bytes.</summary>
    public int Finish(Span<byte> output)
    {
        if (_atLineStart) return 0;
        int o = 0;
        if (!_lastWasCr) output[o++] = (byte)'\r';
        output[o++] = (byte)'\n';
        _atLineStart = true;
        _lastWasCr = false;
        return o;
    }
}
