// A per-message Bloom filter of the lower-cased three-byte sequences of the
// raw message, kept in the folder index, that lets SEARCH TEXT and BODY pass
// over the messages that cannot contain an ASCII needle without reading
// them. It is made only for messages whose raw bytes are what a search sees:
// ASCII, with no base64, quoted-printable or encoded words (anything else has
// no filter and is always read). A filter can say "maybe" wrongly, never "no".
using System.Text;

namespace Mail.ImapPop.Imap;

internal static class TextFilter
{
    public const int Bytes = 512; // 4,096 bits, two per trigram

    /// <summary>The filter of a raw message, or null when its raw bytes do not tell what a search sees.</summary>
    public static byte[]? Build(ReadOnlySpan<byte> raw)
    {
        if (raw.IndexOf("=?"u8) >= 0) return null;
        var lower = new byte[raw.Length];
        if (Ascii.ToLower(raw, lower, out _) != System.Buffers.OperationStatus.Done) return null;
        var span = lower.AsSpan();
        if (span.IndexOf("base64"u8) >= 0 || span.IndexOf("quoted-printable"u8) >= 0) return null;
        var filter = new byte[Bytes];
        for (int i = 0; i + 2 < span.Length; i++) Set(filter, span[i], span[i + 1], span[i + 2]);
        return filter;
    }

    /// <summary>False only when <paramref name="needle"/> (ASCII, three bytes or more) surely is not in the message.</summary>
    public static bool MayContain(byte[] filter, string needle)
    {
        var n = Encoding.ASCII.GetBytes(needle.ToLowerInvariant());
        for (int i = 0; i + 2 < n.Length; i++)
            if (!Test(filter, n[i], n[i + 1], n[i + 2])) return false;
        return true;
    }

    public static bool Usable(string needle) => needle.Length >= 3 && Ascii.IsValid(needle);

    private static (int, int) Bits(byte a, byte b, byte c)
    {
        uint h = (uint)(a | b << 8 | c << 16) * 2654435761u;
        return ((int)(h >> 20) & 4095, (int)(h >> 8) & 4095);
    }

    private static void Set(byte[] f, byte a, byte b, byte c)
    {
        var (x, y) = Bits(a, b, c);
        f[x >> 3] |= (byte)(1 << (x & 7));
        f[y >> 3] |= (byte)(1 << (y & 7));
    }

    private static bool Test(byte[] f, byte a, byte b, byte c)
    {
        var (x, y) = Bits(a, b, c);
        return (f[x >> 3] & (1 << (x & 7))) != 0 && (f[y >> 3] & (1 << (y & 7))) != 0;
    }
}
