// Netstrings (D. J. Bernstein): "<length>:<bytes>,". A pure, resumable
// parser: Incomplete asks for more bytes, Error ends the connection. The
// length is bounded before any byte of the payload is buffered.
using System.Buffers;
using System.Text;

namespace Mail.AuthD.Socketmap;

internal enum NetstringResult { Complete, Incomplete, Error }

internal static class Netstring
{
    public static NetstringResult TryRead(ref ReadOnlySequence<byte> buffer, int maxLength, out string value)
    {
        value = "";
        var reader = new SequenceReader<byte>(buffer);
        long length = 0;
        int digits = 0;
        while (true)
        {
            if (!reader.TryRead(out var b)) return digits > 7 ? NetstringResult.Error : NetstringResult.Incomplete;
            if (b == ':') break;
            if (b < '0' || b > '9' || ++digits > 7) return NetstringResult.Error;
            length = length * 10 + (b - '0');
        }
        if (digits == 0 || length > maxLength) return NetstringResult.Error;
        if (reader.Remaining < length + 1) return NetstringResult.Incomplete;
        var payload = buffer.Slice(reader.Position, length);
        reader.Advance(length);
        reader.TryRead(out var comma);
        if (comma != ',') return NetstringResult.Error;
        value = Encoding.UTF8.GetString(payload);
        buffer = buffer.Slice(reader.Position);
        return NetstringResult.Complete;
    }

    public static byte[] Encode(string value)
    {
        var payload = Encoding.UTF8.GetBytes(value);
        var head = Encoding.ASCII.GetBytes(payload.Length + ":");
        return [.. head, .. payload, (byte)','];
    }
}
