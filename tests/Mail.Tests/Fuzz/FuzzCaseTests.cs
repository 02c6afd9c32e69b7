using Mail.Fuzz;
using Mail.Tests.Support;

namespace Mail.Tests.Fuzz;

/// <summary>
/// Every seed and every kept finding of the fuzz targets (fuzz/seeds, fuzz/cases) goes through its
/// target, uninstrumented: none may throw, break a target's property or hang.
/// </summary>
public sealed class FuzzCaseTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var kind in new[] { "seeds", "cases" })
        {
            var root = Path.Combine(Repo.Root, "fuzz", kind);
            if (!Directory.Exists(root)) continue;
            foreach (var dir in Directory.GetDirectories(root).Order())
                foreach (var file in Directory.GetFiles(dir).Order())
                {
                    var target = Path.GetFileName(dir);
                    yield return new TestCaseData(target, Path.GetRelativePath(Repo.Root, file))
                        .SetName($"Fuzz_{kind}({target}, {Path.GetFileName(file)})");
                }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public async Task Each_kept_input_passes_its_target(string target, string file)
    {
        Assert.That(Targets.All.ContainsKey(target), Is.True, $"no target {target}");
        var input = File.ReadAllBytes(Path.Combine(Repo.Root, file));
        var run = Task.Run(() => Targets.All[target](input));
        Assert.That(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))), Is.SameAs(run), "the target hangs");
        await run; // rethrows a finding
    }
}
