// The stored message (LF lines) as SMTP and LMTP send it: CRLF lines with
// leading dots doubled (RFC 5321 4.5.2), then the final ".".
namespace Mail.Mta;

/// <summary>LF lines in, CRLF lines out with leading dots doubled, then the final ".".</summary>
internal sealed class DotStuffingStream(Stream inner) : Mail.Shared.IO.WriteOnlyStream
{
    private bool _atLineStart = true;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _length;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            if (_atLineStart && buffer[0] == '.') Put("."u8);
            int lf = buffer.IndexOf((byte)'\n');
            if (lf < 0)
            {
                Put(buffer);
                _atLineStart = false;
                return;
            }
            Put(buffer[..lf]);
            Put("\r\n"u8);
            _atLineStart = true;
            buffer = buffer[(lf + 1)..];
        }
    }

    private void Put(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            if (_length == _buffer.Length) Drain();
            int n = Math.Min(bytes.Length, _buffer.Length - _length);
            bytes[..n].CopyTo(_buffer.AsSpan(_length));
            _length += n;
            bytes = bytes[n..];
        }
    }

    private void Drain()
    {
        inner.Write(_buffer, 0, _length);
        _length = 0;
    }

    public void Finish()
    {
        if (!_atLineStart) Put("\r\n"u8);
        Put(".\r\n"u8);
        Drain();
    }
}
