"""The one statistics module: the median and its interval, percentiles, and the stability rule.

Statistics (:func:`summarize`): the median with a distribution-free 95 % interval (:data:`CI_METHOD`,
the order-statistic interval of the median, valid at any n >= 6 for independent values) and
pyperf's stability checks (:func:`stability_reasons`). The remedy for an unstable row is more runs
(fresh processes), never keeping the calmer attempt: see :mod:`overhead.experiments.sweep`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CI_LEVEL = 0.95
CI_MIN_N = 6  # below this no pair of order statistics covers the median with 95 % probability
CI_METHOD = ("order-statistic 95% CI of the median (binomial, Hettmansperger-Sheather interpolation; "
             "distribution-free, valid at any n>=6), pooled over runs")
# pyperf's stability checks (`pyperf check`): std >= 10 % of the mean, min or max >= 50 % away from the
# mean, on "values" lasting >= 1 ms (pyperf warns about raw values shorter than 1 ms); plus our floor
# on runs and values per run.
UNSTABLE_CV = 0.10
OUTLIER_FRACTION = 0.50
VALUE_MIN_NS = 1_000_000
MIN_RUNS = 3
MIN_VALUES = 20  # per run, slow paths

def cv_of(samples_ns) -> float:
    """Coefficient of variation std(ddof=1)/mean; 0 for fewer than two samples."""
    x = np.asarray(samples_ns, dtype=np.float64)
    if x.size < 2 or x.mean() == 0:
        return 0.0
    return float(x.std(ddof=1) / x.mean())


def _coverages(n: int) -> np.ndarray:
    """cov[k] = P(k <= B <= n - k), B ~ Binomial(n, 1/2): coverage of the order statistics (X(k), X(n-k+1)).

    Index 0 is unused; cov falls as k grows; k runs 1 .. n // 2 (+1, with coverage 0, as a sentinel).
    """
    from scipy.stats import binom

    ks = np.arange(1, n // 2 + 2)
    cdf = binom.cdf(np.arange(-1, n + 1), n, 0.5)  # cdf[j + 1] = P(B <= j)
    cov = np.where(2 * ks <= n, cdf[np.clip(n - ks, -1, n) + 1] - cdf[ks], 0.0)
    return np.concatenate([[1.0], cov])


def median_ci(values, level: float = CI_LEVEL) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (see :data:`CI_METHOD`).

    The largest k with P(k <= B <= n-k) >= level, B ~ Bin(n, 1/2), makes (X(k), X(n-k+1)) an exact
    interval whose coverage is at least `level`; Hettmansperger & Sheather (1986) interpolate
    between it and the next-narrower pair so the coverage is close to `level` instead of above it.
    NaN for n < CI_MIN_N (no pair reaches 95 %).
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    if n < 2:
        return math.nan, math.nan
    cov = _coverages(n)
    if cov[1] < level:
        return math.nan, math.nan
    k = int(np.nonzero(cov[1:] >= level)[0].max()) + 1
    g_k, g_next = cov[k], cov[k + 1]
    lower, upper = x[k - 1], x[n - k]
    if g_k > g_next and k < n - k:
        inter = (g_k - level) / (g_k - g_next)
        lam = (n - k) * inter / (k + (n - 2 * k) * inter)
        lower = lam * x[k] + (1 - lam) * x[k - 1]
        upper = lam * x[n - k - 1] + (1 - lam) * x[n - k]
    return float(lower), float(upper)


def check_values(samples, run_lengths: Sequence[int] | None = None,
                 min_value_ns: float = VALUE_MIN_NS) -> np.ndarray:
    """pyperf-style "values": means of consecutive calls lasting >= min_value_ns, within each run.

    pyperf judges stability on values that each last long enough for the clock and the scheduler
    not to dominate (it warns below 1 ms); a single 10 us call cannot be judged that way, a block of
    100 of them can. Calls of >= 1 ms are values on their own. Each run is cut into n // k blocks
    of (nearly) equal size, k = ceil(1 ms / median call), so no short remainder block is judged.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    if sum(lengths) != x.size:
        raise ValueError(f"run lengths {lengths} do not add up to {x.size} samples")
    med = float(np.median(x)) if x.size else 0.0
    k = max(1, math.ceil(min_value_ns / med)) if med > 0 else 1
    out, start = [], 0
    for n in lengths:
        run = x[start:start + n]
        start += n
        if n == 0:
            continue
        blocks = max(1, n // k)
        edges = np.linspace(0, n, blocks + 1).round().astype(int)
        out += [run[a:b].mean() for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return np.asarray(out, dtype=np.float64)


def stability_reasons(samples, run_lengths: Sequence[int] | None = None, *, min_runs: int = MIN_RUNS,
                      min_values: int = MIN_VALUES) -> list[str]:
    """pyperf's checks on a measurement; an empty list means stable.

    - too few runs (fresh processes) or fewer than `min_values` values per run;
    - the standard deviation of the values >= 10 % of their mean;
    - the minimum or the maximum value >= 50 % away from the mean.
    Values are :func:`check_values` (blocks of >= 1 ms), pooled over the runs, so between-process
    differences count as spread, as in pyperf, whose values come from many processes.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    reasons = []
    if len(lengths) < min_runs:
        reasons.append(f"only {len(lengths)} run(s) < {min_runs}")
    if lengths and min(lengths) < min_values:
        reasons.append(f"only {min(lengths)} values in a run < {min_values}")
    values = check_values(x, lengths)
    if values.size < 2:
        reasons.append(f"only {values.size} value(s) of >= {VALUE_MIN_NS / 1e6:g} ms to judge spread")
        return reasons
    mean = float(values.mean())
    if mean <= 0:
        return reasons
    cv = float(values.std(ddof=1)) / mean
    if cv >= UNSTABLE_CV:
        reasons.append(f"std is {cv:.0%} of the mean (>= {UNSTABLE_CV:.0%})")
    low, high = (mean - values.min()) / mean, (values.max() - mean) / mean
    if low >= OUTLIER_FRACTION:
        reasons.append(f"min is {low:.0%} below the mean")
    if high >= OUTLIER_FRACTION:
        reasons.append(f"max is {high:.0%} above the mean")
    return reasons


def summarize(samples_ns, run_lengths: Sequence[int] | None = None, *, min_runs: int = 1,
              min_values: int = 1) -> dict:
    """Statistics of per-call samples (ns in, microseconds out), pooled over runs.

    `run_lengths` splits the samples into runs (fresh processes, in order); None means one run.
    `mad_us` is the unscaled median absolute deviation, median(|x - median(x)|) (no 1.4826 factor).
    `ci_lo_us`/`ci_hi_us` bound the 95 % interval of the median (:data:`CI_METHOD`; NaN for n < 6);
    `cv` = std/mean of the calls (ddof=1); `unstable` / `unstable_reason` come from
    :func:`stability_reasons` with the given floors on runs and values per run.
    """
    x = np.asarray(samples_ns, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    reasons = stability_reasons(x, lengths, min_runs=min_runs, min_values=min_values)
    x = x / 1000.0
    median = float(np.median(x))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    ci_lo, ci_hi = median_ci(x)
    p90, p99 = np.percentile(x, [90, 99])
    cv = std / mean if mean > 0 else 0.0
    return {
        "n": int(x.size),
        "runs": len([n for n in lengths if n]),
        "median_us": median,
        "p90_us": float(p90),
        "p99_us": float(p99),
        "min_us": float(x.min()),
        "mean_us": mean,
        "std_us": std,
        "mad_us": float(np.median(np.abs(x - median))),
        "ci_lo_us": float(ci_lo),
        "ci_hi_us": float(ci_hi),
        "ci_method": CI_METHOD,
        "cv": float(cv),
        "unstable": bool(reasons),
        "unstable_reason": "; ".join(reasons),
    }


