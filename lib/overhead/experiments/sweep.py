"""The benchmark sweep: fresh worker processes per (model, run, threads, process kind), parity before
timing, pyperf-style runs, resume, crash isolation.

The parent (a notebook or the ``overhead`` command) never imports TensorFlow. Model by model, it runs
each configuration in ``runs`` fresh worker processes (``python -m overhead.experiments.sweep worker``, a
:class:`~overhead.experiments.worker.WorkerJob` on stdin), thread settings interleaved in time (run 1 t=1, run 1 t=2, run 2 t=1, ...), one process per
process kind (TF, Keras-on-JAX, Keras-on-NumPy: ``Backend.process``). The worker fixes its threads
before TF starts, prepares each backend per batch size, checks it against the Keras reference on real
digits (:mod:`overhead.harness.parity`), times the runners of one (model, batch) interleaved in rounds with
the GC on, and streams one JSON line per event ("start" before every risky step, "row" per finished
run of a configuration). Each run's row goes to ``runs.jsonl`` at once (append + fsync); when a
configuration's runs are complete they are pooled (:func:`overhead.experiments.runlog.aggregate`) into its
``bench.csv`` row. A configuration whose runs disagree (:func:`overhead.harness.stats.disagreement`: two run
medians more than 5 % apart with disjoint intervals) gets more runs, up to ``max_runs``; every run's
samples are kept, so extra runs cannot hide a disagreement: they give the run-level interval more runs. An interrupted sweep keeps finished runs and rows and a
re-run skips them. A worker that dies (a segfault in a native library) gets the row it was working on
recorded as failed, and is restarted without it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from overhead import backends as bk
from overhead.backends import converters
from overhead.backends.source import timed_code
from overhead.base import atomic, config, envinfo
from overhead.base.modelnames import RENAMED
from overhead.base.settings import Settings
from overhead.experiments import runlog, sweepplan, worker
from overhead.experiments.sweepplan import thread_settings, wanted  # noqa: F401  (re-exported)
from overhead.experiments.runlog import COLUMNS, DONE, KEY, ResultsCsv, _now  # noqa: F401  (re-exported)
from overhead.harness import child, interval, jobs, stats, timing
from overhead.ladder import models as ladder

LATER_PARITY_N = 16  # runs after the first re-check parity on fewer inputs (the first run checked parity_n)
# What runs (batches, threads, runs, which models the big batches and the secondary paths cover) is the
# study's design: overhead.base.settings.Bench (params/full.yaml).


# --------------------------------------------------------------------------- worker processes

def run_job(job: worker.WorkerJob, on_event, *, log_path=None, stall_timeout_s: float = 900.0) -> None:
    """Run one worker job to the end, restarting the worker after crashes.

    `job.keys` lists the (backend, batch) pairs to produce. `on_event(event)` receives every
    worker event, plus synthesised "row" events (status failed) for pairs a crash or a stall killed.
    """
    pending = {(b, int(n)) for b, n in job.keys}
    isolate: set[int] = set(job.isolate)
    model_info: dict = {}
    for _attempt in range(len(pending) + 3):
        if not pending:
            return
        spec = replace(job, keys=tuple(sorted(pending, key=lambda k: (k[1], k[0]))), isolate=tuple(sorted(isolate)))
        state = {"inflight": None, "finished": False, "fatal": None, "error": None}

        def handle(event, state=state):
            kind = event.get("event") if isinstance(event, dict) else None
            if kind == "start":
                state["inflight"] = event
            elif kind == "model":
                model_info.update(event)
            elif kind == "row":
                pending.discard((event["row"]["backend"], int(event["row"]["batch"])))
            elif kind == "done":
                state["finished"] = True
            elif kind == "fatal":
                state["fatal"] = event
            elif kind == "error":
                state["error"] = event.get("error")
            if kind is not None:
                on_event(event)

        done = child.run_child("overhead.experiments.sweep", ["worker"], job=spec, on_event=handle,
                               kind=job.process, threads=int(job.threads), data_dir=job.data_dir,
                               stall_timeout_s=stall_timeout_s, stderr_path=log_path)
        rc, stalled = done.returncode, done.stalled
        inflight, finished, fatal, crash_error = state["inflight"], state["finished"], state["fatal"], state["error"]
        if finished and rc == 0:
            return
        last = inflight is None or fatal is not None  # nothing to retry after these
        if fatal is not None:
            why, where = f"model could not be loaded: {fatal.get('error')}", ""
            culprits = sorted(pending, key=lambda k: (k[1], k[0]))
        else:
            why = (f"worker stalled (no progress for {stall_timeout_s:.0f} s)" if stalled else
                   f"worker crashed ({child.signal_name(rc)})" if rc < 0 else (f"worker failed: {crash_error}" if crash_error else f"worker exited with status {rc}"))
            if inflight is None:
                culprits, where = sorted(pending, key=lambda k: (k[1], k[0])), " before it started a backend"
            elif inflight.get("phase") == "timing" and len(inflight["backends"]) > 1:
                isolate.add(int(inflight["batch"]))  # time them one by one to find the culprit
                continue
            else:
                culprits = [(b, int(inflight["batch"])) for b in inflight["backends"]
                            if (b, int(inflight["batch"])) in pending]
                where = f" in {','.join(inflight['backends'])} ({inflight['phase']}, batch {inflight['batch']})"
                if not culprits:  # died between steps: nothing to blame, try again (attempts are bounded)
                    continue
        for backend, batch in culprits:
            pending.discard((backend, batch))
            on_event(_failed_row(job, model_info, backend, batch, f"{why}{where}"))
        if last:
            return
    for backend, batch in sorted(pending, key=lambda k: (k[1], k[0])):  # out of attempts
        on_event(_failed_row(job, model_info, backend, batch, "worker kept crashing; gave up after restarts"))


def _failed_row(job, model_info, backend, batch, reason) -> dict:
    return {"event": "row", "row": {
        "model": job.model, "model_sha": model_info.get("sha"), "flops": model_info.get("flops"),
        "params": model_info.get("params"), "backend": backend, "batch": batch, "threads": job.threads,
        "run": job.run, "status": "failed", "reason": reason}}


def _job_for(model: str, path: Path, threads: int, keys, args: dict, run: int = 1,
             process: str = "tf") -> worker.WorkerJob:
    """The worker job of `keys` ((backend, batch) pairs); `args`: the other :class:`~overhead.experiments.worker.WorkerJob`
    fields (an unknown one raises TypeError here, in the parent)."""
    return worker.WorkerJob(model=model, model_path=str(path), threads=int(threads), run=int(run), process=process,
                            keys=tuple((b, int(n)) for b, n in keys), **args)


def resolve_models(models=None, extra_models=(), data_dir=None) -> list[tuple[str, Path]]:
    """(name, .keras path) for ladder names and/or paths; None means the whole ladder."""
    if models is None:
        models = list(ladder.LADDER)
    out = []
    for m in [*models, *(extra_models or [])]:
        p = Path(m)
        if p.suffix != ".keras" and not p.exists():  # a ladder name (a .h5 or SavedModel path stays)
            p = config.models_dir(data_dir) / f"{m}.keras"
        out.append((p.stem, p.resolve()))
    return out


def run(settings: Settings, *, out_dir=None, resume: bool = True, max_rows: int | None = None,
        progress: bool = True, stall_timeout_s: float = 900.0, artifacts=None, launch=None, model_inputs=None):
    """Benchmark ``settings.bench`` (models x backends x batches x threads) into `<out_dir>/bench.csv`; returns its rows.

    Every configuration is measured in `runs` fresh processes (more, up to `max_runs`, while its runs
    disagree: the between-runs rule of :mod:`overhead.harness.stats`); batches above the smallest only for
    `big_batch_models` x `big_batch_backends` (None: all); what runs is :func:`overhead.experiments.sweepplan.plan`.
    out_dir defaults to the machine's results folder under ``settings.data_dir``. Rows already there (same model
    content) are kept and skipped, finished runs in runs.jsonl too; `max_rows` stops after that many new rows
    (tests, dry runs). Also writes gemm.csv (float32 GEMM rate per thread setting, measured now) and both .meta.json.
    `launch(job, on_event, log_path)` replaces the worker processes (tests).
    """
    b, data_dir = settings.bench, settings.data_dir
    runs, max_runs = b.runs, b.max_runs
    if not 1 <= runs <= max_runs:
        raise ValueError(f"need 1 <= runs <= max_runs, got {runs}, {max_runs}")
    machine = settings.machine or envinfo.machine_id()
    out_dir = Path(out_dir) if out_dir is not None else config.results_dir(machine, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo_models = resolve_models(b.models, settings.extra_models, data_dir)
    for name, path in todo_models:
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
    results = ResultsCsv(out_dir / "bench.csv")
    log = runlog.RunLog(out_dir / "runs.jsonl")
    if not resume:
        results.drop(results.rows["model"].notna())
        log.clear()
    shas = {name: converters.model_sha(path) for name, path in todo_models}
    # rows under a model's old name (base.modelnames) are stale once it runs under its current one, samples too
    renamed = results.rows["model"].isin([old for old, new in RENAMED.items() if new in shas])
    for f in results.rows.loc[renamed, "samples_file"].dropna() if "samples_file" in results.rows else ():
        (out_dir / str(f)).unlink(missing_ok=True)
    results.drop(renamed)
    current = results.rows["model"].map(shas)  # rows of a retrained model (other content) are stale
    results.drop(current.notna() & (current != results.rows["model_sha"].astype(str)))
    names = list(b.backends) if b.backends else list(bk.NAMES)
    p = sweepplan.plan([m for m, _ in todo_models], names, {n: bk.get(n).process for n in names}, b.batches,
                       b.threads, done=results.done_keys(), kind_order=bk.PROCESS_KINDS,
                       big_batch_models=b.big_batch_models, big_batch_backends=b.big_batch_backends,
                       models_for=b.models_for, threads_models=b.threads_models)
    job_args = {"budget_s": b.budget_s, "parity_n": b.parity_n, "parity_max_s": b.parity_max_s,
                "max_flops_per_call": b.max_flops_per_call, "samples_dir": str(out_dir),
                "artifacts": str(artifacts) if artifacts else None, "mode": "bench",
                "data_dir": str(data_dir) if data_dir else None, **(model_inputs or {})}
    ex = _Executor(p, out_dir, machine, log, shas, job_args, b.parity_n,
                   launch or (lambda job, on_event, log_path: run_job(job, on_event, log_path=log_path,
                                                                      stall_timeout_s=stall_timeout_s)),
                   progress=progress, total_runs=p.total() * runs)
    gemm_rows, written = [], 0
    try:
        if b.gemm_n:
            gemm_rows = [{"machine": machine, "threads": t, "n": b.gemm_n, "gflops": timing.gemm_gflops(n=b.gemm_n, threads=t)}
                         for t in p.threads]
        for name, path in todo_models:
            for row in ex.measure_model(name, path, runs, max_runs):
                results.append(dict(row, machine=machine, date=_now()))
                written += 1
                if max_rows is not None and written >= max_rows:
                    break
            if max_rows is not None and written >= max_rows:
                break
    finally:
        ex.close()
    _write_gemm(out_dir / "gemm.csv", gemm_rows, machine)
    rows = results.finish()
    envinfo.write_meta(out_dir / "bench.csv", {
        "machine": machine, "stage": "benchmark", "backends": names, "batch_sizes": p.batches,
        "threads_settings": p.threads, "runs": runs, "max_runs": max_runs, "ci_method": interval.CI_METHOD,
        "stability_rule": stats.STABILITY_RULE,
        "big_batch_models": _listed(b.big_batch_models), "big_batch_backends": _listed(b.big_batch_backends),
        "models_for": {k: list(m) for k, m in b.models_for.items()}, "threads_models": _listed(b.threads_models),
        "budget_s": b.budget_s, "parity_n": b.parity_n, "max_flops_per_call": b.max_flops_per_call,
        "models": {n: str(p) for n, p in todo_models}, "model_sha": shas,
        "threads_readback": ex.readbacks, "jobs": ex.jobs,
        "jobs_seconds": round(sum(j["seconds"] for j in ex.jobs), 1),
        # the source of each path's runner, for the report's appendix (what was timed, not what is installed)
        "timed_code": {n: timed_code(bk.get(n)) for n in names}}, threads=p.threads)
    return rows


def _listed(values):
    return list(values) if values is not None else None


class _Executor:
    """Runs a :class:`~overhead.experiments.sweepplan.Plan`: worker jobs per (run, threads, process kind),
    every run's row to runs.jsonl at once, extra runs where runs disagree, pooled rows per configuration."""

    def __init__(self, p, out_dir, machine, log, shas, job_args, parity_n, launch, *, progress, total_runs):
        self.p, self.out_dir, self.machine, self.log, self.shas = p, out_dir, machine, log, shas
        self.job_args, self.parity_n, self.launch = job_args, parity_n, launch
        self.readbacks, self.jobs = {}, []  # jobs: wall time of every worker job (planning the next run)
        (out_dir / "logs").mkdir(exist_ok=True)
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_runs, desc="bench", unit="run")

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def on_event(self, event):
        if event["event"] == "hello":
            self.readbacks[str(event["threads"])] = event["readback"]
        if event["event"] != "row":
            return
        row = event["row"]
        self.log.append(dict(row, machine=self.machine, date=_now()))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{row['model']} {row['backend']} b{row['batch']} t{row['threads']} r{row.get('run')}")

    def measured(self, name):
        """Runs on record for the model, without timed runs whose sample file is gone (to be redone)."""
        have = self.log.runs_of(name, self.shas[name])
        return {k: {r: row for r, row in v.items() if not row.get("samples_file")
                    or (self.out_dir / row["samples_file"]).exists()} for k, v in have.items()}

    def one_run(self, name, path, keys, r):
        for t in self.p.threads:  # thread settings interleaved in time, each in fresh processes
            for k in self.p.kinds:
                have = self.measured(name)
                todo = [(b, n) for b, n, tt in keys if tt == t and self.p.kind[b] == k
                        and r not in have.get((b, n, t), {}) and runlog.settled(have.get((b, n, t), {})) is None]
                if not todo:
                    continue
                if self.bar is not None:
                    self.bar.set_description(f"{name} run {r} t{t} {k}")
                args = self.job_args if r == 1 else dict(self.job_args, parity_n=min(self.parity_n, LATER_PARITY_N))
                t0 = time.perf_counter()
                self.launch(_job_for(name, path, t, todo, args, run=r, process=k), self.on_event,
                            self.out_dir / "logs" / f"{name}.t{t}.{k}.log")
                self.jobs.append({"model": name, "run": r, "threads": t, "process": k, "configs": len(todo),
                                  "seconds": round(time.perf_counter() - t0, 2)})

    def measure_model(self, name, path, runs, max_runs):
        """The pooled bench.csv rows of one model's planned configurations (yielded as they are pooled)."""
        keys = self.p.keys.get(name, [])
        if not keys:
            return
        for r in range(1, runs + 1):
            self.one_run(name, path, keys, r)
        for r in range(runs + 1, max_runs + 1):  # runs that disagree: more runs, all kept
            have = self.measured(name)
            shaky = [key for key in keys if have.get(key) and runlog.runs_disagree(have[key], self.out_dir)]
            if not shaky:
                break
            self.one_run(name, path, shaky, r)
        have = self.measured(name)
        for key in keys:
            if have.get(key):
                row = runlog.aggregate(have[key], self.out_dir, planned_runs=runs)
                runlog.drop_run_files(have[key], self.out_dir)  # the pooled file holds their samples now
                yield row


def _write_gemm(path: Path, new_rows: list[dict], machine: str) -> None:
    import pandas as pd


    if not new_rows:
        return
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["machine", "threads", "n", "gflops"])
    new = pd.DataFrame(new_rows)
    old = old[~old["threads"].isin(new["threads"])]
    atomic.atomic_write_csv(pd.concat([old, new], ignore_index=True).sort_values("threads"), path)
    envinfo.write_meta(path, {"machine": machine, "stage": "benchmark",
                              "what": "float32 np.matmul n x n, median of repeats"})


def collect_rows(job: worker.WorkerJob, *, log_path=None, stall_timeout_s: float = 900.0) -> tuple[list[dict], list[dict]]:
    """Run one job and return (rows, all events) without touching any result file."""
    rows, events = [], []

    def on_event(e):
        events.append(e)
        if e["event"] == "row":
            rows.append(e["row"])

    run_job(job, on_event, log_path=log_path, stall_timeout_s=stall_timeout_s)
    return rows, events


def distortion_check(model_path, *, batch: int = 1, threads: int = 1, budget_s: float = 0.5,
                     companions=("keras.call", "tf.function", "litert", "onnxruntime"), samples_dir=None):
    """NumPy engine timed alone in a worker vs interleaved with TF/LiteRT/ORT runners in another.

    Returns a one-row DataFrame: both medians, their CIs and the ratio alongside/alone.
    """
    import tempfile

    import pandas as pd

    path = Path(model_path)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, names in (("alone", ["numpy"]), ("alongside", ["numpy", *companions])):
            job = _job_for(path.stem, path, threads, [(b, batch) for b in names],
                           {"budget_s": budget_s, "parity_n": 32, "max_flops_per_call": 1e12,
                            "samples_dir": str(samples_dir or tmp), "artifacts": None, "mode": "bench"})
            rows, _ = collect_rows(job)
            out[label] = next(r for r in rows if r["backend"] == "numpy")
    a, b = out["alone"], out["alongside"]
    return pd.DataFrame([{
        "model": path.stem, "batch": batch, "threads": threads, "companions": ",".join(companions),
        "alone_median_us": a.get("median_us"), "alone_ci": f"[{a.get('ci_lo_us'):.1f}, {a.get('ci_hi_us'):.1f}]",
        "alongside_median_us": b.get("median_us"),
        "alongside_ci": f"[{b.get('ci_lo_us'):.1f}, {b.get('ci_hi_us'):.1f}]",
        "ratio": b.get("median_us") / a.get("median_us")}])


def main(argv=None) -> int:
    return jobs.child_entry(worker.WorkerJob, worker.measure_job, argv, command="worker")  # a WorkerJob on stdin


if __name__ == "__main__":
    raise SystemExit(main())
