from dfd_kit.inference.budget import TimeBudget


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_no_budget_always_grants_full_frames():
    b = TimeBudget(None, frames=17)
    assert b.grant(1000) == 17


def test_degrades_then_writes_prior():
    clock = FakeClock()
    b = TimeBudget(100.0, frames=17, min_frames=2, reserve=5.0, safety=1.0, clock=clock)
    assert b.grant(10) == 17  # nothing measured yet
    clock.t += 17.0  # 1 s per frame
    b.record(17)
    # 100 - 5 - 17 = 78 s left for 9 videos: 8.67 s each -> 8 frames
    assert b.grant(9) == 8
    clock.t += 8.0
    b.record(8)
    assert b.seconds_per_frame() == 1.0
    clock.t = 93.0  # 2 s left, 5 videos: 0.4 frames each -> below min_frames -> prior
    assert b.grant(5) == 0
    clock.t = 96.0  # past the deadline minus the reserve
    assert b.left < 0 and b.grant(1) == 0


def test_fallback_rows_do_not_count_as_frames():
    clock = FakeClock()
    b = TimeBudget(60.0, frames=10, clock=clock)
    clock.t += 3.0
    b.record(0)
    assert b.seconds_per_frame() is None
    clock.t += 5.0
    b.record(10)
    assert b.seconds_per_frame() == 0.5
