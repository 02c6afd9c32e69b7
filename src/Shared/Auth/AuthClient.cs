// The client side of AuthD's gRPC contract, over its Unix socket. One channel
// per process, kept open: HTTP/2 multiplexes every look-up over it. With
// auth_backend = dovecot, logins and user look-ups go to Dovecot's auth
// service instead (DovecotAuthBackend), answered in the same terms.
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;

namespace Mail.Shared.Auth;

public sealed class AuthClient : IDisposable
{
    private readonly GrpcChannel? _channel;
    private readonly Auth.AuthClient? _api;
    private readonly DovecotAuthBackend? _dovecot;

    /// <summary>AuthD's own API (alias resolution, mechanisms): only with AuthD as the backend.</summary>
    public Auth.AuthClient Api => _api ?? throw new InvalidOperationException("this needs AuthD (auth_backend = authd)");
    public string SocketPath { get; }

    private AuthClient(DovecotAuthBackend dovecot, string describe) => (_dovecot, SocketPath) = (dovecot, describe);

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
        _api = new Auth.AuthClient(_channel);
    }

    public static AuthClient Connect(string socketPath) => new(socketPath);

    /// <summary>Dovecot's auth service in AuthD's place: its client and userdb sockets, and where a user's Maildir is when its userdb names none.</summary>
    public static AuthClient ConnectDovecot(string clientSocket, string userdbSocket, string maildirTemplate, IReadOnlyCollection<string>? domains = null) =>
        new(new DovecotAuthBackend(clientSocket, userdbSocket, maildirTemplate, domains ?? []), $"dovecot:{clientSocket},{userdbSocket}");

    /// <summary>The backend a daemon's configuration names (AuthBackendSettings).</summary>
    public static AuthClient FromConfig(Config.MailConfig config) => config.Get("auth_backend") == "dovecot"
        ? ConnectDovecot(config.GetPath("dovecot_client_socket"), config.GetPath("dovecot_userdb_socket"), config.Get("dovecot_maildir"),
            config.GetList("dovecot_domains"))
        : Connect(config.GetPath("authd_socket"));

    /// <summary>The backend a configuration names, for the start-up log line.</summary>
    public static string Describe(Config.MailConfig config) => config.Get("auth_backend") == "dovecot"
        ? $"dovecot:unix:{config.GetPath("dovecot_client_socket")},unix:{config.GetPath("dovecot_userdb_socket")}"
        : $"authd:unix:{config.GetPath("authd_socket")}";

    /// <summary>Where mail for an address goes (mtad); with Dovecot's auth, a user of dovecot_domains or not ours.</summary>
    public async Task<ResolveRecipientReply> ResolveRecipientAsync(ResolveRecipientRequest request, string delimiter, CancellationToken ct = default) =>
        _dovecot != null
            ? await _dovecot.ResolveRecipientAsync(request.Address, request.Client ?? new ClientInfo(), delimiter, ct).ConfigureAwait(false)
            : await Api.ResolveRecipientAsync(request, deadline: DateTime.UtcNow.Add(DovecotAuthBackend.Timeout), cancellationToken: ct).ConfigureAwait(false);

    /// <summary>A user's mailbox record; throws RpcException (Unavailable) when the backend cannot be asked.</summary>
    public async Task<LookupUserReply> LookupUserAsync(LookupUserRequest request, CancellationToken ct = default) =>
        _dovecot != null
            ? await _dovecot.LookupUserAsync(request.User, request.Client ?? new ClientInfo(), ct).ConfigureAwait(false)
            : await Api.LookupUserAsync(request, deadline: DateTime.UtcNow.Add(DovecotAuthBackend.Timeout), cancellationToken: ct).ConfigureAwait(false);

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
        if (_dovecot != null) return await _dovecot.AuthenticateAsync(mechanism, initialResponse, client, respond, ct).ConfigureAwait(false);
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

    public void Dispose()
    {
        _channel?.Dispose();
        _dovecot?.Dispose();
    }
}
