"""What a published run's per-run samples already say about the between-run spread (no measuring).

The sweep pools each configuration's runs (fresh processes) into one samples file with the run lengths
(:mod:`overhead.experiments.runlog`); split again, they show per path whether runs disagree, whether the
disagreement is warm-up (the runs' last tenths agree) or lasts the run, and whether the sweep's extra runs
(started later) drift. ``python -m overhead.experiments.spread committed data/results/<machine>`` prints it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from overhead.base import atomic


def runs(results_dir, batch: int = 1):
    """Per ok row of a published bench.csv at `batch` (from its pooled samples, no measuring): ``runs``, the run
    medians (``run_medians_us``, in run order), ``spread_x`` (max/min of them), ``late_spread_x`` (max/min of
    each run's last-tenth median: is the disagreement warm-up or the whole run?), ``first_over_last`` (median
    over runs of first tenth / last tenth) and ``later_over_first3`` (runs after the third -- the sweep's extra
    runs, started later -- over the first three: a drift in time)."""
    d = Path(results_dir)
    bench = pd.read_csv(d / "bench.csv")
    bench = bench[(bench["batch"] == batch) & (bench["status"] == "ok") & bench["samples_file"].notna()]
    rows = []
    for r in bench.itertuples():
        got = atomic.load_samples(d / r.samples_file)
        x = np.asarray(got["samples_ns"], dtype=np.float64) / 1e3
        runs = [a for a in np.split(x, np.cumsum(got["run_lengths"])[:-1]) if a.size]
        med = np.array([np.median(a) for a in runs])
        tenth = [max(5, a.size // 10) for a in runs]
        first = np.array([np.median(a[:k]) for a, k in zip(runs, tenth)])
        last = np.array([np.median(a[-k:]) for a, k in zip(runs, tenth)])
        rows.append({"model": r.model, "backend": r.backend, "threads": int(r.threads), "runs": len(runs),
                     "run_medians_us": " ".join(f"{m:.4g}" for m in med), "spread_x": med.max() / med.min(),
                     "late_spread_x": last.max() / last.min(), "first_over_last": float(np.median(first / last)),
                     "later_over_first3": float(np.median(med[3:]) / np.median(med[:3])) if len(med) > 3 else np.nan})
    return pd.DataFrame(rows)


def summary(runs):
    """Per path: rows, and the median over rows of spread_x, late_spread_x, first_over_last, later_over_first3."""
    g = runs.groupby("backend")
    return g.agg(rows=("spread_x", "size"), spread_x=("spread_x", "median"), late_spread_x=("late_spread_x", "median"),
                 first_over_last=("first_over_last", "median"),
                 later_over_first3=("later_over_first3", "median")).sort_values("spread_x")
