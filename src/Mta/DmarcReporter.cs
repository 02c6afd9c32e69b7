// Sends the DMARC aggregate reports: at start and every hour, each day's
// evaluations (spool_dir/dmarc/YYYYMMDD.tsv) once that day is over become
// reports (DmarcReports), DKIM-signed as our users' mail is, and go into the
// queue from the postmaster address; the day's file is then renamed .done and
// removed after a week. A report that cannot be built or queued is logged and
// tried again the next hour; nothing else waits for it.
using Mail.MailAuth;
using Mail.Queue;
using Mail.Shared.Logging;
using MimeKit;
using NLog;

namespace Mail.Mta;

internal sealed class DmarcReporter(Spool spool, DmarcReports reports, DkimKeyring? keys, string postmaster, Action wake)
{
    private static readonly Logger Log = MailLog.For("dmarc");
    private static readonly TimeSpan Every = TimeSpan.FromHours(1), KeepDone = TimeSpan.FromDays(7);
    private string Dir => Path.Combine(spool.Root, "dmarc");

    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try { await SendDueAsync(DateTimeOffset.UtcNow, ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception e) { Log.Error($"DMARC reports: {e.GetType().Name}: {MailLog.Safe(e.Message)}"); }
            try { await Task.Delay(Every, ct); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Reports every finished day not reported yet; returns how many reports were queued.</summary>
    public async Task<int> SendDueAsync(DateTimeOffset now, CancellationToken ct)
    {
        if (!Directory.Exists(Dir)) return 0;
        var today = now.UtcDateTime.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        int queued = 0;
        foreach (var file in Directory.EnumerateFiles(Dir, "*.tsv").Order(StringComparer.Ordinal).ToList())
        {
            var day = Path.GetFileNameWithoutExtension(file);
            if (day.Length != 8 || !day.All(char.IsAsciiDigit) || string.CompareOrdinal(day, today) >= 0) continue;
            foreach (var report in await reports.BuildAsync(file, ct))
            {
                var envelope = new QueueEnvelope(DateTimeOffset.UtcNow, postmaster, report.Recipients.ToList(),
                    new Dictionary<string, string> { ["origin"] = $"DMARC aggregate report for {report.Domain}" });
                await using var spooled = spool.Create(envelope, out var id);
                var signatures = keys?.Sign(report.Message, out _) ?? "";
                spooled.WriteContent(System.Text.Encoding.ASCII.GetBytes(signatures));
                report.Message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, spooled.ContentStream);
                await spooled.CommitAsync();
                Log.Info($"{id}: DMARC aggregate report for {report.Domain} of {day}: {report.Messages} messages in {report.Rows} rows, to={string.Join(",", report.Recipients.Select(r => "<" + MailLog.Safe(r) + ">"))}{(signatures.Length > 0 ? ", DKIM-signed" : "")}");
                queued++;
            }
            File.Move(file, file + ".done", overwrite: true);
        }
        foreach (var done in Directory.EnumerateFiles(Dir, "*.tsv.done"))
            if (now.UtcDateTime - File.GetLastWriteTimeUtc(done) > KeepDone) File.Delete(done);
        if (queued > 0) wake();
        return queued;
    }
}
