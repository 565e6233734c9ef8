"""Runs of the sweep: every fresh worker process's rows on disk, and their pooling into one bench.csv row.

Each configuration (model, backend, batch, threads) is measured in several runs -- fresh worker
processes, thread settings interleaved in time. A run's row (parity, its own statistics, its raw
samples file) is appended to ``runs.jsonl`` at once, so a killed sweep keeps finished runs. When a
configuration's runs are complete, :func:`aggregate` pools their samples (none is ever discarded) into
the bench.csv row: ``runs``, ``n``, the median and its run-level interval (:data:`overhead.harness.interval.CI_METHOD`),
the between-runs stability rule (``unstable``; :func:`overhead.harness.stats.disagreement`), per-call
jitter, pyperf's checks beside them (``unstable_pyperf``), and the worst run's parity.
:func:`recompute` redoes these statistics for an existing bench table from its pooled samples files.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from overhead.backends import NAMES
from overhead.base import atomic
from overhead.harness import interval, stats

COLUMNS = ["machine", "model", "model_sha", "flops", "params", "backend", "batch", "threads", "status",
           "reason", "parity", "tolerance", "criterion", "logit_rel_err", "logit_cos", "top1_decisive",
           "n_decisive", "max_abs_err", "top1_agree", "accuracy", "ref_accuracy", "runs", "n",
           "median_us", "p90_us", "p99_us", "min_us", "mean_us", "std_us", "mad_us", "ci_lo_us",
           "ci_hi_us", "ci_method", "cv", "jitter_p90", "jitter_p99", "run_spread", "unstable", "unstable_reason",
           "unstable_pyperf", "unstable_pyperf_reason", "remeasured", "timer_overhead_ns",
           "convert_s", "load_s", "kernels", "samples_file", "date"]
KEY = ("model", "backend", "batch", "threads")
DONE = ("ok", "failed", "skipped")
NOT_RUN = ("skipped",)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- result file

class ResultsCsv:
    """bench.csv kept complete after every row: append + fsync one line at a time.

    A torn last line (a kill in mid-write) is dropped on open; a file with other columns is
    rewritten (atomically) with the current ones before anything is appended.
    """

    def __init__(self, path, columns=COLUMNS):
        import pandas as pd


        self.path, self.columns = Path(path), list(columns)
        rows = pd.DataFrame(columns=self.columns)
        if self.path.exists() and self.path.stat().st_size:
            raw = self.path.read_bytes()
            whole = raw if raw.endswith(b"\n") else raw[: raw.rfind(b"\n") + 1]
            try:
                rows = pd.read_csv(io.BytesIO(whole), on_bad_lines="skip", keep_default_na=True)
            except (pd.errors.EmptyDataError, ValueError):
                rows = pd.DataFrame(columns=self.columns)
            rows = rows.dropna(subset=[c for c in (*KEY, "date", "status") if c in rows.columns])
            if whole != raw or list(rows.columns) != self.columns or len(rows) != whole.count(b"\n") - 1:
                atomic.atomic_write_csv(rows.reindex(columns=self.columns), self.path)
        else:
            atomic.atomic_write_csv(rows, self.path)
        self.rows = rows.reindex(columns=self.columns)

    def done_keys(self) -> set[tuple]:
        r = self.rows[self.rows["status"].isin(DONE)]
        return {(str(m), str(b), int(n), int(t)) for m, b, n, t in zip(r.model, r.backend, r.batch, r.threads)}

    def drop(self, mask) -> None:
        if mask.any():
            self.rows = self.rows[~mask].reset_index(drop=True)
            atomic.atomic_write_csv(self.rows, self.path)

    def append(self, row: dict) -> None:
        import pandas as pd

        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c)
                                                       for c in self.columns])
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        new = pd.DataFrame([row]).reindex(columns=self.columns)
        self.rows = new if self.rows.empty else pd.concat([self.rows, new], ignore_index=True)

    def finish(self):
        """Rewrite sorted (atomically) and return the rows as a DataFrame."""


        order = {m: i for i, m in enumerate(dict.fromkeys(self.rows["model"]))}
        border = {b: i for i, b in enumerate(NAMES)}
        rows = self.rows.assign(_m=self.rows["model"].map(order), _b=self.rows["backend"].map(border).fillna(99))
        rows = rows.sort_values(["_m", "threads", "batch", "_b", "backend"], kind="stable").drop(columns=["_m", "_b"])
        atomic.atomic_write_csv(rows, self.path)
        self.rows = rows.reset_index(drop=True)
        return self.rows


class RunLog:
    """``runs.jsonl``: one JSON line per (model, backend, batch, threads, run); a torn last line is dropped."""

    def __init__(self, path):
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.exists() and self.path.stat().st_size:
            raw = self.path.read_text(encoding="utf-8")
            for line in raw.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a kill in mid-write
                if isinstance(row, dict) and "run" in row:
                    self.rows.append(row)
            if not raw.endswith("\n") or len(self.rows) != raw.count("\n"):
                self._rewrite()

    def _rewrite(self) -> None:
        atomic.atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)

    def clear(self) -> None:
        self.rows = []
        self._rewrite()

    def runs_of(self, model: str, sha: str | None) -> dict[tuple, dict[int, dict]]:
        """{(backend, batch, threads): {run: row}} of `model` with this content (other shas are stale)."""
        out: dict[tuple, dict[int, dict]] = {}
        for r in self.rows:
            if r.get("model") != model or (sha is not None and r.get("model_sha") not in (sha, None)):
                continue
            key = (str(r["backend"]), int(r["batch"]), int(r["threads"]))
            out.setdefault(key, {})[int(r["run"])] = r
        return out


def settled(runs: dict[int, dict]) -> dict | None:
    """The row that ends a configuration without more runs: skipped, or failed before it was timed."""
    for r in sorted(runs):
        row = runs[r]
        if row.get("status") in NOT_RUN or (row.get("status") == "failed" and not row.get("samples_file")):
            return row
    return None


def _pooled_path(row: dict) -> str:
    return f"samples/{row['model']}/{row['backend']}__b{int(row['batch'])}__t{int(row['threads'])}.npz"


def aggregate(runs: dict[int, dict], samples_dir, *, planned_runs: int, min_runs: int = stats.MIN_RUNS,
              min_values: int = stats.MIN_VALUES) -> dict:
    """One bench.csv row from the runs of a configuration (all samples pooled, in run order).

    Parity columns come from the first run (the full check; later runs compare fewer inputs) unless
    a run failed: then from the first failed run, and the status is failed. ``remeasured`` counts runs beyond the `planned_runs`.
    The pooled samples go to ``samples/<model>/<backend>__b<batch>__t<threads>.npz`` (keys
    ``samples_ns`` and ``run_lengths``).
    """
    stop = settled(runs)
    if stop is not None:
        row = dict(stop)
        if len(runs) > 1 and row.get("reason"):
            row["reason"] = f"run {row['run']}: {row['reason']}"
        row.update(runs=len(runs), n=0, samples_file=None)
        row.pop("run", None)
        return row
    order = sorted(runs)
    timed = [runs[r] for r in order]
    samples_dir = Path(samples_dir)
    arrays = [np.asarray(atomic.load_samples(samples_dir / r["samples_file"])["samples_ns"]) for r in timed]
    lengths = [len(a) for a in arrays]
    pooled = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    failed = [r for r in timed if r.get("status") != "ok"]
    row = dict(failed[0] if failed else timed[0])  # run 1 had the full parity check; later ones a short one
    row.pop("run", None)
    if len(pooled):
        row.update(stats.summarize(pooled, lengths, min_runs=min_runs, min_values=min_values))
        rel = _pooled_path(row)
        atomic.save_samples(samples_dir / rel, {"samples_ns": pooled, "run_lengths": np.asarray(lengths)})
        row["samples_file"] = rel
    row["runs"] = len(timed)
    row["remeasured"] = max(0, len(timed) - planned_runs)
    overheads = [_num(r.get("timer_overhead_ns")) for r in timed if r.get("timer_overhead_ns") is not None]
    row["timer_overhead_ns"] = float(np.median(overheads)) if overheads else None
    return row


STAT_COLUMNS = ("runs", "n", "median_us", "p90_us", "p99_us", "min_us", "mean_us", "std_us", "mad_us", "ci_lo_us",
                "ci_hi_us", "ci_method", "cv", "jitter_p90", "jitter_p99", "run_spread", "unstable",
                "unstable_reason", "unstable_pyperf", "unstable_pyperf_reason")


def recompute(bench, results_dir, *, min_runs: int = stats.MIN_RUNS, min_values: int = stats.MIN_VALUES):
    """A copy of a bench table with :data:`STAT_COLUMNS` recomputed from each row's pooled samples file.

    The pooled file keeps the run boundaries (``run_lengths``), so the run-level interval and the
    between-runs rule can be applied to an already-published run; rows without a samples file (or
    whose file is missing) keep their values, and ``restat`` says which rows were recomputed.
    """
    import pandas as pd

    out = bench.copy().reindex(columns=[*dict.fromkeys([*bench.columns, *STAT_COLUMNS])])
    files = out["samples_file"] if "samples_file" in out else pd.Series(None, index=out.index, dtype=object)
    redone = {}
    for i, f in files.items():
        path = Path(results_dir) / f if isinstance(f, str) and f else None
        if path is None or not path.exists():
            continue
        arrays = atomic.load_samples(path)
        x = np.asarray(arrays["samples_ns"])
        lengths = [int(n) for n in arrays.get("run_lengths", [x.size])]
        redone[i] = stats.summarize(x, lengths, min_runs=min_runs, min_values=min_values)
    if redone:
        new = pd.DataFrame.from_dict(redone, orient="index")
        for c in STAT_COLUMNS:
            out[c] = out[c].astype(object)
            out.loc[new.index, c] = new[c].astype(object)
        out = out.infer_objects()
    out["restat"] = out.index.isin(list(redone))
    return out


def runs_disagree(runs: dict[int, dict], samples_dir, *, min_runs: int = stats.MIN_RUNS) -> bool:
    """Whether a configuration's timed runs disagree (:func:`overhead.harness.stats.disagreement`), cheaply:
    no bootstrap and no pooled file, for the sweep's choice of what to measure again."""

    if settled(runs) is not None:
        return False
    arrays = [np.asarray(atomic.load_samples(Path(samples_dir) / runs[r]["samples_file"])["samples_ns"])
              for r in sorted(runs) if runs[r].get("samples_file")]
    return bool(arrays) and bool(stats.disagreement(arrays, min_runs=min_runs))


def drop_run_files(runs: dict[int, dict], samples_dir) -> None:
    """Delete the per-run sample files once their pooled file is written."""
    for row in runs.values():
        f = row.get("samples_file")
        if f and "__r" in Path(f).name:
            try:
                (Path(samples_dir) / f).unlink()
            except FileNotFoundError:
                pass


def _num(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(v) else v


def restat_file(results_dir) -> dict:
    """Rewrite ``<results_dir>/bench.csv`` (atomically) with :func:`recompute`'s columns, in :data:`COLUMNS`
    order, and note it in bench.meta.json (``ci_method``, ``stability_rule``, ``restat``; the machine
    description is kept as recorded). Returns the unstable shares at batch 1 (new rule, pyperf's)."""
    import pandas as pd


    d = Path(results_dir)
    bench = pd.read_csv(d / "bench.csv")
    out = recompute(bench, d)
    restat = int(out["restat"].sum())
    atomic.atomic_write_csv(out.reindex(columns=COLUMNS), d / "bench.csv")
    meta_path = d / "bench.meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta.update(ci_method=interval.CI_METHOD, stability_rule=stats.STABILITY_RULE,
                    restat={"date": _now(), "rows": restat, "by": "overhead.experiments.runlog.restat_file",
                            "note": "run-level statistics recomputed from the pooled samples files"})
        atomic.atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    b1 = out[(out["batch"] == 1) & (out["status"] == "ok")] if "status" in out else out[out["batch"] == 1]

    def share(col):
        return float(b1[col].astype(str).str.lower().eq("true").mean()) if len(b1) else float("nan")

    return {"rows": len(out), "restat": restat, "batch1_rows": len(b1), "batch1_unstable": share("unstable"),
            "batch1_unstable_pyperf": share("unstable_pyperf")}


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "restat":
        print("usage: python -m overhead.experiments.runlog restat RESULTS_DIR  (a folder holding bench.csv and samples/)",
              file=sys.stderr)
        return 2
    d = Path(argv[1])
    if not (d / "bench.csv").is_file():
        print(f"error: {d / 'bench.csv'} not found; pass a results folder such as data/results/<machine>",
              file=sys.stderr)
        return 2
    got = restat_file(d)
    print(f"{got['restat']} of {got['rows']} rows recomputed; batch-1 rows unstable: "
          f"{got['batch1_unstable']:.1%} (runs disagree), {got['batch1_unstable_pyperf']:.1%} (pyperf's check), "
          f"of {got['batch1_rows']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
