"""What a published sweep's per-run samples already say about the between-run spread (no measuring).

The sweep pools each configuration's runs (fresh processes) into one samples file with the run lengths
(:mod:`overhead.experiments.runlog`); split again, they show per path whether runs disagree, whether the
disagreement is warm-up (the runs' last tenths agree) or lasts the run, and whether the sweep's extra runs
(started later) drift. Every path of a model and thread setting shares its worker processes, so paths can be
compared within the same processes: the TF graph paths (:data:`GRAPH`: ops run by TF's graph executor)
against ``tf.function.xla`` (one compiled program) and the native paths (:data:`NATIVE`).
``python -m overhead.report.spread_runs data/results/<machine>`` prints the per-path table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from overhead.base import atomic
from overhead.report import sentences as T

GRAPH = ("tf.function", "tf.savedmodel", "tf1.session", "keras.predict_on_batch")
XLA = ("tf.function.xla",)
NATIVE = ("litert", "numpy")


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


def groups(runs_frame, machine: str) -> dict:
    """The finding's facts on one machine: median over rows of spread_x (and late_spread_x) per group of paths."""
    def med(names, col="spread_x"):
        x = runs_frame[runs_frame["backend"].isin(names)][col]
        return float(x.median()) if len(x) else np.nan

    return {"machine": machine, "graph": med(GRAPH), "graph_late": med(GRAPH, "late_spread_x"), "xla": med(XLA),
            "native": med(NATIVE), "graph_names": list(GRAPH), "rows": int(runs_frame["backend"].isin(GRAPH).sum())}


def published(results_dir) -> list[dict]:
    """:func:`groups` for every machine under `results_dir` whose bench.csv has per-run samples."""
    out = []
    for bench in sorted(Path(results_dir).glob("*/bench.csv")):
        got = runs(bench.parent)
        if len(got) and (got["runs"] > 1).any():
            out.append(groups(got, bench.parent.name))
    return out


def text(results_dir) -> str:
    """One sentence per published machine (templates/spread_runs.md.j2)."""
    return T.render("spread_runs", machines=published(results_dir))


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or not (Path(argv[0]) / "bench.csv").is_file():
        print("error: usage: python -m overhead.report.spread_runs RESULTS_DIR (a folder with bench.csv and samples/, "
              "e.g. data/results/amd-epyc-zen5-2c)", file=sys.stderr)
        return 2
    print(summary(runs(argv[0])).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
