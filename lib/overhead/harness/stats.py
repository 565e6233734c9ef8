"""A row's statistics: the stability rule between runs, jitter, percentiles and pyperf's checks.

A configuration is timed in several *runs* (fresh processes); its interval of the median is
:func:`overhead.harness.interval.median_ci` (THE 95 % interval of every experiment, :data:`interval.CI_METHOD`).

- :func:`disagreement` -- the between-runs rule: a configuration is unstable when two of its runs
  disagree: their medians differ by more than :data:`MAX_RUN_DIFF` (5 %) AND their per-run intervals
  do not overlap. Adding runs can only add evidence of disagreement, never hide it.
- :func:`jitter` -- per-call spread (p90/median, p99/median): real information about the calls,
  reported on its own and never called instability.
- :func:`summarize` -- the row of a configuration from its per-call samples and run lengths, with
  pyperf's checks (:func:`stability_reasons`) kept beside the rule as ``unstable_pyperf``. The remedy for
  an unstable row is more runs (fresh processes), never keeping the calmer attempt
  (:mod:`overhead.experiments.sweep`).

Pure NumPy/SciPy; deterministic.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from overhead.harness.interval import CI_METHOD, MIN_N, as_runs, median_ci, order_statistic_ci

MAX_RUN_DIFF = 0.05  # run medians further apart than this (relative to the smaller) may disagree
STABILITY_RULE = ("unstable when two runs' medians differ by more than 5 % and their 95 % intervals "
                  "(order-statistic, per run) do not overlap")


# --------------------------------------------------------------------------- splitting

def split_runs(samples, run_lengths: Sequence[int] | None = None) -> list[np.ndarray]:
    """The samples of each run (float64), from pooled samples and the run lengths (None: one run)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    if sum(lengths) != x.size or any(n < 0 for n in lengths):
        raise ValueError(f"run lengths {lengths} do not add up to {x.size} samples")
    return [a for a in np.split(x, np.cumsum(lengths)[:-1]) if a.size]


# --------------------------------------------------------------------------- stability and jitter

def disagreement(runs, *, max_diff: float = MAX_RUN_DIFF, min_runs: int = 2) -> list[str]:
    """The between-runs rule (:data:`STABILITY_RULE`); an empty list means the runs agree.

    Reasons: fewer than `min_runs` runs (agreement cannot be judged), a run too short for an interval
    (< 6 calls), or the pair of runs that disagrees most (medians > `max_diff` apart, intervals disjoint).
    """
    runs = as_runs(runs)
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
    med = [float(np.median(r)) for r in as_runs(runs)]
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


