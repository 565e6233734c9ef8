import gc
import math

import numpy as np
import pandas as pd
import pytest

from overhead.base import atomic
from overhead.harness import interval, stats, timing


class FakeClock:
    """A clock that only moves when the measured function says so: deterministic samples."""

    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now

    def advance_ms(self, ms):
        self.now += int(ms * 1_000_000)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(timing, "_clock", fake)
    return fake


# ----------------------------------------------------------------- summarize

def test_summarize_known_samples():
    s = stats.summarize(np.arange(1, 101) * 1000)  # 1..100 us in ns
    assert s["n"] == 100
    assert s["median_us"] == pytest.approx(50.5)
    assert s["min_us"] == pytest.approx(1.0)
    assert s["mean_us"] == pytest.approx(50.5)
    assert s["std_us"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s["p90_us"] == pytest.approx(90.1)
    assert s["p99_us"] == pytest.approx(99.01)
    assert s["mad_us"] == pytest.approx(25.0)
    assert s["cv"] == pytest.approx(s["std_us"] / 50.5)
    assert set(s) == {"n", "runs", "median_us", "p90_us", "p99_us", "min_us", "mean_us", "std_us",
                      "mad_us", "ci_lo_us", "ci_hi_us", "ci_method", "cv", "jitter_p90", "jitter_p99", "run_spread",
                      "unstable", "unstable_reason", "unstable_pyperf", "unstable_pyperf_reason"}
    assert s["runs"] == 1 and s["ci_method"] == interval.CI_METHOD


def test_mad_is_unscaled():
    s = stats.summarize(np.array([1, 1, 2, 2, 4, 6, 9]) * 1000)
    assert s["median_us"] == pytest.approx(2.0)
    assert s["mad_us"] == pytest.approx(1.0)  # a scaled MAD would be 1.4826


def test_summarize_rejects_empty():
    with pytest.raises(ValueError):
        stats.summarize([])


def test_single_sample_has_no_interval():
    s = stats.summarize([5000])
    assert s["n"] == 1 and s["std_us"] == 0.0 and s["median_us"] == 5.0
    assert math.isnan(s["ci_lo_us"]) and math.isnan(s["ci_hi_us"])  # no 95 % interval exists at n=1


def test_a_wrong_interval_method_would_fail_the_coverage_test():
    """The coverage test has teeth: [min, max] of 60 values (coverage ~100 %) and the mean +- 1 SE
    (~68 %) both fall outside 93-97 %."""
    rng = np.random.default_rng(1)
    x = rng.lognormal(4.0, 0.5, size=(1500, 60))
    true_median = math.exp(4.0)
    minmax = np.mean((x.min(1) <= true_median) & (true_median <= x.max(1)))
    se = x.std(1, ddof=1) / math.sqrt(60)
    med = np.median(x, 1)
    narrow = np.mean((med - se <= true_median) & (true_median <= med + se))
    assert minmax > 0.97 and narrow < 0.93


def _ci_width(n, seed=1):
    x = np.random.default_rng(seed).lognormal(mean=4.0, sigma=0.3, size=n) * 1000
    s = stats.summarize(x)
    assert s["ci_lo_us"] <= s["median_us"] <= s["ci_hi_us"]
    return s["ci_hi_us"] - s["ci_lo_us"]


def test_ci_contains_median_and_narrows_with_n():
    widths = [_ci_width(n) for n in (30, 1000, 50_000)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_ci_is_seeded():
    x = np.random.default_rng(3).normal(100, 10, 200) * 1000
    assert stats.summarize(x) == stats.summarize(x)


def test_unstable_flag_follows_pyperf_checks():
    steady = np.full(60, 2_000_000)  # 2 ms calls: every call is a value
    assert stats.summarize(steady)["unstable_pyperf"] is False and stats.summarize(steady)["cv"] == 0.0
    spread = np.tile([1_700_000, 2_300_000], 30)  # values' std = 15 % of the mean
    s = stats.summarize(spread)
    assert s["unstable_pyperf"] is True and "std is 15% of the mean" in s["unstable_pyperf_reason"]
    calm = np.tile([1_900_000, 2_100_000], 30)  # std 5 %
    assert stats.summarize(calm)["unstable_pyperf"] is False
    spike = np.r_[np.full(199, 2_000_000), 4_000_000]  # one value 2x the mean, std only 7 %
    s = stats.summarize(spike)
    assert s["unstable_pyperf"] is True and "max is" in s["unstable_pyperf_reason"] and "std" not in s["unstable_pyperf_reason"]
    dip = np.r_[np.full(199, 2_000_000), 900_000]
    assert "min is 55% below the mean" in stats.summarize(dip)["unstable_pyperf_reason"]


def test_short_calls_are_judged_in_blocks_of_a_millisecond():
    """pyperf warns about values under 1 ms; 10 us calls are judged as means of 100 consecutive calls,
    so one slow call among 100 is not 'max far from the mean', but a slow stretch is."""
    fast = np.full(3000, 10_000)
    fast[::100] = 40_000  # one 4x call per block: every block mean is the same
    assert stats.check_values(fast).size == 30
    assert stats.summarize(fast)["unstable_pyperf"] is False
    drift = fast.copy()
    drift[1500:] *= 2  # the second half of the run is twice as slow
    assert stats.summarize(drift)["unstable_pyperf"] is True


def test_runs_and_values_floors():
    x = np.full(3 * 25, 2_000_000)
    assert stats.summarize(x, [25, 25, 25], min_runs=3, min_values=20)["unstable"] is False
    s = stats.summarize(x[:50], [25, 25], min_runs=3, min_values=20)
    assert s["unstable"] is True and s["runs"] == 2 and "only 2 run(s) < 3" in s["unstable_reason"]
    assert s["unstable_pyperf"] is True and "only 2 run(s) < 3" in s["unstable_pyperf_reason"]
    s = stats.summarize(x, [60, 10, 5], min_runs=3, min_values=20)
    assert s["unstable_pyperf"] is True and "only 5 values in a run < 20" in s["unstable_pyperf_reason"]
    assert s["unstable"] is True and "fewer than 6 calls" in s["unstable_reason"]  # run 3: no interval
    with pytest.raises(ValueError):
        stats.summarize(x, [10, 10])


def test_between_run_differences_count_as_spread():
    """Three processes, each steady, one 30 % slower: pooled values are spread, as in pyperf; the runs
    disagree (the new rule) and the run-level interval reaches the slow run."""
    runs = np.r_[np.full(30, 2_000_000), np.full(30, 2_000_000), np.full(30, 2_600_000)]
    s = stats.summarize(runs, [30, 30, 30], min_runs=3, min_values=20)
    assert s["unstable_pyperf"] is True and "std is" in s["unstable_pyperf_reason"] and s["runs"] == 3
    assert s["unstable"] is True and "runs 1 and 3 disagree" in s["unstable_reason"]
    assert s["run_spread"] == pytest.approx(0.3) and s["ci_hi_us"] == pytest.approx(2600.0)


def test_jitter_is_not_instability():
    """Runs that agree but whose calls have a long tail: stable by the new rule, jitter reported,
    pyperf's check (std >= 10 % of the mean) calls it unstable."""
    rng = np.random.default_rng(0)
    runs = np.concatenate([2_000_000 * rng.lognormal(0, 0.4, 300) for _ in range(3)])
    s = stats.summarize(runs, [300, 300, 300], min_runs=3, min_values=20)
    assert s["unstable"] is False and s["unstable_pyperf"] is True
    assert s["jitter_p90"] > 1.4 and s["jitter_p99"] > s["jitter_p90"]


# ----------------------------------------------------------------- measure

def test_measure_stops_at_min_samples_when_budget_spent():
    samples = timing.measure(lambda: None, budget_s=0.0, min_samples=25, warmup_calls=0, warmup_s=0)
    assert samples.dtype == np.int64 and len(samples) == 25


def test_measure_stops_at_max_samples():
    samples = timing.measure(lambda: None, budget_s=30.0, min_samples=5, max_samples=40,
                             warmup_calls=0, warmup_s=0)
    assert len(samples) == 40


def test_measure_rejects_bad_bounds():
    with pytest.raises(ValueError):
        timing.measure(lambda: None, min_samples=10, max_samples=5)


def test_warmup_calls_are_discarded(clock):
    calls = []

    def fn():
        calls.append(len(calls))
        clock.advance_ms(100 if len(calls) <= 3 else 1)  # first calls are slow (cold)

    samples = timing.measure(fn, budget_s=0.0, min_samples=20, max_samples=20,
                             warmup_calls=3, warmup_s=0)
    assert len(calls) == 3 + 20
    assert np.all(samples == 1_000_000)  # none of the slow warm-up calls was kept


def test_warmup_needs_calls_and_seconds(clock):
    calls = []

    def fn():
        calls.append(1)
        clock.advance_ms(1)

    timing.measure(fn, budget_s=0.0, min_samples=1, max_samples=1, warmup_calls=2, warmup_s=0.010)
    assert len(calls) == 10 + 1  # 10 ms of warm-up dominates the 2 calls


def test_budget_controls_sample_count(clock):
    samples = timing.measure(lambda: clock.advance_ms(1), budget_s=0.050, min_samples=1,
                             warmup_calls=0, warmup_s=0)
    assert len(samples) == 50 and np.all(samples == 1_000_000)


def test_interleaving_rotates_order():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "abc"}
    out = timing.interleaved(fns, budget_s=0.0, rounds=3, min_samples=3, warmup_calls=0,
                             warmup_s=0, round_warmup_calls=0)
    assert log == list("abc" "bca" "cab")
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(v.dtype == np.int64 for v in out.values())


def test_interleaving_with_a_floor_per_function():
    fns = {name: (lambda: None) for name in ("fast", "slow")}
    out = timing.interleaved(fns, budget_s=0.0, rounds=5, min_samples={"fast": 200, "slow": 20},
                             warmup_calls=0, warmup_s=0, round_warmup_calls=0)
    assert len(out["fast"]) == 200 and len(out["slow"]) == 20


def test_interleaving_discards_warmups():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "ab"}
    out = timing.interleaved(fns, budget_s=0.0, rounds=2, min_samples=4, warmup_calls=3,
                             warmup_s=0, round_warmup_calls=1)
    assert log[:6] == list("aaabbb")
    assert log[6:] == list("aaa" "bbb" "bbb" "aaa")  # 1 discarded + 2 timed per turn
    assert len(out["a"]) == len(out["b"]) == 4


def test_gc_on_while_timing_and_collected_before_each_turn(monkeypatch):
    seen, collects = [], []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collects.append(1) or real_collect(*a))
    assert gc.isenabled()
    timing.measure(lambda: seen.append(gc.isenabled()), budget_s=0.0, min_samples=5,
                   warmup_calls=0, warmup_s=0)
    assert seen == [True] * 5 and len(collects) == 1
    collects.clear()
    fns = {name: (lambda: seen.append(gc.isenabled())) for name in "ab"}
    timing.interleaved(fns, budget_s=0.0, rounds=3, min_samples=3, warmup_calls=0, warmup_s=0)
    assert all(seen) and len(collects) == 2 * 3  # one collection per turn
    assert gc.isenabled()


def test_measure_leaves_the_gc_state_as_it_found_it():
    calls = []

    def boom():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("mid-measurement failure")

    with pytest.raises(RuntimeError):
        timing.measure(boom, budget_s=1.0, min_samples=10, warmup_calls=0, warmup_s=0)
    assert gc.isenabled()
    gc.disable()
    try:
        timing.measure(lambda: None, budget_s=0.0, min_samples=2, warmup_calls=0, warmup_s=0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_timer_overhead_and_gemm_are_positive():
    overhead = timing.timer_overhead_ns(budget_s=0.02)
    assert math.isfinite(overhead) and overhead > 0
    rate = timing.gemm_gflops(n=64, threads=1, repeats=2)
    assert math.isfinite(rate) and rate > 0


# ----------------------------------------------------------------- files

def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_text_and_bytes(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic.atomic_write_text(target, "one")
    atomic.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_atomic_write_leaves_no_partial_file(tmp_path):
    existing = tmp_path / "old.txt"
    existing.write_text("complete old content")
    for target in (existing, tmp_path / "new.txt"):
        with pytest.raises(RuntimeError):
            with atomic.atomic_open(target) as fh:
                fh.write("half of the new con")
                raise RuntimeError("writer died")
    assert existing.read_text() == "complete old content"
    assert not (tmp_path / "new.txt").exists()
    assert _leftovers(tmp_path) == []


def test_atomic_write_csv_round_trip_and_failure(tmp_path):
    df = pd.DataFrame({"model": ["logreg", "mlp"], "median_us": [1.5, 20.25]})
    path = atomic.atomic_write_csv(df, tmp_path / "bench.csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), df)

    class Broken:
        def to_csv(self, fh, **kw):
            fh.write("model,median_us\nlogreg,")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_csv(Broken(), tmp_path / "bench.csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), df)
    assert _leftovers(tmp_path) == []


def test_unwritable_directory_gives_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(atomic.UnwritableDirectoryError, match="a_file"):
        atomic.atomic_write_text(blocker / "out.txt", "x")
    with pytest.raises(OSError):  # it is also an OSError for generic handlers
        atomic.save_samples(blocker / "deeper" / "s.npz", {"a": np.arange(3)})


def test_save_load_samples_round_trip(tmp_path):
    data = {"keras.predict": np.array([5, 7, 9], dtype=np.int64),
            "numpy": np.arange(1000, dtype=np.int64) * 1000}
    path = atomic.save_samples(tmp_path / "samples" / "logreg_b1_t1.npz", data)
    back = atomic.load_samples(path)
    assert set(back) == set(data)
    for name, values in data.items():
        assert back[name].dtype == np.int64
        np.testing.assert_array_equal(back[name], values)
    assert _leftovers(path.parent) == []
