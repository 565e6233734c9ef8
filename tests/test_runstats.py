"""Run-level interval of the median, the between-runs stability rule and jitter, on simulated runs."""
import math

import numpy as np
import pytest

from overhead.harness import interval, stats


def simulated_runs(seed, n_runs=3, n=60, tau=0.0, sigma=0.3, median=100.0):
    """Lognormal calls with per-run offsets N(0, tau) in log: the mixture's true median is `median`."""
    rng = np.random.default_rng(seed)
    return [median * np.exp(o + rng.normal(0, sigma, n)) for o in rng.normal(0, tau, n_runs)]


def coverage(n_runs, tau, seeds=200):
    hit = 0
    for s in range(seeds):
        lo, hi = interval.median_ci(simulated_runs(s, n_runs, tau=tau), n_boot=400)
        hit += lo <= 100.0 <= hi
    return hit / seeds


def test_coverage_when_runs_agree_is_close_to_95_percent():
    assert 0.90 <= coverage(3, tau=0.0) <= 0.99


def test_coverage_when_runs_disagree_beats_the_pooled_interval():
    hier = coverage(5, tau=0.08)
    pooled = np.mean([(lambda lo, hi: lo <= 100 <= hi)(*interval.order_statistic_ci(np.concatenate(
        simulated_runs(s, 5, tau=0.08)))) for s in range(200)])
    assert pooled < 0.75  # pooling runs as one sample is overconfident here ...
    assert 0.80 <= hier <= 0.99 and hier > pooled + 0.1  # ... the run-level interval is not


def test_interval_is_close_to_pooled_when_runs_agree_and_spans_runs_when_they_disagree():
    ratios = []
    for seed in range(20):
        agree = simulated_runs(seed, 3, n=200)
        lo, hi = interval.median_ci(agree, n_boot=500)
        plo, phi = interval.order_statistic_ci(np.concatenate(agree))
        ratios.append((hi - lo) / (phi - plo))
        assert lo < np.median(np.concatenate(agree)) < hi
    assert 0.8 < np.median(ratios) < 1.3  # agreeing runs: about the pooled interval
    apart = [r * f for r, f in zip(simulated_runs(1, 3, n=200), (0.8, 1.0, 1.25))]
    lo, hi = interval.median_ci(apart)
    plo, phi = interval.order_statistic_ci(np.concatenate(apart))
    assert interval.shrink_factor(apart) > 0.9
    assert (hi - lo) > 4 * (phi - plo)
    meds = sorted(np.median(r) for r in apart)
    assert lo < meds[1] < hi and lo < 1.05 * meds[0] and hi > 0.95 * meds[2]


def test_median_ci_is_deterministic_and_one_run_is_the_order_statistic_interval():
    runs = simulated_runs(3, 4)
    assert interval.median_ci(runs) == interval.median_ci(runs)
    assert interval.median_ci(runs, seed=1) != interval.median_ci(runs, seed=2)
    one = simulated_runs(3, 1)[0]
    assert interval.median_ci(one) == interval.order_statistic_ci(one) == interval.median_ci([one])
    assert all(math.isnan(v) for v in interval.median_ci([1.0, 2.0, 3.0]))
    assert all(math.isnan(v) for v in interval.median_ci([]))


def test_order_statistic_interval_on_known_samples():
    # n = 5: the widest pair (min, max) covers the median with 1 - 2/32 = 93.75 % < 95 %: no interval
    assert all(math.isnan(v) for v in interval.order_statistic_ci([1, 2, 3, 4, 5]))
    # n = 6: (min, max) covers 62/64 = 96.9 %, (X(2), X(5)) 50/64 = 78.1 %; Hettmansperger-Sheather
    # interpolate with I = (0.96875 - 0.95) / (0.96875 - 0.78125) = 0.1, lambda = 5 I / (1 + 4 I)
    lam = 5 * 0.1 / (1 + 4 * 0.1)
    lo, hi = interval.order_statistic_ci([6, 1, 5, 2, 4, 3])
    assert lo == pytest.approx(1 + lam) and hi == pytest.approx(6 - lam)
    # n = 100: the exact pair is (X(40), X(61)) at 96.5 %; interpolation moves inwards by < 1 rank
    lo, hi = interval.order_statistic_ci(np.arange(1, 101))
    assert 40 <= lo < 41 and 60 < hi <= 61 and lo + hi == pytest.approx(101)


@pytest.mark.parametrize("n", [6, 20, 60, 600])
def test_one_run_interval_covers_the_true_median_95_percent_of_the_time(n):
    """Many samples of a known lognormal at the sizes the sweep produces: coverage near 95 %."""
    rng = np.random.default_rng(n)
    x = rng.lognormal(4.0, 0.5, size=(1500, n))
    hits = sum(lo <= math.exp(4.0) <= hi for lo, hi in map(interval.median_ci, x))
    assert 0.93 <= hits / 1500 <= 0.97, hits / 1500


def test_runs_that_agree_are_stable():
    runs = simulated_runs(5, 3, n=200)
    assert stats.disagreement(runs) == []
    row = stats.run_level(np.concatenate(runs), [200, 200, 200])
    assert row["unstable"] is False and row["unstable_reason"] == "" and row["run_spread"] < 0.1


def test_runs_that_disagree_are_unstable_with_the_pair_named():
    runs = simulated_runs(5, 3, n=200)
    runs[2] = runs[2] * 1.2
    reasons = stats.disagreement(runs)
    assert len(reasons) == 1 and "runs" in reasons[0] and "and 3 disagree" in reasons[0]
    assert "intervals do not overlap" in reasons[0]
    row = stats.run_level(np.concatenate(runs), [200, 200, 200])
    assert row["unstable"] is True and row["run_spread"] > 0.1


def test_both_conditions_are_needed():
    rng = np.random.default_rng(0)
    # medians 8 % apart but each run so noisy (n = 8) that the intervals overlap: not unstable
    noisy = [100 * np.exp(rng.normal(0, 0.5, 8)) for _ in range(2)]
    noisy[1] = noisy[0] * 1.08
    assert stats.disagreement(noisy) == []
    # intervals disjoint (tight runs) but medians only 3 % apart: not unstable
    tight = [100 + rng.normal(0, 0.1, 500), 103 + rng.normal(0, 0.1, 500)]
    assert stats.disagreement(tight) == []
    assert stats.disagreement([tight[0], tight[1] * 1.03])  # 6 %: now both hold


def test_too_few_runs_or_calls_are_reported():
    one = simulated_runs(0, 1)
    assert "only 1 run(s) < 2" in stats.disagreement(one)[0]
    assert "fewer than 6 calls" in stats.disagreement([np.ones(4), np.ones(50)])[0]
    assert stats.disagreement(simulated_runs(0, 2), min_runs=3)[0].startswith("only 2 run(s) < 3")


def test_jitter_is_per_call_spread_and_split_runs_checks_lengths():
    x = np.r_[np.full(90, 10.0), np.full(10, 30.0)]
    j = stats.jitter(x)
    assert j["jitter_p90"] == pytest.approx(1.0 + 2.0 * 0.1 * 0.0, abs=0.21) and j["jitter_p99"] == 3.0
    assert [len(r) for r in stats.split_runs(np.arange(10), [3, 7])] == [3, 7]
    with pytest.raises(ValueError, match="do not add up"):
        stats.split_runs(np.arange(10), [3, 3])
