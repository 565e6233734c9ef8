"""Small helpers the stage notebooks (03, 04, 02) share: which models exist, what a model is, tidy pivots.

Kept out of the notebooks so a notebook reads as narrative plus calls, and so these are unit-tested.
"""
from pathlib import Path

import pandas as pd

from overhead.base import config
from overhead.ladder import models as zoo


def model_file(name, data_dir=None) -> Path:
    """The .keras file of a ladder name, or the path itself for a user model given as a path."""
    return Path(name) if str(name).endswith(".keras") else config.models_dir(data_dir) / f"{name}.keras"


def present(names, data_dir=None, say=print) -> list:
    """Ladder names whose .keras exists (and user model paths); missing ones are reported, not run.

    Raises SystemExit when none exists (the stage cannot run before `make train`)."""
    keep = []
    for m in names:
        p = model_file(m, data_dir)
        if p.exists():
            keep.append(m)
        else:
            say(f"skipped: {m} (no {p})")
    if not keep:
        raise SystemExit("none of the requested models exists: run `make train` (notebooks/01_train.py) first")
    return keep


def describe(path) -> dict:
    """FLOPs, parameters, weights kind and accuracy of a model from its .json metadata (None for user models)."""
    try:
        m = zoo.load_meta(path)
        return {"flops": m.get("flops"), "params": m.get("params"), "weights": m.get("weights"),
                "accuracy": m.get("accuracy")}
    except OSError:
        return {"flops": None, "params": None, "weights": "user model", "accuracy": None}


def weights(name, data_dir=None) -> str:
    """'trained', 'seeded-init', … as recorded by training; 'unknown' when the model has no metadata."""
    try:
        return zoo.load_meta(model_file(name, data_dir)).get("weights")
    except OSError:
        return "unknown"


def flops_span(flops: pd.Series) -> str:
    """'5.12 decades of FLOPs, 7.84e+03 to 3.63e+09' for a column of FLOPs per image."""
    import numpy as np
    return (f"{np.log10(flops.max() / flops.min()):.2f} decades of FLOPs, "
            f"{flops.min():.3g} to {flops.max():.3g}")


def pipeline_pivots(prow: pd.DataFrame, stages) -> tuple:
    """(µs per stage, share per stage, both side by side with a total) per model x backend."""
    stages = list(stages)
    us = prow.pivot_table(index=["model", "backend"], columns="stage", values="median_us", sort=False)[stages]
    share = prow.pivot_table(index=["model", "backend"], columns="stage", values="share", sort=False)[stages]
    table = us.round(1).join((100 * share).round(1), rsuffix=" %")
    table["total_us"] = us.sum(axis=1).round(1)
    return us, share, table


def breakdown_pivot(brow: pd.DataFrame, buckets) -> pd.DataFrame:
    """µs per call per bucket (in `buckets` order), their sum and the measured median, per model x backend."""
    pivot = brow.pivot_table(index=["model", "backend"], columns="bucket", values="us_per_call", sort=False)
    pivot = pivot[[b for b in buckets if b in pivot.columns]]
    pivot["sum"] = pivot.sum(axis=1)
    pivot["measured median"] = brow.groupby(["model", "backend"], sort=False)["measured_median_us"].first()
    return pivot


def stability(ok: pd.DataFrame, order) -> pd.DataFrame:
    """Per backend: configurations, how many were flagged unstable, median samples, timer overhead.

    Columns absent from the bench table are left out, so the table follows the harness's columns."""
    g = ok.groupby("backend")
    cols = {"configurations": g.size()}
    if "runs" in ok:
        cols["median_runs"] = g.runs.median()
    if "remeasured" in ok:
        cols["remeasured"] = g.remeasured.sum()
    if "unstable" in ok:
        cols["unstable"] = g.unstable.apply(lambda s: int(s.astype(str).str.lower().eq("true").sum()))
    if "n" in ok:
        cols["median_samples"] = g.n.median()
    if "timer_overhead_ns" in ok:
        cols["timer_overhead_ns"] = g.timer_overhead_ns.median()
    return pd.DataFrame(cols).reindex([b for b in order if b in set(ok.backend)])
