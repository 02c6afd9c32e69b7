// AuthD's gRPC API. Callers are the suite's own daemons, reached through a
// socket of mode 0660, but every field is still checked as if it came from
// the network: lengths bounded, steps counted, a vanished client cleaned up.
using Google.Protobuf;
using Grpc.Core;
using Mail.AuthD.Sasl;
using Mail.Shared.Auth;
using Mail.Shared.Logging;
using Mail.Shared.UserDirectory;
using NLog;

namespace Mail.AuthD;

internal sealed class AuthService(SaslServer sasl, Accounts accounts, RecipientResolver resolver) : Auth.AuthBase
{
    private static readonly Logger Log = MailLog.For("authd");
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(2);
    private const int MaxFieldLength = 512;

    public override async Task Authenticate(IAsyncStreamReader<SaslClientMessage> requests,
        IServerStreamWriter<SaslServerMessage> responses, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        SaslMechanism? mech = null;
        string mechName = "";
        ClientInfo? client = null;
        try
        {
            if (!await NextAsync(requests, ct).ConfigureAwait(false)) return;
            var first = requests.Current;
            SaslStep step;
            if (first.StepCase != SaslClientMessage.StepOneofCase.Start || !ValidClient(first.Start.Client))
            {
                step = SaslStep.Malformed("exchange must begin with a valid start message");
            }
            else
            {
                var start = first.Start;
                client = start.Client;
                mechName = start.Mechanism.ToUpperInvariant();
                mech = sasl.Begin(mechName, client?.Secured ?? false, out step);
                if (mech != null)
                    step = await RunAsync(mech, start.HasInitialResponse ? start.InitialResponse.ToByteArray() : null,
                        requests, responses, ct).ConfigureAwait(false);
            }
            var delay = sasl.Conclude(mechName, mech, step, client);
            if (delay > TimeSpan.Zero) await Task.Delay(delay, ct).ConfigureAwait(false);
            await responses.WriteAsync(ToMessage(step), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException || e is RpcException { StatusCode: StatusCode.Cancelled })
        {
            Log.Info($"{MailLog.Safe(client?.SessionId, 40)}: auth: service={MailLog.Safe(client?.Service, 20)}, " +
                     $"rip={MailLog.Safe(client?.RemoteIp, 64)}, mech={MailLog.Safe(mechName, 32)}, " +
                     $"user=<{MailLog.Safe(mech?.AttemptedUser, 100)}>, result=aborted (client went away)");
        }
    }

    private static async Task<SaslStep> RunAsync(SaslMechanism mech, byte[]? response,
        IAsyncStreamReader<SaslClientMessage> requests, IServerStreamWriter<SaslServerMessage> responses, CancellationToken ct)
    {
        for (int steps = 0; ; steps++)
        {
            var step = await mech.StepAsync(response, ct).ConfigureAwait(false);
            if (step.Status != SaslStatus.Continue) return step;
            if (steps >= SaslServer.MaxSteps) return SaslStep.Malformed("too many SASL steps");
            await responses.WriteAsync(ToMessage(step), ct).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(StepTimeout);
            if (!await NextAsync(requests, timeout.Token).ConfigureAwait(false))
                throw new OperationCanceledException();
            var msg = requests.Current;
            switch (msg.StepCase)
            {
                case SaslClientMessage.StepOneofCase.Cancel:
                    return new SaslStep(SaslStatus.Aborted, Reason: "cancelled by client");
                case SaslClientMessage.StepOneofCase.Response:
                    response = msg.Response.ToByteArray();
                    break;
                default:
                    return SaslStep.Malformed("expected a response");
            }
        }
    }

    private static Task<bool> NextAsync(IAsyncStreamReader<SaslClientMessage> requests, CancellationToken ct) =>
        requests.MoveNext(ct);

    private static bool ValidClient(ClientInfo? c) =>
        c == null || (c.Service.Length <= 32 && c.RemoteIp.Length <= 64 && c.LocalIp.Length <= 64 && c.SessionId.Length <= 64);

    private static SaslServerMessage ToMessage(SaslStep step) => new()
    {
        Status = step.Status,
        Challenge = step.Challenge == null ? ByteString.Empty : ByteString.CopyFrom(step.Challenge),
        User = step.User ?? "",
        FinalData = step.FinalData == null ? ByteString.Empty : ByteString.CopyFrom(step.FinalData),
        Reason = step.Status is SaslStatus.Failure ? "authentication failed" : step.Reason ?? "",
    };

    public override Task<MechanismsReply> Mechanisms(MechanismsRequest request, ServerCallContext context)
    {
        var reply = new MechanismsReply();
        reply.Mechanisms.AddRange(sasl.Offered(request.Client?.Secured ?? false));
        return Task.FromResult(reply);
    }

    public override async Task<LookupUserReply> LookupUser(LookupUserRequest request, ServerCallContext context)
    {
        if (request.User.Length > MaxFieldLength || !ValidClient(request.Client))
            return new LookupUserReply { Status = LookupStatus.NotFound, Reason = "malformed request" };
        try
        {
            var user = await accounts.FindUserAsync(request.User, context.CancellationToken).ConfigureAwait(false);
            if (user == null) return new LookupUserReply { Status = LookupStatus.NotFound, Reason = "no such user" };
            var mailUser = accounts.ToMailUser(user);
            if (mailUser == null)
            {
                Log.Error($"lookup: user=<{MailLog.Safe(user.Address)}>: no safe Maildir path can be made for this user");
                return new LookupUserReply { Status = LookupStatus.Tempfail, Reason = "bad mailbox path" };
            }
            return new LookupUserReply { Status = LookupStatus.Ok, User = mailUser };
        }
        catch (DirectoryUnavailableException e)
        {
            Log.Error($"lookup: user=<{MailLog.Safe(request.User)}>: directory unavailable: {MailLog.Safe(e.Message)}");
            return new LookupUserReply { Status = LookupStatus.Tempfail, Reason = "directory unavailable" };
        }
    }

    public override async Task<ResolveRecipientReply> ResolveRecipient(ResolveRecipientRequest request, ServerCallContext context)
    {
        if (request.Address.Length > MaxFieldLength || !ValidClient(request.Client))
            return new ResolveRecipientReply { Status = RecipientStatus.UnknownUser, Reason = "malformed request" };
        try
        {
            return await resolver.ResolveAsync(request.Address, context.CancellationToken).ConfigureAwait(false);
        }
        catch (DirectoryUnavailableException e)
        {
            Log.Error($"resolve: address=<{MailLog.Safe(request.Address)}>: directory unavailable: {MailLog.Safe(e.Message)}");
            return new ResolveRecipientReply { Status = RecipientStatus.Tempfail, Reason = "directory unavailable" };
        }
    }
}
