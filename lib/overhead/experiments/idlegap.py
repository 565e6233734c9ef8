"""Idle gaps: what a single request costs after the process sat idle for 0, 1, 10 or 100 ms.

Back-to-back calls keep thread pools spinning and caches warm; a server answering sparse requests
does not. Per (model, threads, process kind) one fresh child (``python -m overhead.experiments.idlegap child``, an :class:`IdleGapJob` on stdin)
sets the threads, prepares every path at batch 1 and measures in rounds: in each round every backend
(rotated order) gets, per gap (rotated order), one untimed call and then `calls` times
"sleep gap, then time the call alone". So the call before each timed one is the same path's, and the
only difference between gaps is the idleness. GC stays on (as users run), collected between rounds.

Result: a tidy frame (COLUMNS) for ``idle_gap.csv``; the median's 95 % interval is the distribution-free
order-statistic interval of the median (:func:`overhead.harness.interval.median_ci`), valid at any n >= 6. :func:`verdict` says
whether the ranking of the paths or the best thread count changes under sparse traffic.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from overhead import backends as bk
from overhead.base import atomic, config, data, envinfo
from overhead.base.settings import thread_settings
from overhead.experiments import sweep
from overhead.experiments.pipeline import input_shape
from overhead.harness import child, interval, jobs, stats
from overhead.harness.child import error_text

GAPS_MS = (0, 1, 10, 100)
MODELS = ("cnn_seed", "resnet_mnist")
COLUMNS = ["machine", "model", "backend", "threads", "gap_ms", "n", "median_us", "ci_lo_us", "ci_hi_us",
           "p90_us", "min_us", "ratio_to_gap0", "status", "reason"]
KIND_ENV = {"jax": {"KERAS_BACKEND": "jax"}, "keras-numpy": {"KERAS_BACKEND": "numpy"}}


def summarize(samples_ns) -> dict:
    """The idle-gap row's statistics, from the one statistics module (:mod:`overhead.harness.stats`)."""
    full = stats.summarize(samples_ns)
    return {k: full[k] for k in ("n", "median_us", "ci_lo_us", "ci_hi_us", "p90_us", "min_us")}


# --------------------------------------------------------------------------- child process

def measure_gaps(fns: dict, gaps_ms=GAPS_MS, *, calls: int = 6, rounds: int = 3, sleep=time.sleep,
                 clock=time.perf_counter_ns, errors: dict | None = None) -> dict:
    """{(backend, gap_ms): int64 ns of the timed calls}; see the module docstring for the schedule.
    A path that raises while timed is dropped; its error goes to `errors` (backend -> exception)."""
    names, gaps = list(fns), list(gaps_ms)
    errors = {} if errors is None else errors
    out = {(b, g): [] for b in names for g in gaps}
    for r in range(rounds):
        gc.collect()
        for b in names[r % len(names):] + names[:r % len(names)]:
            fn = fns[b]
            for g in gaps[r % len(gaps):] + gaps[:r % len(gaps)]:
                if b in errors:
                    break
                try:
                    fn()  # the previous call is this path's own
                    for _ in range(calls):
                        if g:
                            sleep(g / 1e3)
                        t0 = clock()
                        fn()
                        out[(b, g)].append(clock() - t0)
                except Exception as exc:  # reported as a failed row, the other paths go on
                    errors[b] = exc
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items() if k[0] not in errors}


@dataclass(frozen=True)
class IdleGapJob:
    """One child's job: every backend of one process kind on one model at one thread setting."""
    model_path: str
    threads: int
    backends: tuple
    gaps_ms: tuple = GAPS_MS
    calls: int = 6
    rounds: int = 3
    kind: str = "tf"
    artifacts: str | None = None


def _emit(proto, **event):
    proto.write(json.dumps(event, default=float) + "\n")
    proto.flush()


def measure_job(job: IdleGapJob, proto) -> int:
    """Prepare the job's backends at batch 1 with fixed threads, measure the gaps, emit rows."""

    threads = int(job.threads)
    bk.set_threads(threads)
    if job.kind == "tf":
        bk.configure_tf()
    model_path = Path(job.model_path)
    x, _ = data.inputs_for(input_shape(model_path), 1, split="test")
    x = np.ascontiguousarray(x)
    fns, failed = {}, []
    for name in job.backends:
        _emit(proto, event="start", backend=name)
        try:
            runner = bk.prepare(name, model_path, 1, threads, artifacts=job.artifacts)
            runner(x), runner(x)
            fns[name] = (lambda r=runner: r(x))
        except Exception as exc:  # a path that cannot run here is reported, not fatal
            failed.append({"backend": name, "reason": error_text(exc)})
    _emit(proto, event="start", backend=None, phase="timing", backends=list(fns))
    errors: dict = {}
    got = measure_gaps(fns, job.gaps_ms, calls=int(job.calls), rounds=int(job.rounds),
                       errors=errors) if fns else {}
    failed += [{"backend": b, "reason": f"while timed: {error_text(e)}"} for b, e in errors.items()]
    rows = [{"backend": b, "gap_ms": g, "status": "ok", "reason": "", **summarize(v)} for (b, g), v in got.items()]
    rows += [{"backend": f["backend"], "gap_ms": g, "status": "failed", "reason": f["reason"], "n": 0}
             for f in failed for g in job.gaps_ms]
    _emit(proto, event="rows", rows=rows, readback=bk.threads_readback())
    return 0


# --------------------------------------------------------------------------- parent side

def measure_in_children(job: IdleGapJob, timeout_s: float = 900, data_dir=None) -> list[dict]:
    """Run the job in a child to the end; a crash marks the path it was in as failed and restarts without it."""
    todo, rows = list(job.backends), []
    for _ in range(len(todo) + 1):
        if not todo:
            break
        done = child.run_child("overhead.experiments.idlegap", ["child"], job=replace(job, backends=tuple(todo)),
                               kind=job.kind, timeout_s=timeout_s, data_dir=data_dir)
        final = done.last("rows")
        if final is not None:
            return rows + final["rows"]
        started = [e for e in done.events if isinstance(e, dict) and e.get("event") == "start"]
        why = f"child died ({done.failure(200)})"
        culprits = [started[-1]["backend"]] if started and started[-1].get("backend") else list(todo)
        rows += [{"backend": b, "gap_ms": g, "status": "failed", "reason": why, "n": 0}
                 for b in culprits for g in job.gaps_ms]
        todo = [b for b in todo if b not in culprits]
    return rows


def run(models=MODELS, backends=None, threads=None, gaps_ms=GAPS_MS, *, quick: bool = False, calls=None,
        rounds=None, data_dir=None, out_dir=None, machine=None, artifacts=None, progress: bool = True):
    """Measure every (model, threads) in fresh processes; write idle_gap.csv (+ meta) if out_dir or a machine
    folder is given; returns the tidy frame (COLUMNS)."""
    import pandas as pd
    from tqdm.auto import tqdm


    names = list(backends or bk.names())
    threads = thread_settings(threads)
    calls = int(calls or (3 if quick else 6))
    rounds = int(rounds or (2 if quick else 3))
    machine = machine or envinfo.machine_id()
    kinds: dict[str, list[str]] = {}
    for n in names:
        kinds.setdefault(getattr(bk.get(n), "process", "tf") or "tf", []).append(n)
    rows = []
    todo = sweep.resolve_models(list(models), (), data_dir)
    jobs = [(m, p, t, k, ns) for m, p in todo for k, ns in kinds.items() for t in threads]
    t_start = time.perf_counter()
    for model, path, t, kind, ns in tqdm(jobs, desc="idle gap", disable=not progress):
        job = IdleGapJob(model_path=str(path), threads=t, kind=kind, backends=tuple(ns), gaps_ms=tuple(gaps_ms),
                         calls=calls, rounds=rounds, artifacts=str(artifacts) if artifacts else None)
        rows += [{"machine": machine, "model": model, "threads": t, **r}
                 for r in measure_in_children(job, data_dir=data_dir)]
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    ok = frame["status"] == "ok"
    base = frame[ok & (frame["gap_ms"] == 0)].set_index(["model", "backend", "threads"])["median_us"]
    key = pd.MultiIndex.from_frame(frame[["model", "backend", "threads"]])
    frame["ratio_to_gap0"] = frame["median_us"].to_numpy() / base.reindex(key).to_numpy()
    if out_dir is not None or data_dir is not None:
        path = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
        path = path / "idle_gap.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write_csv(frame, path)
        envinfo.write_meta(path, extra={
            "stage": "idle_gap", "models": [m for m, _ in todo], "backends": names, "threads_settings": threads,
            "gaps_ms": list(gaps_ms), "calls_per_round": calls, "rounds": rounds, "batch": 1, "quick": quick,
            "ci_method": interval.CI_METHOD, "gc": "on while timing, collected between rounds",
            "schedule": "per round, backends rotated; per backend, gaps rotated; one untimed call, then "
                        "`calls` x (sleep gap, time one call)", "run_s": round(time.perf_counter() - t_start, 1)})
    return frame


# --------------------------------------------------------------------------- what changes (pure)

def main(argv=None) -> int:
    return jobs.child_entry(IdleGapJob, measure_job, argv)  # an IdleGapJob on stdin


if __name__ == "__main__":
    sys.exit(main())
