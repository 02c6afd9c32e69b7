// MD5 with its state exposed (RFC 1321), for Dovecot's CRAM-MD5 scheme which
// stores the HMAC-MD5 inner and outer states rather than a digest.
using System.Buffers.Binary;

namespace Mail.Shared.Passwords;

internal struct Md5Context
{
    public uint A, B, C, D;
    public long Length;
    private byte[] _buf;
    private int _bufLen;

    public static Md5Context Create() => new()
    { A = 0x67452301, B = 0xefcdab89, C = 0x98badcfe, D = 0x10325476, _buf = new byte[64] };

    public static Md5Context FromState(uint a, uint b, uint c, uint d, long length) =>
        new() { A = a, B = b, C = c, D = d, Length = length, _buf = new byte[64] };

    public void Update(ReadOnlySpan<byte> data)
    {
        Length += data.Length;
        while (data.Length > 0)
        {
            int n = Math.Min(64 - _bufLen, data.Length);
            data[..n].CopyTo(_buf.AsSpan(_bufLen));
            _bufLen += n;
            data = data[n..];
            if (_bufLen == 64) { Block(_buf); _bufLen = 0; }
        }
    }

    public byte[] Final()
    {
        long bits = Length * 8;
        Span<byte> pad = stackalloc byte[72];
        pad.Clear();
        pad[0] = 0x80;
        int padLen = (_bufLen < 56 ? 56 : 120) - _bufLen;
        var lenBytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(lenBytes, bits);
        var keep = Length;
        Update(pad[..padLen]);
        Update(lenBytes);
        Length = keep;
        var digest = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(digest.AsSpan(0), A);
        BinaryPrimitives.WriteUInt32LittleEndian(digest.AsSpan(4), B);
        BinaryPrimitives.WriteUInt32LittleEndian(digest.AsSpan(8), C);
        BinaryPrimitives.WriteUInt32LittleEndian(digest.AsSpan(12), D);
        return digest;
    }

    private static readonly uint[] K = Enumerable.Range(0, 64)
        .Select(i => (uint)(long)Math.Floor(Math.Abs(Math.Sin(i + 1)) * 4294967296.0)).ToArray();
    private static readonly int[] S =
    [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];

    private void Block(ReadOnlySpan<byte> block)
    {
        Span<uint> m = stackalloc uint[16];
        for (int i = 0; i < 16; i++) m[i] = BinaryPrimitives.ReadUInt32LittleEndian(block[(i * 4)..]);
        uint a = A, b = B, c = C, d = D;
        for (int i = 0; i < 64; i++)
        {
            uint f; int g;
            if (i < 16) { f = (b & c) | (~b & d); g = i; }
            else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
            else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
            else { f = c ^ (b | ~d); g = 7 * i % 16; }
            var tmp = d;
            d = c;
            c = b;
            b += uint.RotateLeft(a + f + K[i] + m[g], S[i]);
            a = tmp;
        }
        A += a; B += b; C += c; D += d;
    }
}
