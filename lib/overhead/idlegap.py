"""Idle gaps: what a single request costs after the process sat idle for 0, 1, 10 or 100 ms.

Back-to-back calls keep thread pools spinning and caches warm; a server answering sparse requests
does not. Per (model, threads, process kind) one fresh child (``python -m overhead.idlegap child``)
sets the threads, prepares every path at batch 1 and measures in rounds: in each round every backend
(rotated order) gets, per gap (rotated order), one untimed call and then `calls` times
"sleep gap, then time the call alone". So the call before each timed one is the same path's, and the
only difference between gaps is the idleness. GC stays on (as users run), collected between rounds.

Result: a tidy frame (COLUMNS) for ``idle_gap.csv``; the median's 95 % interval is the distribution-free
order-statistic interval of the median (:func:`overhead.runstats.median_ci`), valid at any n >= 6. :func:`verdict` says
whether the ranking of the paths or the best thread count changes under sparse traffic.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GAPS_MS = (0, 1, 10, 100)
MODELS = ("cnn_seed", "resnet_mnist")
COLUMNS = ["machine", "model", "backend", "threads", "gap_ms", "n", "median_us", "ci_lo_us", "ci_hi_us",
           "p90_us", "min_us", "ratio_to_gap0", "status", "reason"]
KIND_ENV = {"jax": {"KERAS_BACKEND": "jax"}, "keras-numpy": {"KERAS_BACKEND": "numpy"}}
CI_METHOD = "order-statistic 95 % interval of the median (Hettmansperger-Sheather; overhead.runstats.median_ci, one run)"


# --------------------------------------------------------------------------- statistics (pure)

def summarize(samples_ns) -> dict:
    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    from overhead import runstats

    lo, hi = runstats.median_ci(us)  # one child process = one run: the order-statistic interval
    return {"n": int(len(us)), "median_us": float(np.median(us)), "ci_lo_us": lo, "ci_hi_us": hi,
            "p90_us": float(np.percentile(us, 90)), "min_us": float(us.min())}


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


def _emit(proto, **event):
    proto.write(json.dumps(event, default=float) + "\n")
    proto.flush()


def child_main(job: dict, proto) -> int:
    """Prepare the job's backends at batch 1 with fixed threads, measure the gaps, emit rows."""
    from overhead import backends as bk
    from overhead import data
    from overhead.child import error_text

    threads = int(job["threads"])
    bk.set_threads(threads)
    if job.get("kind", "tf") == "tf":
        bk.configure_tf()
    model_path = Path(job["model_path"])
    from overhead.pipeline import input_shape
    x, _ = data.inputs_for(input_shape(model_path), 1, split="test")
    x = np.ascontiguousarray(x)
    fns, failed = {}, []
    for name in job["backends"]:
        _emit(proto, event="start", backend=name)
        try:
            runner = bk.prepare(name, model_path, 1, threads, artifacts=job.get("artifacts"))
            runner(x), runner(x)
            fns[name] = (lambda r=runner: r(x))
        except Exception as exc:  # a path that cannot run here is reported, not fatal
            failed.append({"backend": name, "reason": error_text(exc)})
    _emit(proto, event="start", backend=None, phase="timing", backends=list(fns))
    errors: dict = {}
    got = measure_gaps(fns, job["gaps_ms"], calls=int(job["calls"]), rounds=int(job["rounds"]),
                       errors=errors) if fns else {}
    failed += [{"backend": b, "reason": f"while timed: {error_text(e)}"} for b, e in errors.items()]
    rows = [{"backend": b, "gap_ms": g, "status": "ok", "reason": "", **summarize(v)} for (b, g), v in got.items()]
    rows += [{"backend": f["backend"], "gap_ms": g, "status": "failed", "reason": f["reason"], "n": 0}
             for f in failed for g in job["gaps_ms"]]
    _emit(proto, event="rows", rows=rows, readback=bk.threads_readback())
    return 0


# --------------------------------------------------------------------------- parent side

def _child_env(kind: str) -> dict:
    env = dict(os.environ)
    lib = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([lib, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(KIND_ENV.get(kind, {}))
    return env


def run_child(job: dict, timeout_s: float = 900) -> list[dict]:
    """Run one child to the end; a crash marks the path it was in as failed and restarts without it."""
    todo, rows = list(job["backends"]), []
    for _ in range(len(todo) + 1):
        if not todo:
            break
        done = subprocess.run([sys.executable, "-m", "overhead.idlegap", "child", json.dumps(dict(job, backends=todo))],
                              capture_output=True, text=True, env=_child_env(job.get("kind", "tf")),
                              timeout=timeout_s)
        events = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
        final = [e for e in events if e["event"] == "rows"]
        if final:
            return rows + final[-1]["rows"]
        started = [e for e in events if e["event"] == "start"]
        tail = (done.stderr.strip().splitlines() or [""])[-1][:200]
        why = f"child died (status {done.returncode}): {tail}"
        culprits = [started[-1]["backend"]] if started and started[-1].get("backend") else list(todo)
        rows += [{"backend": b, "gap_ms": g, "status": "failed", "reason": why, "n": 0}
                 for b in culprits for g in job["gaps_ms"]]
        todo = [b for b in todo if b not in culprits]
    return rows


def run(models=MODELS, backends=None, threads=None, gaps_ms=GAPS_MS, *, quick: bool = False, calls=None,
        rounds=None, data_dir=None, out_dir=None, machine=None, artifacts=None, progress: bool = True):
    """Measure every (model, threads) in fresh processes; write idle_gap.csv (+ meta) if out_dir or a machine
    folder is given; returns the tidy frame (COLUMNS)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from overhead import backends as bk
    from overhead import config, envinfo, sweep, timing

    if data_dir is not None:
        os.environ["OVERHEAD_DATA"] = str(Path(data_dir).resolve())  # children read the same tree
    names = list(backends or bk.names())
    allt = os.cpu_count() or 1
    threads = list(threads or sorted({1, allt}))
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
        job = {"model_path": str(path), "threads": t, "kind": kind, "backends": ns, "gaps_ms": list(gaps_ms),
               "calls": calls, "rounds": rounds, "artifacts": artifacts}
        rows += [{"machine": machine, "model": model, "threads": t, **r} for r in run_child(job)]
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    ok = frame["status"] == "ok"
    base = frame[ok & (frame["gap_ms"] == 0)].set_index(["model", "backend", "threads"])["median_us"]
    key = pd.MultiIndex.from_frame(frame[["model", "backend", "threads"]])
    frame["ratio_to_gap0"] = frame["median_us"].to_numpy() / base.reindex(key).to_numpy()
    if out_dir is not None or data_dir is not None:
        path = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
        path = path / "idle_gap.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        timing.atomic_write_csv(frame, path)
        envinfo.write_meta(path, extra={
            "stage": "idle_gap", "models": [m for m, _ in todo], "backends": names, "threads_settings": threads,
            "gaps_ms": list(gaps_ms), "calls_per_round": calls, "rounds": rounds, "batch": 1, "quick": quick,
            "ci_method": CI_METHOD, "gc": "on while timing, collected between rounds",
            "schedule": "per round, backends rotated; per backend, gaps rotated; one untimed call, then "
                        "`calls` x (sleep gap, time one call)", "run_s": round(time.perf_counter() - t_start, 1),
            "verdict": verdict(frame)})
    return frame


# --------------------------------------------------------------------------- what changes (pure)

def _disjoint(a, b) -> bool:
    """a is faster than b with non-overlapping intervals."""
    return bool(a["ci_hi_us"] < b["ci_lo_us"])


def verdict(frame) -> dict:
    """Does sparse traffic change the fastest path (per model x threads) or the best thread count (per model
    x backend)? Compares every gap > 0 with gap 0; a change counts as `clear` when the intervals separate."""
    ok = frame[(frame["status"] == "ok") & frame["median_us"].notna()] if "status" in frame else frame
    ranking, thread_rows = [], []
    for (model, t), grp in ok.groupby(["model", "threads"]):
        ref = grp[grp["gap_ms"] == 0].sort_values("median_us")
        if ref.empty:
            continue
        for g, at in grp[grp["gap_ms"] > 0].groupby("gap_ms"):
            at = at.sort_values("median_us")
            common = [b for b in ref["backend"] if b in set(at["backend"])]
            order0 = [b for b in ref["backend"] if b in common]
            order1 = [b for b in at["backend"] if b in common]
            best0, best1 = order0[0], order1[0]
            r0, r1 = at.set_index("backend").loc[best0], at.set_index("backend").loc[best1]
            ranking.append({"model": model, "threads": int(t), "gap_ms": g, "fastest_gap0": best0,
                            "fastest_at_gap": best1, "fastest_changed": best0 != best1,
                            "clear": best0 != best1 and _disjoint(r1, r0),
                            "order_changed": order0 != order1,
                            "slowdown_of_fastest_gap0": float(r0["median_us"] / ref.iloc[0]["median_us"])})
    for (model, b), grp in ok.groupby(["model", "backend"]):
        ref = grp[grp["gap_ms"] == 0]
        if ref["threads"].nunique() < 2:
            continue
        t0 = int(ref.loc[ref["median_us"].idxmin(), "threads"])
        for g, at in grp[grp["gap_ms"] > 0].groupby("gap_ms"):
            if at["threads"].nunique() < 2:
                continue
            best = at.loc[at["median_us"].idxmin()]
            other = at[at["threads"] == t0]
            t1 = int(best["threads"])
            thread_rows.append({"model": model, "backend": b, "gap_ms": g, "best_threads_gap0": t0,
                                "best_threads_at_gap": t1, "changed": t0 != t1,
                                "clear": t0 != t1 and len(other) > 0 and _disjoint(best, other.iloc[0])})
    return {"ranking": ranking, "threads": thread_rows,
            "fastest_changes": any(r["fastest_changed"] for r in ranking),
            "fastest_changes_clearly": any(r["clear"] for r in ranking),
            "best_threads_changes": sorted({r["backend"] for r in thread_rows if r["changed"]}),
            "best_threads_changes_clearly": sorted({r["backend"] for r in thread_rows if r["clear"]})}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["child"] or len(argv) != 2:
        print("usage: python -m overhead.idlegap child JOB_JSON", file=sys.stderr)
        return 2
    from overhead.child import claim_stdout

    proto = claim_stdout()  # native libraries' prints go to stderr, never into the protocol
    return child_main(json.loads(argv[1]), proto)


if __name__ == "__main__":
    sys.exit(main())
