// The message commands of an IMAP session: APPEND, FETCH, STORE, SEARCH,
// COPY, MOVE, EXPUNGE (and their UID forms) and IDLE.
using System.Globalization;
using System.Text;
using Mail.Shared.Logging;
using Mail.Shared.Maildir;

namespace Mail.ImapPop.Imap;

internal sealed partial class ImapSession
{
    private static readonly string[] Months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

    private static string InternalDate(DateTimeOffset d) =>
        $"\"{d.Day,2}-{Months[d.Month - 1]}-{d.Year:D4} {d:HH:mm:ss} {(d.Offset < TimeSpan.Zero ? '-' : '+')}{Math.Abs(d.Offset.Hours):D2}{Math.Abs(d.Offset.Minutes):D2}\"";

    private static DateTimeOffset ReceivedDate(string path)
    {
        try { return new DateTimeOffset(File.GetLastWriteTimeUtc(path), TimeSpan.Zero); }
        catch (IOException) { return DateTimeOffset.UnixEpoch; }
    }

    /// <summary>Flag names to Maildir letters; keywords get letters from dovecot-keywords.</summary>
    private string? Letters(MaildirFolder folder, IEnumerable<string> flags, out string? error)
    {
        error = null;
        var sb = new StringBuilder();
        foreach (var f in flags)
        {
            switch (f.ToUpperInvariant())
            {
                case "\\SEEN": sb.Append('S'); break;
                case "\\ANSWERED": sb.Append('R'); break;
                case "\\FLAGGED": sb.Append('F'); break;
                case "\\DELETED": sb.Append('T'); break;
                case "\\DRAFT": sb.Append('D'); break;
                case "\\RECENT": break;
                default:
                    if (f.StartsWith('\\')) { error = "Invalid system flag " + f; return null; }
                    var letter = folder.KeywordLetter(f);
                    if (letter == null) { error = "[LIMIT] Too many keywords"; return null; }
                    sb.Append(letter.Value);
                    break;
            }
        }
        return sb.ToString();
    }

    private static List<string> FlagListArg(Args args)
    {
        var flags = new List<string>();
        if (args.TryChar('('))
        {
            while (!args.TryChar(')'))
            {
                if (flags.Count > 0) args.Space();
                if (flags.Count > 100) throw new ImapSyntaxException("Too many flags");
                flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
            }
        }
        else
        {
            flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
            while (args.TryChar(' ')) flags.Add(args.TryChar('\\') ? "\\" + args.Atom() : args.Atom());
        }
        return flags;
    }

    private async Task<ImapResponse> AppendAsync(Args args)
    {
        args.Space();
        var name = MailboxArg(args, out var error);
        args.Space();
        var flags = new List<string>();
        if (args.Peek() == '(') { flags = FlagListArg(args); args.Space(); }
        DateTimeOffset? date = null;
        if (args.Peek() == '"')
        {
            var text = args.Quoted();
            if (!DateTimeOffset.TryParseExact(text.Trim(), ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var d))
            {
                // "zzz" wants +hh:mm; IMAP writes +hhmm.
                var fixedText = text.Trim();
                if (fixedText.Length > 5) fixedText = fixedText[..^2] + ":" + fixedText[^2..];
                if (!DateTimeOffset.TryParseExact(fixedText, ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out d))
                    throw new ImapSyntaxException("Invalid date-time");
            }
            date = d;
            args.Space();
        }
        var literal = args.Literal();
        args.End();
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var folder = FolderOf(name);
        if (!folder.Exists) return ImapResponse.No("[TRYCREATE] Mailbox doesn't exist: " + name);
        var letters = Letters(folder, flags, out var flagError);
        if (letters == null) return ImapResponse.No(flagError!);
        if (!WithinQuota(literal.Length, 1)) return ImapResponse.No("[OVERQUOTA] Quota exceeded (mailbox for user is full)");
        string baseName;
        long size;
        using (var input = literal.Open())
            (baseName, size) = await folder.AppendAsync(input, date ?? DateTimeOffset.UtcNow, letters);
        MaildirQuota.Add(_user!.Maildir, size, 1);
        var state = folder.Sync(takeNew: false);
        var uid = state.Messages.FirstOrDefault(m => m.BaseName == baseName)?.Uid ?? 0;
        Log.Info($"{conn.SessionId}: append user=<{MailLog.Safe(_user.User)}> mailbox=\"{MailLog.Safe(name)}\" uid={uid} size={size}");
        if (_selected?.Name == name) await SendUpdatesAsync(allowExpunge: false);
        return ImapResponse.Ok($"[APPENDUID {state.UidValidity} {uid}] Append completed.");
    }

    // ---- FETCH ----

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

    private async Task<ImapResponse> FetchAsync(Args args, bool uid)
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
        var s = _selected!;
        if (uid && !items.Any(i => i.Name == "UID")) items.Insert(0, new FetchItem("UID"));
        if (changedSince != null || items.Any(i => i.Name == "MODSEQ")) { _condstore = s.CondStore = true; }
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
        if (index != null)
        {
            // Messages new to the index are parsed on every core before the answer is written.
            var missing = seqs.Select(q => s.Messages[q - 1].File).Where(f => !index.Has(f.BaseName)).ToList();
            if (missing.Count > 16)
                Parallel.ForEach(missing, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, f =>
                {
                    try { index.Get(f.BaseName, f.Path, VirtualSize(f)); }
                    catch (IOException) { } // gone meanwhile: skipped below
                });
        }
        // Items that read the file (what the index holds does not): a message another session expunged
        // is not answered with made-up data.
        var needFile = needView || items.Any(i => Whole(i) || (i.Name == "INTERNALDATE" && index == null));
        bool expunged = false;
        int sent = 0;
        foreach (var seq in seqs)
        {
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
            try
            {
                if (needView) view = MessageView.Load(m.File.Path);
                if (index != null) cached = index.Get(m.File.BaseName, m.File.Path, VirtualSize(m.File));
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
                        var received = cached != null ? new DateTimeOffset(cached.InternalDate, TimeSpan.Zero) : ReceivedDate(m.File.Path);
                        conn.BufferText("INTERNALDATE " + InternalDate(received));
                        break;
                    case "RFC822.SIZE": conn.BufferText("RFC822.SIZE " + VirtualSize(m.File)); break;
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
        index?.Save(s.Messages.Select(x => x.File.BaseName));
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
            conn.Output.Advance(o);
            return true;
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    private void Literal(string label, byte[] bytes)
    {
        conn.BufferText($"{label} {{{bytes.Length}}}\r\n");
        conn.BufferBytes(bytes);
    }

    /// <summary>RFC822.SIZE: the W= of the file name, else the file counted with CRLF line ends.</summary>
    private static long VirtualSize(FolderMessage m) => MaildirReader.VirtualSize(m);

    // ---- STORE ----

    private async Task<ImapResponse> StoreAsync(Args args, bool uid)
    {
        args.Space();
        var set = args.SequenceSet();
        args.Space();
        ulong? unchangedSince = null;
        if (args.TryChar('('))
        {
            if (!args.Atom().Equals("UNCHANGEDSINCE", StringComparison.OrdinalIgnoreCase)) throw new ImapSyntaxException("Unknown STORE modifier");
            args.Space();
            unchangedSince = args.Number64();
            args.Expect(')');
            args.Space();
            _condstore = true;
        }
        var op = args.Atom().ToUpperInvariant();
        bool silent = op.EndsWith(".SILENT");
        if (silent) op = op[..^7];
        if (op is not ("FLAGS" or "+FLAGS" or "-FLAGS")) throw new ImapSyntaxException("Invalid STORE operation");
        args.Space();
        var flags = FlagListArg(args);
        args.End();
        var s = _selected!;
        if (s.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        var letters = Letters(s.Folder, flags, out var error);
        if (letters == null) return ImapResponse.No(error!);
        s.Keywords.Clear();
        s.Keywords.AddRange(s.Folder.Keywords());
        s.CondStore = _condstore;
        if (unchangedSince != null) s.ModSeqs.Observe(s.Folder.Sync(takeNew: false)); // compare against what is on disk now
        var modified = new List<uint>();
        var stored = new List<int>();
        var changes = new List<(uint, string)>();
        using var cur = s.Folder.OpenCur();
        foreach (var seq in s.Resolve(set, uid))
        {
            var m = s.Messages[seq - 1];
            if (unchangedSince != null && s.ModSeqs.Of(m.Uid) > unchangedSince.Value) { modified.Add(uid ? m.Uid : (uint)seq); continue; }
            stored.Add(seq);
            string Apply(string current) => op switch
            {
                // FLAGS replaces the system flags and keywords; letters of other meanings stay.
                "FLAGS" => letters + Without(current, c => "DFRST".Contains(c) || c is >= 'a' and <= 'z'),
                "+FLAGS" => current + letters,
                _ => Without(current, letters.Contains),
            };
            static string Without(string current, Func<char, bool> drop) => current.Any(drop) ? new string(current.Where(c => !drop(c)).ToArray()) : current;
            var expected = MaildirFolder.NormalizeFlags(Apply(m.File.Flags));
            if (expected != m.File.Flags || op == "FLAGS")
            {
                // Applied to the flags on disk: another session's change since our last look is kept.
                if (s.Folder.SetFlags(m.File, Apply, cur) is { } done && done.Flags != m.File.Flags)
                {
                    s.Messages[seq - 1] = m = m with { File = m.File with { Path = done.Path, Flags = done.Flags } };
                    changes.Add((m.Uid, done.Flags));
                }
            }
        }
        // The changes get their mod-sequences; the answers carry them.
        s.ModSeqs.Record(changes);
        foreach (var seq in stored)
        {
            var m = s.Messages[seq - 1];
            if (!silent || s.CondStore)
                conn.BufferLine($"* {seq} FETCH ({(uid ? $"UID {m.Uid} " : "")}{(silent ? "" : $"FLAGS ({FlagList(m)}) ")}{(s.CondStore ? $"MODSEQ ({s.ModSeqs.Of(m.Uid)})" : "")})".Replace(" )", ")"));
        }
        if (modified.Count > 0) return ImapResponse.Ok($"[MODIFIED {SequenceSet.Compact(modified)}] Conditional store failed.");
        return ImapResponse.Ok("Store completed.");
    }

    // ---- COPY, MOVE, EXPUNGE ----

    private async Task<ImapResponse> CopyAsync(Args args, bool uid, bool move)
    {
        args.Space();
        var set = args.SequenceSet();
        args.Space();
        var name = MailboxArg(args, out var error);
        args.End();
        var s = _selected!;
        if (error != null) return ImapResponse.No("[CANNOT] " + error);
        var target = FolderOf(name);
        if (!target.Exists) return ImapResponse.No("[TRYCREATE] Mailbox doesn't exist: " + name);
        if (move && s.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        var seqs = s.Resolve(set, uid);
        long copyBytes = seqs.Sum(q => MaildirQuota.SizeFromName(s.Messages[q - 1].File.Path) ?? 0);
        if (!move && !WithinQuota(copyBytes, seqs.Count)) return ImapResponse.No("[OVERQUOTA] Quota exceeded (mailbox for user is full)");
        var copied = new List<(uint SourceUid, string BaseName)>();
        foreach (var seq in seqs)
        {
            var m = s.Messages[seq - 1].File;
            // Keyword letters are per folder: translate them.
            var flags = new StringBuilder();
            foreach (var c in m.Flags)
            {
                if (c is >= 'a' and <= 'z')
                {
                    var k = c - 'a' < s.Keywords.Count ? s.Keywords[c - 'a'] : "";
                    if (k.Length > 0 && target.KeywordLetter(k) is { } l) flags.Append(l);
                }
                else flags.Append(c);
            }
            var baseName = target.Path == s.Folder.Path || target.HasBaseName(m.BaseName) ? MaildirDelivery.UniqueName() + SizeSuffix(m.BaseName) : m.BaseName;
            try { target.CopyIn(m, baseName, flags.ToString()); }
            catch (FileNotFoundException) { continue; } // expunged meanwhile: not copied
            copied.Add((m.Uid, baseName));
        }
        target.CommitCopies();
        if (!move) MaildirQuota.Add(_user!.Maildir, copyBytes, copied.Count);
        var state = target.Sync(takeNew: false);
        var byName = state.Messages.ToDictionary(m => m.BaseName, m => m.Uid);
        var pairs = copied.Where(c => byName.ContainsKey(c.BaseName)).Select(c => (c.SourceUid, Dest: byName[c.BaseName])).ToList();
        var copyUid = pairs.Count == 0 ? "" : $"[COPYUID {state.UidValidity} {string.Join(',', pairs.Select(p => p.SourceUid))} {string.Join(',', pairs.Select(p => p.Dest))}] ";
        if (!move) return ImapResponse.Ok(copyUid + "Copy completed.");
        if (copyUid.Length > 0) conn.BufferLine($"* OK {copyUid}Moved UIDs.");
        var uids = seqs.Select(q => s.Messages[q - 1].Uid).ToHashSet();
        ExpungeWhere(m => uids.Contains(m.Uid), countQuota: false);
        return ImapResponse.Ok("Move completed.");
    }

    private static string SizeSuffix(string baseName)
    {
        int i = baseName.IndexOf(",S=", StringComparison.Ordinal);
        return i < 0 ? "" : baseName[i..];
    }

    private void ExpungeDeleted(SequenceSet? uidSet) =>
        ExpungeWhere(m => m.Deleted && (uidSet == null || uidSet.Contains(m.Uid, _selected!.Max(uid: true))));

    /// <summary>Removes the files of matching messages and tells the client, highest sequence number first.</summary>
    private void ExpungeWhere(Func<SelectedMessage, bool> which, bool countQuota = true)
    {
        var s = _selected!;
        long bytes = 0, count = 0;
        var vanishedUids = new List<uint>();
        for (int i = s.Messages.Count - 1; i >= 0; i--)
        {
            var m = s.Messages[i];
            if (!which(m)) continue;
            try
            {
                // One another session removed first is not counted again against the quota.
                if (s.Folder.Delete(m.File) is { } removed)
                {
                    bytes += MaildirQuota.SizeFromName(removed) ?? 0;
                    count++;
                }
            }
            catch (IOException e) { Log.Error($"{conn.SessionId}: user=<{MailLog.Safe(_user!.User)}> cannot expunge {m.File.FileName}: {MailLog.Safe(e.Message)}"); }
            s.Messages.RemoveAt(i);
            if (s.Vanished) vanishedUids.Add(m.Uid);
            else conn.BufferLine($"* {i + 1} EXPUNGE");
        }
        if (vanishedUids.Count > 0) conn.BufferLine("* VANISHED " + SequenceSet.Compact(vanishedUids.Order()));
        if (countQuota && count > 0) MaildirQuota.Add(_user!.Maildir, -bytes, -count);
        s.ModSeqs.Observe(s.Folder.Sync(takeNew: false)); // drops the UIDs from dovecot-uidlist, records the expunges
    }

    private async Task<ImapResponse> ExpungeAsync(Args args, bool uid)
    {
        SequenceSet? set = null;
        if (uid) { args.Space(); set = args.SequenceSet(); } // RFC 4315 2.1: UID EXPUNGE sequence-set
        args.End();
        if (_selected!.ReadOnly) return ImapResponse.No("Mailbox is read-only.");
        await SendUpdatesAsync(allowExpunge: true);
        ExpungeDeleted(set);
        return ImapResponse.Ok("Expunge completed.");
    }

    // ---- IDLE ----

    private async Task<ImapResponse> IdleAsync()
    {
        using var signal = new SemaphoreSlim(0);
        using var subscription = _selected != null ? options.Hub.Subscribe(_selected.Folder.Path, () => { try { signal.Release(); } catch (ObjectDisposedException) { } }) : null;
        await conn.WriteLineAsync("+ idling");
        // What changed before the watch began is told now.
        await SendUpdatesAsync(allowExpunge: true);
        await conn.FlushAsync();
        var read = conn.ReadLineAsync().AsTask();
        while (true)
        {
            var wake = signal.WaitAsync();
            var done = await Task.WhenAny(read, wake);
            if (done == read)
            {
                var line = await read;
                if (!line.IsLine) return ImapResponse.None.AndClose();
                if (!line.Text.Equals("DONE", StringComparison.OrdinalIgnoreCase)) return ImapResponse.Bad("Expected DONE.");
                return ImapResponse.Ok("Idle completed.");
            }
            // Let a burst of changes settle into one report.
            await Task.Delay(20);
            while (signal.CurrentCount > 0) await signal.WaitAsync();
            await SendUpdatesAsync(allowExpunge: true);
            await conn.FlushAsync();
        }
    }
}
