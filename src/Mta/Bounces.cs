// Delivery status notifications (RFC 3464), as Postfix sends them: a
// multipart/report with a human-readable part, the message/delivery-status
// part and the original message (whole, up to bounce_size_limit, for a
// failure unless RET=HDRS or the client was a stranger; else its headers). Three kinds: failed (a
// bounce), delayed (a warning, once, after delay_warning_time) and delivered
// (only on NOTIFY=SUCCESS). Each recipient's NOTIFY decides whether it is
// reported; nothing is ever sent to the null sender, so a notice of a notice
// cannot loop. Built with MimeKit.
using System.Text;
using Mail.Shared.Logging;
using Mail.Shared.Smtp;
using Mail.Queue;
using MimeKit;
using NLog;

namespace Mail.Mta;

internal enum NoticeKind { Failed, Delayed, Delivered, Relayed }

internal sealed record RecipientNotice(string Recipient, string Status, string Diagnostic);

internal static class Bounces
{
    private static readonly Logger Log = MailLog.For("bounce");
    /// <summary>Largest original message returned whole (Postfix: bounce_size_limit).</summary>
    public const int SizeLimit = 50_000;
    /// <summary>Queue attribute: "yes" when the client neither logged in nor was in mynetworks.</summary>
    public const string StrangerAttribute = "stranger";

    /// <summary>Queues a notice of <paramref name="kind"/>; returns its queue id, or null when none is due.</summary>
    public static async Task<string?> QueueAsync(Spool spool, string hostname, string id, QueueEnvelope envelope, string queuePath,
        IReadOnlyList<(long Offset, int Length)> chunks, NoticeKind kind, IReadOnlyList<RecipientNotice> recipients, DateTimeOffset retryUntil = default)
    {
        var wanted = kind switch { NoticeKind.Failed => DsnNotify.Failure, NoticeKind.Delayed => DsnNotify.Delay, _ => DsnNotify.Success };
        var reported = recipients.Where(r => (Dsn.NotifyOf(envelope.Attributes, r.Recipient) & wanted) != 0).ToList();
        if (reported.Count == 0) return null;
        if (envelope.Sender.Length == 0)
        {
            Log.Info($"{id}: no {Describe(kind)}: the sender is the null sender");
            return null;
        }
        var notice = Build(hostname, id, envelope, queuePath, chunks, kind, reported, retryUntil);
        var noticeEnvelope = new QueueEnvelope(DateTimeOffset.UtcNow, "", [envelope.Sender],
            new Dictionary<string, string> { ["origin"] = $"{Describe(kind)} of {id}" });
        await using var file = spool.Create(noticeEnvelope, out var noticeId);
        // Written in the stored form (CRLF lines) as bytes: the original's 8-bit content stays as it came.
        notice.WriteTo(StoredForm, file.ContentStream);
        await file.CommitAsync();
        Log.Info($"{id}: sender {Describe(kind)}: {noticeId}");
        return noticeId;
    }

    private static readonly FormatOptions StoredForm = new() { NewLineFormat = NewLineFormat.Dos };

    private static string Describe(NoticeKind kind) => kind switch
    {
        NoticeKind.Failed => "non-delivery notification", NoticeKind.Delayed => "delay notification", _ => "delivery status notification",
    };

    private static MimeMessage Build(string hostname, string id, QueueEnvelope envelope, string queuePath,
        IReadOnlyList<(long Offset, int Length)> chunks, NoticeKind kind, IReadOnlyList<RecipientNotice> recipients, DateTimeOffset retryUntil)
    {
        long size = chunks.Sum(c => (long)c.Length);
        // A stranger's message (no login, not mynetworks) never goes back whole: its sender may be
        // forged, and the bounce would carry the stranger's content to a third party (backscatter).
        bool whole = kind == NoticeKind.Failed && size <= SizeLimit &&
                     !(envelope.Attributes.TryGetValue(DsnAttributes.Ret, out var ret) && ret == "HDRS") &&
                     envelope.Attributes.GetValueOrDefault(StrangerAttribute) != "yes";
        var original = QueueFileReader.ReadContentPrefix(queuePath, chunks, whole ? SizeLimit : HeaderCleanup.MaxHeaderSize);

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + hostname));
        message.To.Add(MailboxAddress.Parse(envelope.Sender));
        message.Subject = kind switch
        {
            NoticeKind.Failed => "Undelivered Mail Returned to Sender",
            NoticeKind.Delayed => "Delayed Mail (still being retried)",
            _ => "Successful Mail Delivery Report",
        };
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(hostname);
        message.Headers.Add("Auto-Submitted", "auto-replied");

        var report = new MultipartReport("delivery-status");
        var text = new StringBuilder($"This is the mail system at host {hostname}.\n\n");
        switch (kind)
        {
            case NoticeKind.Failed:
                text.Append("I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n");
                break;
            case NoticeKind.Delayed:
                text.Append("####################################################################\n")
                    .Append("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n")
                    .Append("####################################################################\n\n")
                    .Append($"Your message could not be delivered for {(DateTimeOffset.UtcNow - envelope.Arrival).TotalHours:0.#} hour(s).\n")
                    .Append($"It will be retried until {MimeKit.Utils.DateUtils.FormatDate(retryUntil)}.\n\n");
                break;
            default:
                text.Append("Your message was successfully delivered to the destination(s)\nlisted below.\n\n");
                break;
        }
        foreach (var r in recipients) text.Append('<').Append(r.Recipient).Append(">: ").Append(r.Diagnostic).Append('\n');
        report.Add(new TextPart("plain") { Text = text.ToString() });

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList { { "Reporting-MTA", "dns; " + hostname } };
        if (envelope.Attributes.TryGetValue(DsnAttributes.EnvId, out var envid)) perMessage.Add("Original-Envelope-Id", envid);
        perMessage.Add("X-Postfix-Queue-ID", id);
        perMessage.Add("Arrival-Date", MimeKit.Utils.DateUtils.FormatDate(envelope.Arrival));
        status.StatusGroups.Add(perMessage);
        foreach (var r in recipients)
        {
            var group = new HeaderList { { "Final-Recipient", "rfc822; " + r.Recipient } };
            if (envelope.Attributes.TryGetValue(Dsn.OrcptKey(r.Recipient), out var orcpt))
                group.Add("Original-Recipient", orcpt);
            group.Add("Action", kind switch { NoticeKind.Failed => "failed", NoticeKind.Delayed => "delayed", NoticeKind.Relayed => "relayed", _ => "delivered" });
            group.Add("Status", r.Status);
            group.Add("Diagnostic-Code", "smtp; " + r.Diagnostic);
            if (kind == NoticeKind.Delayed) group.Add("Will-Retry-Until", MimeKit.Utils.DateUtils.FormatDate(retryUntil));
            status.StatusGroups.Add(group);
        }
        report.Add(status);

        if (whole)
        {
            try { report.Add(new MessagePart { Message = MimeMessage.Load(new MemoryStream(original)) }); return message.WithBody(report); }
            catch (FormatException) { } // not MIME enough to return whole: its headers then
        }
        // The header section as its bytes are (RFC 3462 text/rfc822-headers).
        var end = HeaderCleanup.HeaderLength(original);
        var headerBytes = end < 0 ? original : original[..end];
        report.Add(new TextPart("rfc822-headers") { Content = new MimeContent(new MemoryStream(headerBytes)) });
        return message.WithBody(report);
    }

    private static MimeMessage WithBody(this MimeMessage message, MimeEntity body)
    {
        message.Body = body;
        return message;
    }
}
