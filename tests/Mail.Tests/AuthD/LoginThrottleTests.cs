using Mail.AuthD;

namespace Mail.Tests.AuthD;

public sealed class LoginThrottleTests
{
    private DateTime _now = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private LoginThrottle Make() => new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8), TimeSpan.FromMinutes(15), () => _now);

    [Test]
    public void Delay_doubles_per_failure_up_to_the_maximum()
    {
        var t = Make();
        var delays = Enumerable.Range(0, 6).Select(_ => t.Failure("192.0.2.1", "bob@x.org").TotalSeconds).ToArray();
        Assert.That(delays, Is.EqualTo(new double[] { 1, 2, 4, 8, 8, 8 }));
    }

    [Test]
    public void Delay_follows_the_user_across_ips_and_the_ip_across_users()
    {
        var t = Make();
        t.Failure("192.0.2.1", "bob@x.org");
        t.Failure("192.0.2.2", "bob@x.org");
        Assert.That(t.Failure("192.0.2.3", "bob@x.org"), Is.EqualTo(TimeSpan.FromSeconds(4)));
        t.Failure("198.51.100.1", "a@x.org");
        t.Failure("198.51.100.1", "b@x.org");
        Assert.That(t.Failure("198.51.100.1", "c@x.org"), Is.EqualTo(TimeSpan.FromSeconds(4)));
    }

    [Test]
    public void Success_clears_the_user_and_old_failures_expire()
    {
        var t = Make();
        t.Failure("192.0.2.1", "bob@x.org");
        t.Failure("192.0.2.1", "bob@x.org");
        t.Success("bob@x.org");
        Assert.That(t.Count("user:bob@x.org"), Is.EqualTo(0));
        Assert.That(t.Count("ip:192.0.2.1"), Is.EqualTo(2));
        _now = _now.AddMinutes(16);
        Assert.That(t.Failure("192.0.2.1", "bob@x.org"), Is.EqualTo(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public void Memory_stays_bounded_under_a_spray_of_addresses()
    {
        var t = Make();
        for (int i = 0; i < LoginThrottle.Capacity * 2; i++)
        {
            t.Failure($"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", null);
            _now = _now.AddTicks(1);
        }
        Assert.That(t.Count("ip:10.0.0.0"), Is.EqualTo(0), "oldest entries were dropped");
        Assert.That(t.Size, Is.LessThanOrEqualTo(LoginThrottle.Capacity));
    }
}
