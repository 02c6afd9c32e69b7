// Delivery status notifications (RFC 3464) for recipients that failed for
// good: a multipart/report with a human-readable part, the
// message/delivery-status part and the original message's headers, queued
// to the envelope sender. Never to the null sender: a bounce of a bounce
// would loop. Built with MimeKit.
using System.Globalization;
using System.Text;
using Mail.Shared.Logging;
using Mail.Shared.Spool;
using MimeKit;
using NLog;

namespace Mail.Mta;

internal sealed record FailedRecipient(string Recipient, string Status, string Diagnostic);

internal static class Bounces
{
    private static readonly Logger Log = MailLog.For("bounce");

    /// <summary>Queues a DSN for <paramref name="failed"/>; returns its queue id, or null when none is due.</summary>
    public static async Task<string?> QueueAsync(Spool spool, string hostname, string id, QueueEnvelope envelope, string queuePath,
        IReadOnlyList<(long Offset, int Length)> chunks, IReadOnlyList<FailedRecipient> failed)
    {
        if (failed.Count == 0) return null;
        if (envelope.Sender.Length == 0)
        {
            Log.Info($"{id}: no bounce: the sender is the null sender");
            return null;
        }
        var dsn = Build(hostname, id, envelope, queuePath, chunks, failed);
        var bounceEnvelope = new QueueEnvelope(DateTimeOffset.UtcNow, "", [envelope.Sender],
            new Dictionary<string, string> { ["origin"] = "bounce of " + id });
        await using var file = spool.Create(bounceEnvelope, out var bounceId);
        using (var ms = new MemoryStream())
        {
            dsn.WriteTo(FormatOptions.Default, ms);
            file.WriteContent(Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(ms.ToArray()).Replace("\r\n", "\n")));
        }
        await file.CommitAsync();
        Log.Info($"{id}: sender non-delivery notification: {bounceId}");
        return bounceId;
    }

    private static MimeMessage Build(string hostname, string id, QueueEnvelope envelope, string queuePath,
        IReadOnlyList<(long Offset, int Length)> chunks, IReadOnlyList<FailedRecipient> failed)
    {
        var original = new MemoryStream();
        QueueFileReader.CopyContent(queuePath, chunks, original);
        original.Position = 0;
        HeaderList headers;
        try { headers = HeaderList.Load(original); }
        catch (FormatException) { headers = []; }

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + hostname));
        message.To.Add(MailboxAddress.Parse(envelope.Sender));
        message.Subject = "Undelivered Mail Returned to Sender";
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(hostname);
        message.Headers.Add("Auto-Submitted", "auto-replied");

        var report = new MultipartReport("delivery-status");
        var text = new StringBuilder();
        text.Append("This is the mail system at host ").Append(hostname).Append(".\n\n")
            .Append("I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n");
        foreach (var f in failed) text.Append('<').Append(f.Recipient).Append(">: ").Append(f.Diagnostic).Append('\n');
        report.Add(new TextPart("plain") { Text = text.ToString() });

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", "dns; " + hostname },
            { "X-Postfix-Queue-ID", id },
            { "Arrival-Date", MimeKit.Utils.DateUtils.FormatDate(envelope.Arrival) },
        };
        status.StatusGroups.Add(perMessage);
        foreach (var f in failed)
            status.StatusGroups.Add(new HeaderList
            {
                { "Final-Recipient", "rfc822; " + f.Recipient },
                { "Action", "failed" },
                { "Status", f.Status },
                { "Diagnostic-Code", "smtp; " + f.Diagnostic },
            });
        report.Add(status);

        var headerText = new StringBuilder();
        foreach (var h in headers) headerText.Append(h.ToString()).Append('\n');
        report.Add(new TextPart("rfc822-headers") { Text = headerText.ToString() });
        message.Body = report;
        return message;
    }
}
