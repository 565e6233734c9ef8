"""Memory in a loop: resident memory after 1, 1 000 and 5 000 calls of one path, each in a fresh process.

Users report ``model.predict`` in a loop growing without bound. :func:`run` starts one child per backend
(``python -m overhead.experiments.memloop child``, a :class:`MemLoopJob` on stdin; Keras 3 on JAX gets a "jax" process, as in the sweep), which
prepares the runner, calls it on one real digit batch in a plain loop (GC as users run it, no forced
collection) and reads its resident set size (psutil; VmHWM for the peak) after each checkpoint. Artifacts
(SavedModel, .tflite, engine file) are built beforehand in throw-away children, so conversion memory does
not count. Rows go to ``memory_loop.csv``: one per model × backend × checkpoint.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from overhead import backends as bk
from overhead import backends as registry
from overhead.base import atomic, config, data, envinfo
from overhead.experiments import startup, sweep
from overhead.experiments.pipeline import input_shape
from overhead.experiments.startup import peak_rss_mb
from overhead.harness import child, jobs
from overhead.harness.child import error_text

BACKENDS = ("numpy", "keras.predict", "keras.jax.predict", "tf_keras.predict", "tf.function", "litert")
CALLS = (1, 1000, 5000)
QUICK_CALLS = (1, 20, 60)
COLUMNS = ["machine", "model", "backend", "threads", "batch", "calls", "rss_mb", "rss_growth_mb",
           "rss_after_load_mb", "peak_rss_mb", "loop_s", "status", "reason"]
DEFAULT_TIMEOUT_S = 900.0


# --------------------------------------------------------------------------- child

@dataclass(frozen=True)
class MemLoopJob:
    """One child's job: `backend` on the model, called on the batch in `input` (.npy) up to each of `calls`."""
    backend: str
    model_path: str
    input: str
    threads: int
    calls: tuple
    artifacts: str | None = None


def measure_job(job: MemLoopJob, proto) -> int:
    import psutil


    proc = psutil.Process()

    def rss():
        return proc.memory_info().rss / 2**20

    try:
        name = job.backend
        bk.enter_process(bk.get(name).process)
        bk.set_threads(int(job.threads))
        if bk.get(name).process == "tf":
            bk.configure_tf()
        import numpy as np

        x = np.ascontiguousarray(np.load(job.input))
        runner = bk.prepare(name, job.model_path, len(x), int(job.threads), artifacts=job.artifacts)
        out = {"status": "ok", "rss_after_load_mb": rss(), "points": []}
        done, t0 = 0, time.perf_counter()
        for target in sorted(int(c) for c in job.calls):
            while done < target:
                y = runner(x)
                done += 1
            out["points"].append({"calls": done, "rss_mb": rss(), "peak_rss_mb": peak_rss_mb(),
                                  "loop_s": time.perf_counter() - t0})
        out["output_shape"] = list(np.shape(y))
        out["threads_seen"] = runner.info.get("threads_seen")
    except BaseException as exc:  # reported, then the parent records the row as failed
        out = {"status": "failed", "reason": error_text(exc)}
    proto.write(json.dumps(out, default=str) + "\n")
    proto.flush()
    return 0 if out["status"] == "ok" else 1


def spawn(backend: str, model_path, input_path, *, calls, threads: int = 1, artifacts=None,
          timeout_s: float = DEFAULT_TIMEOUT_S, data_dir=None) -> dict:
    """One fresh child process for `backend`; its JSON report, or {status: failed, reason}."""
    job = MemLoopJob(backend, str(model_path), str(input_path), int(threads), tuple(int(c) for c in calls),
                     None if artifacts is None else str(artifacts))
    done = child.run_child("overhead.experiments.memloop", ["child"], job=job, kind=bk.get(backend).process,
                           data_dir=data_dir, timeout_s=timeout_s)
    report = done.last()
    if isinstance(report, dict) and not done.timed_out:
        return report
    return {"status": "failed", "reason": f"{backend}: child {done.failure(200)} without a report"}


# --------------------------------------------------------------------------- parent

def rows_from(res: dict, *, machine: str, model: str, backend: str, threads: int, batch: int, calls) -> list[dict]:
    base = {"machine": machine, "model": model, "backend": backend, "threads": threads, "batch": batch}
    if res.get("status") != "ok":
        return [dict(base, calls=int(c), status="failed", reason=res.get("reason", "")) for c in calls]
    first = res["points"][0]["rss_mb"]
    return [dict(base, calls=p["calls"], rss_mb=round(p["rss_mb"], 2), rss_growth_mb=round(p["rss_mb"] - first, 2),
                 rss_after_load_mb=round(res["rss_after_load_mb"], 2), peak_rss_mb=round(p["peak_rss_mb"], 2),
                 loop_s=round(p["loop_s"], 4), status="ok", reason="") for p in res["points"]]


def run(model: str = "cnn_seed", backends=BACKENDS, *, quick: bool = False, calls=None, threads: int = 1,
        batch: int = 1, data_dir=None, machine=None, artifacts=None, out_dir=None, write: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True):
    """RSS after each checkpoint of `calls` (default 1, 1000, 5000; `quick`: 1, 20, 60) calls of each backend
    on `model` (a ladder name or a .keras path), one fresh process per backend; returns the tidy rows and,
    with `write`, saves them to ``<results>/memory_loop.csv`` (+ ``.meta.json``)."""
    import numpy as np
    import pandas as pd


    names = list(backends)
    for n in names:
        registry.get(n)  # unknown names fail early, listing the valid ones
    calls = tuple(sorted(int(c) for c in (calls or (QUICK_CALLS if quick else CALLS))))
    if not calls or calls[0] < 1:
        raise ValueError(f"calls must be positive integers, got {calls}")
    machine = machine or envinfo.machine_id()
    ((model_name, mpath),) = sweep.resolve_models([model], (), data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memloop-") as tmp:
        x, _ = data.inputs_for(input_shape(mpath), batch, data_dir=data_dir)
        inp = Path(tmp) / "x.npy"
        np.save(inp, x)
        for i, b in enumerate(names):
            if progress:
                print(f"memory loop {model_name} {b} ({i + 1}/{len(names)})", file=sys.stderr, flush=True)
            # conversions are built in a throw-away child: their memory is not the loop's (the `numpy` runner
            # converts the .keras file in memory itself, as its sweep rows do)
            if startup.artifact_names(b) and b != "numpy":
                built = startup.ensure_artifacts(b, mpath, inp, threads=threads, artifacts=artifacts,
                                                 timeout_s=timeout_s)
                if built.get("status") != "ok":
                    res = {"status": "failed", "reason": f"conversion failed: {built.get('reason')}"}
                    rows += rows_from(res, machine=machine, model=model_name, backend=b, threads=threads,
                                      batch=batch, calls=calls)
                    continue
            res = spawn(b, mpath, inp, calls=calls, threads=threads, artifacts=artifacts, timeout_s=timeout_s,
                        data_dir=data_dir)
            rows += rows_from(res, machine=machine, model=model_name, backend=b, threads=threads, batch=batch,
                              calls=calls)
    df = pd.DataFrame(rows, columns=COLUMNS)
    if write:
        out = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
        path = out / "memory_loop.csv"
        atomic.atomic_write_csv(df, path, index=False)
        envinfo.write_meta(path, extra={
            "stage": "memory_loop", "model": model_name, "backends": names, "calls": list(calls),
            "threads_setting": threads, "batch": batch, "quick": quick,
            "rss": "resident set size (psutil) after that many calls in a plain loop, MB; peak = VmHWM; "
                   "growth = rss - rss after the first call; one fresh process per backend, artifacts prebuilt"},
            threads=threads)
    return df


def main(argv=None) -> int:
    return jobs.child_entry(MemLoopJob, measure_job, argv)  # a MemLoopJob on stdin


if __name__ == "__main__":
    sys.exit(main())
