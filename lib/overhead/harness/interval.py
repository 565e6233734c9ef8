"""THE 95 % interval of the median used by every experiment: :func:`median_ci` (:data:`CI_METHOD`).

A configuration is timed in several *runs* (fresh processes). Calls within a run are close to
independent; runs are not interchangeable (a process gets its own memory layout, thread placement,
neighbours), so pooling their calls as one sample understates the uncertainty of the median.

One run: the distribution-free order-statistic interval (:func:`order_statistic_ci`). Several runs: a
seeded hierarchical bootstrap (:func:`hierarchical_bootstrap_ci`) -- resample runs with replacement, then
calls within each drawn run -- with the run effects shrunk so that the between-run part of the spread is
counted once (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, section 3.8). When runs
agree the shrinkage is total and the interval is close to the pooled order-statistic one; when they
disagree it widens to span the run medians. Coverage on simulated runs: see :data:`COVERAGE_NOTE` and
tests/test_runstats.py. The rule, jitter and a row's statistics are in :mod:`overhead.harness.stats`.

Pure NumPy/SciPy; deterministic (fixed seed).
"""
from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95
MIN_N = 6  # below this no pair of order statistics covers the median with 95 % probability
N_BOOT = 2000
SEED = 0
CI_METHOD = ("95% CI of the median at the run level: hierarchical bootstrap (runs, then calls within each run; "
             "run effects shrunk to the between-run variance, Davison-Hinkley 3.8), 2000 resamples, seed 0; "
             "one run: order-statistic interval (Hettmansperger-Sheather)")
COVERAGE_NOTE = ("coverage of the true median on simulated runs (lognormal calls, sigma 0.3, 100 per run; "
                 "run offsets N(0, tau) in log; 200 seeds): runs that agree (tau 0, 3 runs) 95 % (pooled "
                 "order-statistic interval 95 %); tau 5 %: 86 % with 3 runs, 90 % with 5 or 8 runs, where the "
                 "pooled interval covers 77-80 %. A bootstrap over 3 runs cannot see the between-run tail, so "
                 "it stays below 95 % when runs disagree; more runs are the remedy. tests/test_runstats.py "
                 "asserts the bands.")


def as_runs(runs) -> list[np.ndarray]:
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
    runs = as_runs(runs)
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
    runs = as_runs(runs)
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
    runs = as_runs(runs)
    if not runs:
        return math.nan, math.nan
    if len(runs) == 1:
        return order_statistic_ci(runs[0], level)
    return hierarchical_bootstrap_ci(runs, level, n_boot=n_boot, seed=seed)
