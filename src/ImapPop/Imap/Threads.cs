// THREAD's algorithms (RFC 5256 3): ORDEREDSUBJECT, and REFERENCES (the
// message-id tree of References and In-Reply-To, dummies pruned, roots of one
// base subject gathered, siblings by sent date). A thread can be as deep as
// the mailbox is large, so the tree is walked with explicit stacks, never by
// recursion.
using System.Text;

namespace Mail.ImapPop.Imap;

internal sealed class ThreadNode(int position, SortKeys? keys)
{
    /// <summary>The message's position (0-based), or -1 for a dummy: a message-id referred to but not in the result.</summary>
    public int Position { get; set; } = position;
    public SortKeys? Keys { get; set; } = keys;
    public ThreadNode? Parent { get; set; }
    public List<ThreadNode> Children { get; set; } = [];
    public bool IsDummy => Position < 0;
    /// <summary>What siblings are ordered by: the sent date and position of the message, or of a dummy's first child.</summary>
    public (long Date, int Position) Order { get; set; }
}

internal static class Threads
{
    /// <summary>How far up a loop check looks (a chain deeper than this is linked without it).</summary>
    private const int MaxAncestors = 10_000;

    public static List<ThreadNode> OrderedSubject(List<int> positions, SortKeys[] keys)
    {
        var roots = new List<ThreadNode>();
        foreach (var group in Enumerable.Range(0, positions.Count).GroupBy(i => keys[i].Subject, StringComparer.Ordinal))
        {
            var members = group.OrderBy(i => keys[i].Date).ThenBy(i => positions[i]).ToList();
            var root = new ThreadNode(positions[members[0]], keys[members[0]]) { Order = (keys[members[0]].Date, positions[members[0]]) };
            foreach (var i in members.Skip(1)) root.Children.Add(new ThreadNode(positions[i], keys[i]) { Parent = root });
            roots.Add(root);
        }
        roots.Sort((a, b) => a.Order.CompareTo(b.Order));
        return roots;
    }

    public static List<ThreadNode> References(List<int> positions, SortKeys[] keys)
    {
        // (1) Containers by message-id, linked as References says.
        var table = new Dictionary<string, ThreadNode>(StringComparer.Ordinal);
        var all = new List<ThreadNode>(positions.Count);
        for (int i = 0; i < positions.Count; i++)
        {
            var k = keys[i];
            ThreadNode node;
            if (k.MessageId != null && table.TryGetValue(k.MessageId, out var known) && known.IsDummy)
            {
                node = known;
                node.Position = positions[i];
                node.Keys = k;
            }
            else
            {
                // No Message-ID, or one another message has: a container of its own.
                node = new ThreadNode(positions[i], k);
                all.Add(node);
                if (k.MessageId != null && !table.ContainsKey(k.MessageId)) table[k.MessageId] = node;
            }
            ThreadNode? previous = null;
            foreach (var id in k.Parents)
            {
                if (!table.TryGetValue(id, out var c))
                {
                    table[id] = c = new ThreadNode(-1, null);
                    all.Add(c);
                }
                // Each reference the child of the one before, unless already linked or a loop.
                if (previous != null && c.Parent == null && !IsAncestorOrSelf(c, previous)) Link(previous, c);
                previous = c;
            }
            // The message a child of its last reference: any link made before is broken, and
            // the new one not made if it would close a loop (as Dovecot).
            if (previous != null)
            {
                Unlink(node);
                if (!IsAncestorOrSelf(node, previous)) Link(previous, node);
            }
        }
        // (2)-(4) The root set, dummies pruned.
        var roots = all.Where(n => n.Parent == null).ToList();
        foreach (var n in PostOrder(roots))
        {
            var kept = new List<ThreadNode>(n.Children.Count);
            foreach (var c in n.Children)
            {
                if (!c.IsDummy) { kept.Add(c); continue; }
                foreach (var g in c.Children) { g.Parent = n; kept.Add(g); } // a dummy below the root: its children take its place
            }
            n.Children = kept;
        }
        var top = new List<ThreadNode>(roots.Count);
        foreach (var r in roots)
        {
            if (!r.IsDummy || r.Children.Count > 1) { top.Add(r); continue; }
            foreach (var c in r.Children) { c.Parent = null; top.Add(c); } // only a lone child is promoted to the root
        }
        // (5) Roots by date, then (6) roots of one base subject gathered.
        SortSiblings(top);
        top = GatherBySubject(top);
        // (7) Every set of siblings by sent date.
        SortSiblings(top);
        return top;
    }

    private static void Link(ThreadNode parent, ThreadNode child)
    {
        child.Parent = parent;
        parent.Children.Add(child);
    }

    private static void Unlink(ThreadNode node)
    {
        if (node.Parent == null) return;
        node.Parent.Children.Remove(node);
        node.Parent = null;
    }

    /// <summary>Is <paramref name="a"/> <paramref name="b"/> or above it?</summary>
    private static bool IsAncestorOrSelf(ThreadNode a, ThreadNode b)
    {
        int steps = 0;
        for (var n = b; n != null && steps < MaxAncestors; n = n.Parent, steps++)
            if (ReferenceEquals(n, a)) return true;
        return false;
    }

    /// <summary>Every node under <paramref name="roots"/>, children before their parent.</summary>
    private static List<ThreadNode> PostOrder(List<ThreadNode> roots)
    {
        var order = new List<ThreadNode>();
        var stack = new Stack<(ThreadNode Node, bool Expanded)>();
        for (int i = roots.Count - 1; i >= 0; i--) stack.Push((roots[i], false));
        while (stack.Count > 0)
        {
            var (node, expanded) = stack.Pop();
            if (expanded) { order.Add(node); continue; }
            stack.Push((node, true));
            for (int i = node.Children.Count - 1; i >= 0; i--) stack.Push((node.Children[i], false));
        }
        return order;
    }

    /// <summary>Each node's children by (date, position), a dummy taking its first child's; then the list itself.</summary>
    private static void SortSiblings(List<ThreadNode> top)
    {
        foreach (var n in PostOrder(top))
        {
            n.Children.Sort((a, b) => a.Order.CompareTo(b.Order));
            n.Order = n.IsDummy ? (n.Children.Count > 0 ? n.Children[0].Order : (long.MaxValue, int.MaxValue)) : (n.Keys!.Date, n.Position);
        }
        top.Sort((a, b) => a.Order.CompareTo(b.Order));
    }

    private static SortKeys? SubjectKeys(ThreadNode n) => n.IsDummy ? (n.Children.Count > 0 ? n.Children[0].Keys : null) : n.Keys;

    /// <summary>RFC 5256 3 (6): roots whose base subjects are the same become one thread.</summary>
    private static List<ThreadNode> GatherBySubject(List<ThreadNode> top)
    {
        var bySubject = new Dictionary<string, ThreadNode>(StringComparer.Ordinal);
        foreach (var r in top)
        {
            if (SubjectKeys(r) is not { Subject.Length: > 0 } k) continue;
            if (!bySubject.TryGetValue(k.Subject, out var had)
                || (r.IsDummy && !had.IsDummy)
                || (!had.IsDummy && SubjectKeys(had)!.IsReply && !k.IsReply))
                bySubject[k.Subject] = r;
        }
        // Each root joins the thread of the one its subject names; that one may be replaced by a
        // dummy holding both. The roots keep their places, the ones merged away gone.
        var replaced = new Dictionary<ThreadNode, ThreadNode>(ReferenceEqualityComparer.Instance);
        var merged = new HashSet<ThreadNode>(ReferenceEqualityComparer.Instance);
        foreach (var r in top)
        {
            if (SubjectKeys(r) is not { Subject.Length: > 0 } k || !bySubject.TryGetValue(k.Subject, out var first) || ReferenceEquals(first, r)) continue;
            var target = replaced.GetValueOrDefault(first, first);
            merged.Add(r);
            if (target.IsDummy && r.IsDummy)
            {
                foreach (var c in r.Children) Link(target, c);
                r.Children = [];
            }
            else if (target.IsDummy) Link(target, r);
            else if (r.IsDummy) { Link(r, target); replaced[first] = r; } // the dummy takes the message's place
            else if (k.IsReply && !SubjectKeys(target)!.IsReply) Link(target, r);
            else
            {
                var dummy = new ThreadNode(-1, null);
                Link(dummy, target);
                Link(dummy, r);
                replaced[first] = dummy;
            }
        }
        return top.Where(r => !merged.Contains(r)).Select(r => replaced.GetValueOrDefault(r, r)).ToList();
    }

    /// <summary>The threads as THREAD writes them (RFC 5256 4): a chain as numbers, a branch as nested lists.</summary>
    public static void Write(StringBuilder sb, List<ThreadNode> roots, Func<int, string> number)
    {
        var stack = new Stack<ThreadNode?>(); // null: close a list
        for (int i = roots.Count - 1; i >= 0; i--) stack.Push(roots[i]);
        while (stack.Count > 0)
        {
            var node = stack.Pop();
            if (node == null) { sb.Append(')'); continue; }
            sb.Append('(');
            bool wrote = false;
            var cur = node;
            while (true)
            {
                if (!cur.IsDummy)
                {
                    if (wrote) sb.Append(' ');
                    sb.Append(number(cur.Position));
                    wrote = true;
                }
                if (cur.Children.Count == 1) { cur = cur.Children[0]; continue; }
                if (cur.Children.Count > 1 && wrote) sb.Append(' ');
                stack.Push(null);
                for (int i = cur.Children.Count - 1; i >= 0; i--) stack.Push(cur.Children[i]);
                break;
            }
        }
    }
}
