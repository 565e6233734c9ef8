"""The one statistics module: the median's interval, the stability rule, jitter and percentiles.

A configuration is timed in several *runs* (fresh processes). Calls within a run are close to
independent; runs are not interchangeable (a process gets its own memory layout, thread placement,
neighbours), so pooling their calls as one sample understates the uncertainty of the median.

- :func:`median_ci` -- THE 95 % interval of the median used by every experiment. One run: the
  distribution-free order-statistic interval (:func:`order_statistic_ci`). Several runs: a seeded
  hierarchical bootstrap -- resample runs with replacement, then calls within each drawn run --
  with the run effects shrunk so that the between-run part of the spread is counted once
  (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, section 3.8). When runs agree
  the shrinkage is total and the interval is close to the pooled order-statistic one; when they
  disagree it widens to span the run medians. Coverage on simulated runs: see :data:`COVERAGE_NOTE`
  and tests/test_runstats.py.
- :func:`disagreement` -- the between-runs rule: a configuration is unstable when two of its runs
  disagree: their medians differ by more than :data:`MAX_RUN_DIFF` (5 %) AND their per-run intervals
  do not overlap. Adding runs can only add evidence of disagreement, never hide it.
- :func:`jitter` -- per-call spread (p90/median, p99/median): real information about the calls,
  reported on its own and never called instability.

Pure NumPy/SciPy; deterministic (fixed seed).
- :func:`summarize` -- the row of a configuration from its per-call samples and run lengths, with
  pyperf's checks (:func:`stability_reasons`) kept beside the rule as ``unstable_pyperf``. The remedy for
  an unstable row is more runs (fresh processes), never keeping the calmer attempt
  (:mod:`overhead.experiments.sweep`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LEVEL = 0.95
MIN_N = 6  # below this no pair of order statistics covers the median with 95 % probability
MAX_RUN_DIFF = 0.05  # run medians further apart than this (relative to the smaller) may disagree
N_BOOT = 2000
SEED = 0
CI_METHOD = ("95% CI of the median at the run level: hierarchical bootstrap (runs, then calls within each run; "
             "run effects shrunk to the between-run variance, Davison-Hinkley 3.8), 2000 resamples, seed 0; "
             "one run: order-statistic interval (Hettmansperger-Sheather)")
STABILITY_RULE = ("unstable when two runs' medians differ by more than 5 % and their 95 % intervals "
                  "(order-statistic, per run) do not overlap")
COVERAGE_NOTE = ("coverage of the true median on simulated runs (lognormal calls, sigma 0.3, 100 per run; "
                 "run offsets N(0, tau) in log; 200 seeds): runs that agree (tau 0, 3 runs) 95 % (pooled "
                 "order-statistic interval 95 %); tau 5 %: 86 % with 3 runs, 90 % with 5 or 8 runs, where the "
                 "pooled interval covers 77-80 %. A bootstrap over 3 runs cannot see the between-run tail, so "
                 "it stays below 95 % when runs disagree; more runs are the remedy. tests/test_runstats.py "
                 "asserts the bands.")


# --------------------------------------------------------------------------- splitting

def split_runs(samples, run_lengths: Sequence[int] | None = None) -> list[np.ndarray]:
    """The samples of each run (float64), from pooled samples and the run lengths (None: one run)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    if sum(lengths) != x.size or any(n < 0 for n in lengths):
        raise ValueError(f"run lengths {lengths} do not add up to {x.size} samples")
    return [a for a in np.split(x, np.cumsum(lengths)[:-1]) if a.size]


def _as_runs(runs) -> list[np.ndarray]:
    """A list of runs from a list of arrays, or one array (= one run)."""
    if isinstance(runs, np.ndarray) or (len(runs) and np.isscalar(runs[0])):
        runs = [runs]
    return [a for a in (np.asarray(r, dtype=np.float64).ravel() for r in runs) if a.size]


# --------------------------------------------------------------------------- intervals

def _coverages(n: int) -> np.ndarray:
    """cov[k] = P(k <= B <= n - k), B ~ Binomial(n, 1/2): coverage of the order statistics (X(k), X(n-k+1)).

    Index 0 is unused; cov falls as k grows; k runs 1 .. n // 2 (+1, with coverage 0, as a sentinel).
    """
    from scipy.stats import binom

    ks = np.arange(1, n // 2 + 2)
    cdf = binom.cdf(np.arange(-1, n + 1), n, 0.5)  # cdf[j + 1] = P(B <= j)
    cov = np.where(2 * ks <= n, cdf[np.clip(n - ks, -1, n) + 1] - cdf[ks], 0.0)
    return np.concatenate([[1.0], cov])


def order_statistic_ci(values, level: float = LEVEL) -> tuple[float, float]:
    """Distribution-free interval of the median of ONE sample of independent values (NaN for n < 6).

    The largest k with P(k <= B <= n-k) >= level, B ~ Bin(n, 1/2), makes (X(k), X(n-k+1)) an exact
    interval whose coverage is at least `level`; Hettmansperger & Sheather (1986) interpolate
    between it and the next-narrower pair so the coverage is close to `level` instead of above it.
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


def _median_var(x: np.ndarray) -> float:
    """Variance of one run's median, from its order-statistic interval (half-width / 1.96)^2."""
    lo, hi = order_statistic_ci(x)
    if math.isnan(lo):
        return float(np.var(x, ddof=1) * math.pi / 2 / x.size) if x.size > 1 else 0.0
    return ((hi - lo) / (2 * 1.959964)) ** 2


def shrink_factor(runs) -> float:
    """How much of the run medians' spread is between-run variance (1) rather than within-run noise (0).

    c^2 = min(1, max(0, s^2 - mean v_w) / s_R^2), where s^2 (ddof 1) and s_R^2 (ddof 0) are the variance of
    the run medians and v_w each run median's own variance: the bootstrap's resampled run effects then
    have the between-run variance estimated by moments, not that plus the within-run noise again.
    Capped at 1, so the resampled run medians never leave the range of the measured ones.
    """
    runs = _as_runs(runs)
    if len(runs) < 2:
        return 0.0
    med = np.array([np.median(r) for r in runs])
    s2, s2_r = float(np.var(med, ddof=1)), float(np.var(med))
    if s2_r <= 0:
        return 0.0
    between = max(0.0, s2 - float(np.mean([_median_var(r) for r in runs])))
    return math.sqrt(min(1.0, between / s2_r))


def _row_medians(block: np.ndarray) -> np.ndarray:
    """np.median along axis 1, by one partition (several times faster on wide blocks)."""
    n = block.shape[1]
    kth = [(n - 1) // 2, n // 2]
    part = np.partition(block, kth, axis=1)
    return 0.5 * (part[:, kth[0]] + part[:, kth[1]])


def hierarchical_bootstrap_ci(runs, level: float = LEVEL, *, n_boot: int = N_BOOT, seed: int = SEED,
                              max_cells: int = 4_000_000) -> tuple[float, float]:
    """Percentile interval of the pooled median from a two-stage bootstrap over runs (see module doc).

    Each resample draws R runs with replacement; a drawn run contributes its own number of calls, drawn
    with replacement from its residuals (calls minus the run median) around its shrunk median
    m + c (m_r - m), m the median of the run medians, c :func:`shrink_factor`. NaN when a run has < 2 calls
    or the pool has fewer than 6.
    """
    runs = _as_runs(runs)
    if not runs or sum(r.size for r in runs) < MIN_N or min(r.size for r in runs) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    med = np.array([np.median(r) for r in runs])
    centre, c = float(np.median(med)), shrink_factor(runs)
    resid = [r - m for r, m in zip(runs, med)]
    effects = centre + c * (med - centre)
    sizes = np.array([r.size for r in runs])
    n_runs = len(runs)
    chosen = rng.integers(0, n_runs, size=(n_boot, n_runs))
    total = sizes[chosen].sum(axis=1)
    stats = np.empty(n_boot)
    flat, starts = np.concatenate(resid), np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if np.all(sizes == sizes[0]):  # equal runs (the sweep's usual case): chunks of resamples at once
        n = int(sizes[0])
        step = max(1, max_cells // (n * n_runs))
        for s in range(0, n_boot, step):
            pick = chosen[s:s + step]  # (rows, R) run indices
            pos = starts[pick][..., None] + rng.integers(0, n, size=(*pick.shape, n), dtype=np.int64)
            block = effects[pick][..., None] + flat[pos]
            stats[s:s + step] = _row_medians(block.reshape(len(pick), -1))
        total = np.zeros(0, dtype=int)
    # unequal runs: resamples of one pool size are stacked; a chunk holds at most max_cells values
    for size in np.unique(total):
        idx = np.nonzero(total == size)[0]
        step = max(1, max_cells // int(size))
        for s in range(0, idx.size, step):
            rows = idx[s:s + step]
            block = np.empty((rows.size, int(size)))
            for j, row in enumerate(rows):
                parts = [effects[k] + resid[k][rng.integers(0, sizes[k], size=sizes[k])] for k in chosen[row]]
                block[j] = np.concatenate(parts)
            stats[rows] = _row_medians(block)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def median_ci(runs, level: float = LEVEL, *, n_boot: int = N_BOOT, seed: int = SEED) -> tuple[float, float]:
    """THE 95 % interval of the median (:data:`CI_METHOD`): `runs` is a list of per-run arrays, or one array.

    One run: :func:`order_statistic_ci`; several: :func:`hierarchical_bootstrap_ci`.
    """
    runs = _as_runs(runs)
    if not runs:
        return math.nan, math.nan
    if len(runs) == 1:
        return order_statistic_ci(runs[0], level)
    return hierarchical_bootstrap_ci(runs, level, n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- stability and jitter

def disagreement(runs, *, max_diff: float = MAX_RUN_DIFF, min_runs: int = 2) -> list[str]:
    """The between-runs rule (:data:`STABILITY_RULE`); an empty list means the runs agree.

    Reasons: fewer than `min_runs` runs (agreement cannot be judged), a run too short for an interval
    (< 6 calls), or the pair of runs that disagrees most (medians > `max_diff` apart, intervals disjoint).
    """
    runs = _as_runs(runs)
    reasons = []
    if len(runs) < min_runs:
        reasons.append(f"only {len(runs)} run(s) < {min_runs}: agreement between runs not judged")
    short = [i + 1 for i, r in enumerate(runs) if r.size < MIN_N]
    if short:
        reasons.append(f"run(s) {', '.join(map(str, short))} have fewer than {MIN_N} calls: no interval")
    med = [float(np.median(r)) for r in runs]
    ci = [order_statistic_ci(r) for r in runs]
    worst = None
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            lo, hi = sorted((i, j), key=lambda k: med[k])
            if med[lo] <= 0 or math.isnan(ci[lo][1]) or math.isnan(ci[hi][0]):
                continue
            diff = med[hi] / med[lo] - 1
            if diff > max_diff and ci[lo][1] < ci[hi][0] and (worst is None or diff > worst[0]):
                worst = (diff, lo, hi)
    if worst is not None:
        diff, lo, hi = worst
        reasons.append(f"runs {lo + 1} and {hi + 1} disagree: medians {med[lo]:.4g} and {med[hi]:.4g} "
                       f"(+{diff:.0%} > {max_diff:.0%}), intervals do not overlap")
    return reasons


def run_spread(runs) -> float:
    """Largest run median / smallest run median - 1 (0 for one run)."""
    med = [float(np.median(r)) for r in _as_runs(runs)]
    if len(med) < 2 or min(med) <= 0:
        return 0.0
    return max(med) / min(med) - 1


def jitter(samples) -> dict:
    """Per-call spread: ``jitter_p90`` = p90 / median and ``jitter_p99`` = p99 / median (pooled calls)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        return {"jitter_p90": math.nan, "jitter_p99": math.nan}
    med = float(np.median(x))
    p90, p99 = np.percentile(x, [90, 99])
    return {"jitter_p90": float(p90 / med) if med > 0 else math.nan,
            "jitter_p99": float(p99 / med) if med > 0 else math.nan}


def run_level(samples, run_lengths: Sequence[int] | None = None, *, min_runs: int = 2) -> dict:
    """The run-level columns of a bench.csv row (samples in any unit; intervals in the same unit).

    ``ci_lo``/``ci_hi`` (:func:`median_ci`), ``run_spread``, ``unstable`` / ``unstable_reason``
    (:func:`disagreement`), ``jitter_p90`` / ``jitter_p99`` (:func:`jitter`).
    """
    runs = split_runs(samples, run_lengths)
    lo, hi = median_ci(runs)
    reasons = disagreement(runs, min_runs=min_runs)
    return {"ci_lo": lo, "ci_hi": hi, "run_spread": run_spread(runs), "unstable": bool(reasons),
            "unstable_reason": "; ".join(reasons), **jitter(np.concatenate(runs) if runs else [])}


# --------------------------------------------------------------------------- pyperf's checks and the row

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
    """Statistics of per-call samples (ns in, microseconds out) over their runs.

    `run_lengths` splits the samples into runs (fresh processes, in order); None means one run.
    `mad_us` is the unscaled median absolute deviation, median(|x - median(x)|) (no 1.4826 factor).
    `ci_lo_us`/`ci_hi_us` bound the run-level 95 % interval of the median (:data:`CI_METHOD`; NaN
    for n < 6); `unstable` / `unstable_reason` are the between-runs rule
    (:func:`overhead.disagreement`, with `min_runs` as the floor on runs); `run_spread` =
    largest / smallest run median - 1; `jitter_p90` / `jitter_p99` = p90 / p99 over the median (per-call
    spread, not instability); `cv` = std/mean of the calls (ddof=1); `unstable_pyperf` /
    `unstable_pyperf_reason` are pyperf's checks (:func:`stability_reasons`, floors `min_runs`, `min_values`).
    """
    x = np.asarray(samples_ns, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    old = stability_reasons(x, lengths, min_runs=min_runs, min_values=min_values)
    level = run_level(x / 1000.0, lengths, min_runs=max(1, min_runs))
    x = x / 1000.0
    median = float(np.median(x))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
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
        "ci_lo_us": level["ci_lo"],
        "ci_hi_us": level["ci_hi"],
        "ci_method": CI_METHOD,
        "cv": float(cv),
        "run_spread": level["run_spread"],
        "jitter_p90": level["jitter_p90"],
        "jitter_p99": level["jitter_p99"],
        "unstable": level["unstable"],
        "unstable_reason": level["unstable_reason"],
        "unstable_pyperf": bool(old),
        "unstable_pyperf_reason": "; ".join(old),
    }


