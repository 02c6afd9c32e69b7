// FETCH and UID FETCH (RFC 9051 6.4.5, BINARY RFC 3516, CONDSTORE RFC 7162):
// items parsed first, then answered from the index or the file.
using System.Text;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private sealed record FetchItem(string Name, Section? Section = null, long? Start = null, long? Count = null, bool Peek = false);

    private static List<FetchItem> FetchItems(Args args)
    {
        var items = new List<FetchItem>();
        if (args.TryChar('('))
        {
            while (!args.TryChar(')'))
            {
                if (items.Count > 0) args.Space();
                if (items.Count > 50) throw new ImapSyntaxException("Too many fetch items");
                items.Add(FetchItemArg(args));
            }
            return items;
        }
        var first = FetchItemArg(args);
        switch (first.Name)
        {
            case "ALL": return [new("FLAGS"), new("INTERNALDATE"), new("RFC822.SIZE"), new("ENVELOPE")];
            case "FAST": return [new("FLAGS"), new("INTERNALDATE"), new("RFC822.SIZE")];
            case "FULL": return [new("FLAGS"), new("INTERNALDATE"), new("RFC822.SIZE"), new("ENVELOPE"), new("BODY")];
            default: return [first];
        }
    }

    private static FetchItem FetchItemArg(Args args)
    {
        var atom = args.Word().ToUpperInvariant();
        // "BODY[" and "BODY.PEEK[" are read as atoms up to "[".
        if (atom is "BINARY" or "BINARY.PEEK" or "BINARY.SIZE" && args.Peek() == '[')
        {
            // RFC 3516: only part numbers, no HEADER/TEXT/MIME.
            args.Expect('[');
            var part = new List<int>();
            while (char.IsAsciiDigit(args.Peek()))
            {
                if (part.Count >= 20) throw new ImapSyntaxException("Section nested too deep");
                part.Add((int)Math.Min(args.NzNumber(), int.MaxValue));
                if (!args.TryChar('.')) break;
            }
            args.Expect(']');
            long? bstart = null, bcount = null;
            if (atom != "BINARY.SIZE" && args.TryChar('<'))
            {
                bstart = (long)args.Number64();
                args.Expect('.');
                bcount = (long)args.Number64();
                args.Expect('>');
            }
            return new FetchItem(atom == "BINARY.SIZE" ? "BINARY.SIZE" : "BINARY", new Section(part, "", []), bstart, bcount, atom == "BINARY.PEEK");
        }
        if (atom is "BODY" or "BODY.PEEK" && args.Peek() == '[')
        {
            args.Expect('[');
            var section = SectionArg(args);
            args.Expect(']');
            long? start = null, count = null;
            if (args.TryChar('<'))
            {
                start = (long)args.Number64();
                args.Expect('.');
                count = (long)args.Number64();
                args.Expect('>');
            }
            return new FetchItem("BODY", section, start, count, atom.EndsWith(".PEEK"));
        }
        if (atom is not ("ALL" or "FAST" or "FULL" or "FLAGS" or "UID" or "INTERNALDATE" or "RFC822.SIZE" or "ENVELOPE" or "BODYSTRUCTURE" or "BODY"
            or "RFC822" or "RFC822.HEADER" or "RFC822.TEXT" or "MODSEQ"))
            throw new ImapSyntaxException("Unknown fetch attribute " + MailLog.Safe(atom, 30));
        return new FetchItem(atom);
    }

    private static Section SectionArg(Args args)
    {
        var part = new List<int>();
        string text = "";
        var fields = new List<string>();
        while (char.IsAsciiDigit(args.Peek()))
        {
            var n = args.NzNumber();
            if (part.Count >= 20) throw new ImapSyntaxException("Section nested too deep");
            part.Add((int)Math.Min(n, int.MaxValue));
            if (!args.TryChar('.')) return new Section(part, "", fields);
        }
        if (args.Peek() != ']')
        {
            text = args.Word().ToUpperInvariant();
            if (text is not ("HEADER" or "TEXT" or "MIME" or "HEADER.FIELDS" or "HEADER.FIELDS.NOT")) throw new ImapSyntaxException("Invalid section");
            if (text == "MIME" && part.Count == 0) throw new ImapSyntaxException("MIME needs a part number");
            if (text.StartsWith("HEADER.FIELDS"))
            {
                args.Space();
                args.Expect('(');
                while (!args.TryChar(')')) { if (fields.Count > 0) args.Space(); if (fields.Count > 100) throw new ImapSyntaxException("Too many fields"); fields.Add(args.AString()); }
            }
        }
        return new Section(part, text, fields);
    }

    /// <summary>A FETCH command parsed, before anything of it runs (RFC 9051 6.4.5; CHANGEDSINCE and VANISHED, RFC 7162).</summary>
    private sealed record FetchQuery(SequenceSet Set, List<FetchItem> Items, ulong? ChangedSince, bool Vanished);

    private FetchQuery ParseFetch(Args args, bool uid)
    {
        args.Space();
        var set = args.SequenceSet();
        args.Space();
        var items = FetchItems(args);
        ulong? changedSince = null;
        bool vanished = false;
        if (args.TryChar(' '))
        {
            args.Expect('(');
            while (!args.TryChar(')'))
            {
                var mod = args.Atom().ToUpperInvariant();
                if (mod == "CHANGEDSINCE") { args.Space(); changedSince = args.Number64(); }
                else if (mod == "VANISHED" && uid && _qresync) vanished = true;
                else throw new ImapSyntaxException("Unknown FETCH modifier " + mod);
                if (args.Peek() != ')') args.Space();
            }
            if (vanished && changedSince == null) throw new ImapSyntaxException("VANISHED needs CHANGEDSINCE");
        }
        args.End();
        return new FetchQuery(set, items, changedSince, vanished);
    }

    private async Task<ImapResponse> FetchAsync(Args args, bool uid)
    {
        var (set, items, changedSince, vanished) = ParseFetch(args, uid);
        var s = _selected!;
        // UID FETCH, and every FETCH once QRESYNC is on (RFC 7162 3.2.4), answers with the UID.
        if ((uid || _qresync) && !items.Any(i => i.Name == "UID")) items.Insert(0, new FetchItem("UID"));
        if (changedSince != null || items.Any(i => i.Name == "MODSEQ")) EnableCondStore();
        if (changedSince != null && !items.Any(i => i.Name == "MODSEQ")) items.Add(new FetchItem("MODSEQ"));
        if (vanished)
        {
            var gone = s.ModSeqs.ExpungedSince(changedSince!.Value, u => set.Contains(u, Math.Max(s.Max(uid: true), u)));
            if (gone.Count > 0) conn.BufferLine("* VANISHED (EARLIER) " + SequenceSet.Compact(gone));
        }
        bool setsSeen = !s.ReadOnly && items.Any(i => (i.Name is "BODY" or "BINARY" && i.Section != null && !i.Peek) || i.Name is "RFC822" or "RFC822.TEXT");
        // The whole message (BODY[], RFC822) is streamed from the file; other sections need the parse.
        static bool Whole(FetchItem i) => (i.Name == "RFC822" || (i.Name is "BODY" && i.Section is { Part.Count: 0, Text: "" })) && i.Start == null;
        var needView = items.Any(i => !Whole(i) && ((i.Name is "BODY" or "BINARY" or "BINARY.SIZE" && i.Section != null) || i.Name is "RFC822.HEADER" or "RFC822.TEXT"));
        var needIndex = items.Any(i => i.Name is "ENVELOPE" or "BODYSTRUCTURE" || (i.Name == "BODY" && i.Section == null));
        var index = needIndex ? FolderIndex.For(s.Folder.Path, _user!.Uid, _user.Gid) : null;
        var seqs = s.Resolve(set, uid);
        if (changedSince != null) seqs = seqs.Where(q => s.ModSeqs.Of(s.Messages[q - 1].Uid) > changedSince.Value).ToList();
        // A listing takes the index's entries at once: those new to it are parsed in parallel.
        var entries = index != null && seqs.Count > 16 ? index.GetAll(seqs.Select(q => s.Messages[q - 1].File).ToList()) : null;
        if (index != null)
        {
            // Messages new to the index are parsed on every core before the answer is written.
            var missing = seqs.Select(q => s.Messages[q - 1].File).Where(f => !index.Has(f.BaseName)).ToList();
            if (missing.Count > 16)
                Parallel.ForEach(missing, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, f =>
                {
                    try { index.Get(f.BaseName, f.Path, MaildirReader.VirtualSize(f)); }
                    catch (IOException) { } // gone meanwhile: skipped below
                });
        }
        // Items that read the file (what the index holds does not): a message another session expunged
        // is not answered with made-up data.
        var needFile = needView || items.Any(i => Whole(i) || (i.Name == "INTERNALDATE" && index == null));
        bool expunged = false;
        int sent = 0;
        for (int k = 0; k < seqs.Count; k++)
        {
            var seq = seqs[k];
            var m = s.Messages[seq - 1];
            if (needFile || (index != null && !index.Has(m.File.BaseName)))
            {
                // Where another session's flag change has put it; gone if another has expunged it.
                var at = s.Folder.Locate(m.File);
                if (at == null) { expunged = true; continue; }
                if (at != m.File.Path) s.Messages[seq - 1] = m = m with { File = m.File with { Path = at } };
            }
            if (setsSeen && !m.File.Flags.Contains('S'))
            {
                if (s.Folder.SetFlags(m.File, f => f + "S") is { } seen) s.Messages[seq - 1] = m = m with { File = m.File with { Path = seen.Path, Flags = seen.Flags } };
                if (!items.Any(i => i.Name == "FLAGS")) items.Add(new FetchItem("FLAGS"));
            }
            MessageView? view = null;
            IndexEntry? cached = null;
            DateTimeOffset? received = null;
            try
            {
                if (needView) view = MessageView.Load(m.File.Path);
                if (index != null) cached = entries?[k] ?? index.Get(m.File.BaseName, m.File.Path, MaildirReader.VirtualSize(m.File));
                else if (items.Any(i => i.Name == "INTERNALDATE")) received = InternalDateOf(s.Folder, m.File) ?? throw new FileNotFoundException();
            }
            catch (FileNotFoundException) { expunged = true; continue; } // expunged this very moment
            conn.BufferText($"* {seq} FETCH (");
            bool firstItem = true;
            bool streamed = false;
            foreach (var item in items)
            {
                if (!firstItem) conn.BufferText(" ");
                firstItem = false;
                switch (item.Name)
                {
                    case "UID": conn.BufferText($"UID {m.Uid}"); break;
                    case "FLAGS": conn.BufferText($"FLAGS ({FlagList(m)})"); break;
                    case "MODSEQ": conn.BufferText($"MODSEQ ({s.ModSeqs.Of(m.Uid)})"); break;
                    case "INTERNALDATE":
                        conn.BufferText("INTERNALDATE " + InternalDate(cached != null ? new DateTimeOffset(cached.InternalDate, TimeSpan.Zero) : received!.Value));
                        break;
                    case "RFC822.SIZE": conn.BufferText("RFC822.SIZE " + MaildirReader.VirtualSize(m.File)); break;
                    case "ENVELOPE": conn.BufferText("ENVELOPE " + cached!.Envelope); break;
                    case "BODYSTRUCTURE": conn.BufferText("BODYSTRUCTURE " + cached!.BodyStructure); break;
                    case "BODY" when item.Section == null: conn.BufferText("BODY " + cached!.Body); break;
                    case "RFC822" or "BODY" when Whole(item):
                        if (!StreamWhole(item.Name == "RFC822" ? "RFC822" : $"{item.Name}[]", m.File.Path))
                        {
                            expunged = true; // removed between the look and the read: empty, and the client is told
                            Literal(item.Name == "RFC822" ? "RFC822" : $"{item.Name}[]", []);
                        }
                        streamed = true;
                        break;
                    case "RFC822.HEADER": Literal("RFC822.HEADER", view!.Section(new Section([], "HEADER", [])) ?? []); break;
                    case "RFC822.TEXT": Literal("RFC822.TEXT", view!.Section(new Section([], "TEXT", [])) ?? []); break;
                    case "BINARY" or "BINARY.SIZE":
                        byte[] decoded;
                        try { decoded = view!.Decoded(item.Section!.Part) ?? []; }
                        catch (NotSupportedException)
                        {
                            conn.BufferText(")\r\n");
                            return ImapResponse.No("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.");
                        }
                        var partName = string.Join('.', item.Section!.Part);
                        if (item.Name == "BINARY.SIZE") { conn.BufferText($"BINARY.SIZE[{partName}] {decoded.Length}"); break; }
                        if (item.Start != null)
                        {
                            var bs = (int)Math.Min(item.Start.Value, decoded.Length);
                            decoded = decoded.AsSpan(bs, (int)Math.Min(item.Count!.Value, decoded.Length - bs)).ToArray();
                        }
                        conn.BufferText($"BINARY[{partName}]{(item.Start != null ? $"<{item.Start}>" : "")} {(decoded.Contains((byte)0) ? "~" : "")}{{{decoded.Length}}}\r\n");
                        conn.BufferBytes(decoded);
                        break;
                    default:
                        var bytes = view!.Section(item.Section!) ?? [];
                        var label = $"{item.Name}[{item.Section}]";
                        if (item.Start != null)
                        {
                            var start = (int)Math.Min(item.Start.Value, bytes.Length);
                            var count = (int)Math.Min(item.Count!.Value, bytes.Length - start);
                            bytes = bytes.AsSpan(start, count).ToArray();
                            label += $"<{item.Start}>";
                        }
                        Literal(label, bytes);
                        break;
                }
            }
            conn.BufferText(")\r\n");
            if (++sent % 64 == 0 || ((view != null || streamed) && (sent % 16 == 0 || conn.Output.UnflushedBytes > 256 * 1024))) await conn.FlushAsync();
        }
        index?.SaveLater(s.Messages.Select(x => x.File.BaseName));
        // RFC 5530: the client should sync (NOOP) to learn of the expunge.
        if (expunged) return ImapResponse.No("[EXPUNGEISSUED] Some of the requested messages no longer exist.");
        return ImapResponse.Ok(uid ? "UID Fetch completed." : "Fetch completed.");
    }

    /// <summary>
    /// A whole message as a literal, its LF lines sent as CRLF: the file is read into a pooled
    /// buffer and converted straight into the connection's output. False if the file is gone.
    /// </summary>
    private bool StreamWhole(string label, string path)
    {
        byte[] buffer;
        int length;
        try
        {
            using var handle = MessageView.OpenFile(path);
            length = MessageView.ReadPooled(handle, path, out buffer);
        }
        catch (FileNotFoundException) { return false; }
        try
        {
            var data = buffer.AsSpan(0, length);
            int bare = data.Count((byte)'\n') - data.Count("\r\n"u8);
            conn.BufferText($"{label} {{{length + bare}}}\r\n");
            var output = conn.Output.GetSpan(length + bare);
            int o = 0, start = 0;
            while (start < length)
            {
                var lf = data[start..].IndexOf((byte)'\n');
                if (lf < 0) { data[start..].CopyTo(output[o..]); o += length - start; break; }
                var end = start + lf;
                data[start..end].CopyTo(output[o..]);
                o += end - start;
                if (end == 0 || data[end - 1] != '\r') output[o++] = (byte)'\r';
                output[o++] = (byte)'\n';
                start = end + 1;
            }
            output[..o].Replace((byte)0, (byte)0x80); // no NUL in a literal (RFC 9051 4.3)
            conn.Output.Advance(o);
            return true;
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>A literal of message text: a NUL, which no literal but BINARY's may carry (RFC 9051 4.3), is sent as 0x80, as Dovecot does.</summary>
    private void Literal(string label, byte[] bytes)
    {
        if (bytes.AsSpan().Contains((byte)0)) bytes.AsSpan().Replace((byte)0, (byte)0x80);
        conn.BufferText($"{label} {{{bytes.Length}}}\r\n");
        conn.BufferBytes(bytes);
    }
}
