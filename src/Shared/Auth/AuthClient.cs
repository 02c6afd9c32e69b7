// The client side of AuthD's gRPC contract, over its Unix socket. One channel
// per process, kept open: HTTP/2 multiplexes every look-up over it.
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;

namespace Mail.Shared.Auth;

public sealed class AuthClient : IDisposable
{
    private readonly GrpcChannel _channel;

    public Auth.AuthClient Api { get; }
    public string SocketPath { get; }

    private AuthClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        };
        _channel = GrpcChannel.ForAddress("http://authd", new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = 1 << 20,
        });
        Api = new Auth.AuthClient(_channel);
    }

    public static AuthClient Connect(string socketPath) => new(socketPath);

    /// <summary>
    /// Runs one SASL exchange: <paramref name="respond"/> answers each challenge
    /// (null cancels). Returns the server's last message.
    /// </summary>
    public Task<SaslServerMessage> AuthenticateAsync(string mechanism, byte[]? initialResponse, ClientInfo client,
        Func<byte[], byte[]?> respond, CancellationToken ct = default) =>
        AuthenticateInteractiveAsync(mechanism, initialResponse, client, c => Task.FromResult(respond(c)), ct);

    /// <summary>As above, with a responder that waits (for a client on the network).</summary>
    public async Task<SaslServerMessage> AuthenticateInteractiveAsync(string mechanism, byte[]? initialResponse, ClientInfo client,
        Func<byte[], Task<byte[]?>> respond, CancellationToken ct = default)
    {
        using var call = Api.Authenticate(cancellationToken: ct);
        var start = new SaslStart { Mechanism = mechanism, Client = client };
        if (initialResponse != null)
        {
            start.HasInitialResponse = true;
            start.InitialResponse = Google.Protobuf.ByteString.CopyFrom(initialResponse);
        }
        await call.RequestStream.WriteAsync(new SaslClientMessage { Start = start }, ct).ConfigureAwait(false);
        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
        {
            var msg = call.ResponseStream.Current;
            if (msg.Status != SaslStatus.Continue)
            {
                await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                return msg;
            }
            var answer = await respond(msg.Challenge.ToByteArray()).ConfigureAwait(false);
            var next = answer == null
                ? new SaslClientMessage { Cancel = true }
                : new SaslClientMessage { Response = Google.Protobuf.ByteString.CopyFrom(answer) };
            await call.RequestStream.WriteAsync(next, ct).ConfigureAwait(false);
        }
        throw new RpcException(new Status(StatusCode.Unavailable, "authd closed the exchange"));
    }

    /// <summary>SASL PLAIN with an initial response (RFC 4616).</summary>
    public Task<SaslServerMessage> AuthenticatePlainAsync(string user, string password, ClientInfo client, CancellationToken ct = default)
    {
        var initial = Encoding.UTF8.GetBytes("\0" + user + "\0" + password);
        return AuthenticateAsync("PLAIN", initial, client, _ => null, ct);
    }

    public void Dispose() => _channel.Dispose();
}
