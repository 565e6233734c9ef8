"""Stability that means what it says: a row is *unstable* when its fresh-process runs disagree (run medians
differ by more than ``RUN_TOL`` and their intervals do not overlap); per-call spread is *jitter*, its own
column, never called instability.

Newer bench.csv files carry ``unstable`` (the between-runs rule), ``unstable_pyperf`` (pyperf's std/mean
checks) and a jitter column. Older files carry pyperf's flag in ``unstable``: the between-runs flag is then
computed here from the raw samples (``samples_file``, split by ``run_lengths``) when they are present, and
"not recorded" otherwise; jitter falls back to p99 / median − 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from overhead.harness import interval, stats
from overhead.report import sentences as T
from overhead.report.fmt import fmt_pct
from overhead.report.style import order_backends
from overhead.report.wins import RULE

RUN_TOL = stats.MAX_RUN_DIFF  # the one rule: overhead.harness.stats.disagreement
JITTER_COLUMNS = ("jitter", "jitter_p99", "jitter_p99_over_median", "jitter_ratio")
TRUE = ("true", "1", "1.0", "yes")


def _flag(col: pd.Series) -> pd.Series:
    return col.astype(str).str.strip().str.lower().isin(TRUE)


def from_samples(path: Path, tol: float = RUN_TOL) -> float:
    """The between-runs flag (1.0 / 0.0) from a samples .npz; NaN when it is missing or has < 2 runs."""
    try:
        with np.load(path, allow_pickle=False) as d:
            values, lengths = np.asarray(d["samples_ns"], float), np.asarray(d["run_lengths"], int)
    except (OSError, KeyError, ValueError):
        return np.nan
    if len(lengths) < 2 or lengths.sum() != len(values):
        return np.nan
    runs = stats.split_runs(values, lengths)
    if any(r.size < interval.MIN_N for r in runs):
        return np.nan
    return float(bool(stats.disagreement(runs, max_diff=tol, min_runs=2)))


def jitter(rows: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per-call spread per row and what it is: the recorded jitter column, else p99 / median − 1."""
    for c in JITTER_COLUMNS:
        if c in rows:
            return pd.to_numeric(rows[c], errors="coerce"), c
    if {"p99_us", "median_us"} <= set(rows.columns):
        return pd.to_numeric(rows["p99_us"], errors="coerce") / rows["median_us"] - 1, "p99 / median − 1"
    return pd.Series(np.nan, index=rows.index), "not recorded"


def flags(rows: pd.DataFrame, results_dir: Path | None = None) -> pd.DataFrame:
    """``between_runs`` (new rule; NaN when not recorded), ``pyperf`` (old rule) and ``jitter`` per row."""
    out = pd.DataFrame(index=rows.index)
    if "unstable_pyperf" in rows:                       # a file written with the between-runs rule
        out["between_runs"] = _flag(rows["unstable"]).astype(float) if "unstable" in rows else np.nan
        out["pyperf"] = _flag(rows["unstable_pyperf"]).astype(float)
        out.attrs["between_runs_source"] = "recorded"
    else:
        out["pyperf"] = _flag(rows["unstable"]).astype(float) if "unstable" in rows else np.nan
        got = []
        for r in rows.itertuples():
            f = getattr(r, "samples_file", None)
            d = Path(results_dir) / str(getattr(r, "machine", "")) if results_dir is not None else None
            got.append(from_samples(d / str(f)) if d is not None and isinstance(f, str) and f else np.nan)
        out["between_runs"] = got
        out.attrs["between_runs_source"] = "computed from the raw samples" if np.isfinite(got).any() else \
            "not recorded"
    out["jitter"], out.attrs["jitter_source"] = jitter(rows)
    return out


def summary(sweep: pd.DataFrame, results_dir: Path | None = None) -> dict:
    """Shares over the ok batch-1 rows: ``between_runs`` and ``pyperf`` (NaN = not recorded), the median
    and worst jitter, how many rows, and where each number came from."""
    if sweep is None or not len(sweep):
        return {"n": 0, "between_runs": np.nan, "pyperf": np.nan, "jitter_median": np.nan, "jitter_max": np.nan,
                "between_runs_source": "not recorded", "jitter_source": "not recorded", "n_between_runs": 0}
    f = flags(sweep, results_dir)
    br = f["between_runs"].dropna()
    return {"n": int(len(sweep)), "between_runs": float(br.mean()) if len(br) else np.nan,
            "n_between_runs": int(len(br)), "pyperf": float(f["pyperf"].mean()) if f["pyperf"].notna().any()
            else np.nan, "jitter_median": float(f["jitter"].median()), "jitter_max": float(f["jitter"].max()),
            "between_runs_source": f.attrs.get("between_runs_source", "not recorded"),
            "jitter_source": f.attrs.get("jitter_source", "not recorded")}


def table(sweep: pd.DataFrame, results_dir: Path | None = None) -> pd.DataFrame:
    """Per backend: rows, unstable share by the between-runs rule, pyperf's share beside it, median jitter."""
    if sweep is None or not len(sweep):
        return pd.DataFrame()
    f = flags(sweep, results_dir).assign(backend=sweep["backend"].to_numpy())
    g = f.groupby("backend")
    t = pd.DataFrame({"rows": g.size(),
                      "unstable (between runs)": g["between_runs"].mean().map(
                          lambda v: fmt_pct(v) if np.isfinite(v) else "not recorded"),
                      "flagged by pyperf's rule": g["pyperf"].mean().map(
                          lambda v: fmt_pct(v) if np.isfinite(v) else "not recorded"),
                      f"jitter ({f.attrs.get('jitter_source', '')}), median": g["jitter"].median().map(
                          lambda v: fmt_pct(v) if np.isfinite(v) else "not recorded")})
    return t.reindex(order_backends(t.index))


def text(summ: dict, tally: dict | None = None) -> str:
    """The stability section's lead from ``summary`` output; ``tally`` (``overhead.report.wins.tally``) gives the
    headline: how many of the report's comparisons the spread could overturn (printed as ties)."""
    return T.render("stability", tol=RUN_TOL, tally=tally, rule=RULE, **summ)
