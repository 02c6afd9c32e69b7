using Mail.ImapPop.Imap;

namespace Mail.Tests.Imap;

/// <summary>Sequence sets name the same messages whether resolved by runs or checked one message at a time.</summary>
public sealed class SequenceSetTests
{
    [Test]
    public void Resolving_by_runs_names_what_membership_names()
    {
        var rng = new Random(12345);
        for (int round = 0; round < 2000; round++)
        {
            int count = rng.Next(0, 40);
            var uids = new List<uint>();
            uint next = (uint)rng.Next(1, 5);
            for (int i = 0; i < count; i++) { uids.Add(next); next += (uint)rng.Next(1, 4); }
            string Value() => rng.Next(6) == 0 ? "*" : rng.Next(1, (int)next + 3).ToString();
            var text = string.Join(',', Enumerable.Range(0, rng.Next(1, 4)).Select(_ => rng.Next(2) == 0 ? Value() : Value() + ":" + Value()));
            Assert.That(SequenceSet.TryParse(text, out var set), Is.True, text);
            foreach (var byUid in new[] { false, true })
            {
                uint max = count == 0 ? 0 : byUid ? uids[^1] : (uint)count;
                var expected = Enumerable.Range(1, count).Where(seq => set.Contains(byUid ? uids[seq - 1] : (uint)seq, max)).ToList();
                var actual = set.Resolve(count, byUid ? i => uids[i] : null);
                Assert.That(actual, Is.EqualTo(expected), $"{(byUid ? "UID " : "")}{text} over [{string.Join(',', uids)}]");
            }
        }
    }
}
