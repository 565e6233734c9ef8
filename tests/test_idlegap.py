
import numpy as np
import pandas as pd
import pytest

from overhead.experiments import idlegap
from overhead.report.idle import verdict


def test_summary_uses_the_one_median_interval():
    """The interval is overhead.harness.interval.median_ci (one child = one run); its coverage is tested there."""
    from overhead.harness import interval

    x = np.random.default_rng(0).lognormal(0.0, 0.5, 57) * 1e3
    s = idlegap.summarize(x)
    assert (s["ci_lo_us"], s["ci_hi_us"]) == interval.median_ci(x / 1e3) and s["n"] == 57
    assert np.isnan(idlegap.summarize([1e3, 2e3, 3e3])["ci_lo_us"])


def test_measure_gaps_sleeps_before_each_timed_call_and_primes_each_block():
    calls, slept = [], []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    ticks = iter(range(0, 10**6, 5))
    got = idlegap.measure_gaps(fns, (0, 10), calls=4, rounds=3, sleep=slept.append,
                               clock=lambda: next(ticks))
    assert set(got) == {("a", 0), ("a", 10), ("b", 0), ("b", 10)}
    assert all(len(v) == 12 and (v == 5).all() for v in got.values())
    assert calls.count("a") == calls.count("b") == 3 * 2 * (1 + 4)
    assert slept == [0.01] * (2 * 3 * 4)


def _frame(rows):
    cols = ["model", "backend", "threads", "gap_ms", "median_us", "ci_lo_us", "ci_hi_us"]
    df = pd.DataFrame(rows, columns=cols)
    df["status"] = "ok"
    return df


def test_verdict_finds_ranking_and_thread_changes():
    rows = []
    for t, (a0, a100, b0, b100) in {1: (100, 300, 150, 160), 2: (80, 400, 120, 130)}.items():
        rows += [("m", "a", t, 0, a0, a0 * .95, a0 * 1.05), ("m", "a", t, 100, a100, a100 * .95, a100 * 1.05),
                 ("m", "b", t, 0, b0, b0 * .95, b0 * 1.05), ("m", "b", t, 100, b100, b100 * .95, b100 * 1.05)]
    v = verdict(_frame(rows))
    r = {(x["threads"], x["gap_ms"]): x for x in v["ranking"]}
    assert r[(1, 100)]["fastest_gap0"] == "a" and r[(1, 100)]["fastest_at_gap"] == "b"
    assert r[(1, 100)]["clear"] and v["fastest_changes_clearly"]
    assert r[(1, 100)]["slowdown_of_fastest_gap0"] == pytest.approx(3.0)
    th = {(x["backend"]): x for x in v["threads"]}
    assert th["a"]["best_threads_gap0"] == 2 and th["a"]["best_threads_at_gap"] == 1 and th["a"]["clear"]
    assert not th["b"]["changed"]
    assert v["best_threads_changes_clearly"] == ["a"]


def test_verdict_no_change_when_order_is_kept():
    rows = [("m", "a", 1, g, 10 + g, 9 + g, 11 + g) for g in (0, 1, 10)] + \
           [("m", "b", 1, g, 50 + g, 49 + g, 51 + g) for g in (0, 1, 10)]
    v = verdict(_frame(rows))
    assert not v["fastest_changes"] and v["threads"] == [] and v["best_threads_changes"] == []


# The quick real run (idlegap.run(quick=True) in fresh workers, writing idle_gap.csv + meta) is checked where it
# already runs: the benchmark notebook's smoke test reads its idle_gap.csv row by row (a second run here cost
# ~16 s of TensorFlow workers on the loaded Zen 3 VM for the same path).


@pytest.mark.slow  # fresh worker processes with TensorFlow
def test_failures_are_rows_not_crashes(data_env, tmp_path):
    rows = idlegap.measure_in_children(idlegap.IdleGapJob(str(tmp_path / "missing.keras"), 1, ("numpy",),
                                                          gaps_ms=(0, 10), calls=1, rounds=1))
    assert [r["status"] for r in rows] == ["failed", "failed"] and "child died" in rows[0]["reason"]
    rows = idlegap.measure_in_children(idlegap.IdleGapJob(str(data_env / "models" / "cnn_seed.keras"), 1,
                                                          ("no.such.path",), gaps_ms=(0,), calls=1, rounds=1))
    assert rows[0]["status"] == "failed" and "no.such.path" in rows[0]["reason"]


def test_a_path_that_raises_while_timed_is_dropped_not_fatal():
    def boom():
        raise RuntimeError("buffer donated")

    errors = {}
    got = idlegap.measure_gaps({"ok": lambda: None, "bad": boom}, (0, 1), calls=2, rounds=2,
                               sleep=lambda s: None, errors=errors)
    assert set(got) == {("ok", 0), ("ok", 1)} and all(len(v) == 4 for v in got.values())
    assert list(errors) == ["bad"] and "donated" in str(errors["bad"])
