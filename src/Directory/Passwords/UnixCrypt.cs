// crypt(3) through the system's libxcrypt, the same library Dovecot calls:
// DES, MD5-crypt ($1$), SHA-crypt ($5$, $6$) and yescrypt ($y$).
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Mail.Shared.Passwords;

internal static partial class UnixCrypt
{
    private const int CryptDataSize = 32768; // sizeof(struct crypt_data) in libxcrypt

    [LibraryImport("libcrypt.so.1", EntryPoint = "crypt_rn")]
    private static unsafe partial byte* CryptRn(byte* phrase, byte* setting, void* data, int size);

    /// <summary>crypt(password, setting), or null when the setting is malformed or unsupported.</summary>
    public static unsafe string? Crypt(string password, string setting)
    {
        if (password.Contains('\0') || setting.Contains('\0') || setting.Length > 512) return null;
        var phrase = Encoding.UTF8.GetBytes(password + "\0");
        var set = Encoding.ASCII.GetBytes(setting + "\0");
        void* data = NativeMemory.AllocZeroed(CryptDataSize);
        try
        {
            fixed (byte* p = phrase)
            fixed (byte* s = set)
            {
                var result = CryptRn(p, s, data, CryptDataSize);
                if (result == null || *result == (byte)'*') return null;
                return Marshal.PtrToStringAnsi((nint)result);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(phrase);
            NativeMemory.Free(data);
        }
    }

    public static bool Verify(string password, string hash)
    {
        var computed = Crypt(password, hash);
        return computed != null && PasswordScheme.FixedEquals(computed, hash);
    }

    private const string SaltChars = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string Salt(int length)
    {
        var chars = new char[length];
        for (int i = 0; i < length; i++) chars[i] = SaltChars[RandomNumberGenerator.GetInt32(SaltChars.Length)];
        return new string(chars);
    }
}
