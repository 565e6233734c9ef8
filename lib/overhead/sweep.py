"""The benchmark sweep: worker processes per (threads, model), parity before timing, resume, crash isolation.

The parent (a notebook or the ``overhead`` command) never imports TensorFlow. For every thread setting
and model it starts ``python -m overhead.sweep worker`` with a JSON job on stdin. The worker fixes
its threads before TF starts, prepares each backend per batch size, checks it against the Keras
reference on real digits, times the runners of one (model, batch) interleaved in rounds, and streams
one JSON line per event on stdout ("start" before every risky step, "row" per finished row). The
parent appends each row to ``bench.csv`` at once (append + fsync), so an interrupted sweep keeps
every finished row and a re-run skips them. A worker that dies (a segfault in a native library) gets
the row it was working on recorded as failed, and is restarted without it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from overhead import config

COLUMNS = ["machine", "model", "model_sha", "flops", "params", "backend", "batch", "threads", "status",
           "reason", "parity", "tolerance", "max_abs_err", "top1_agree", "accuracy", "ref_accuracy", "n",
           "median_us", "p90_us", "p99_us", "min_us", "mean_us", "std_us", "mad_us", "ci_lo_us",
           "ci_hi_us", "cv", "unstable", "remeasured", "timer_overhead_ns", "convert_s", "load_s",
           "kernels", "samples_file", "date"]
KEY = ("model", "backend", "batch", "threads")
DONE = ("ok", "failed", "skipped")
DEFAULT_BATCHES = (1, 4, 16, 64, 256)


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

        from overhead import timing

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
                timing.atomic_write_csv(rows.reindex(columns=self.columns), self.path)
        else:
            timing.atomic_write_csv(rows, self.path)
        self.rows = rows.reindex(columns=self.columns)

    def done_keys(self) -> set[tuple]:
        r = self.rows[self.rows["status"].isin(DONE)]
        return {(str(m), str(b), int(n), int(t)) for m, b, n, t in zip(r.model, r.backend, r.batch, r.threads)}

    def drop(self, mask) -> None:
        from overhead import timing

        if mask.any():
            self.rows = self.rows[~mask].reset_index(drop=True)
            timing.atomic_write_csv(self.rows, self.path)

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
        from overhead import timing

        from overhead.backends import NAMES

        order = {m: i for i, m in enumerate(dict.fromkeys(self.rows["model"]))}
        border = {b: i for i, b in enumerate(NAMES)}
        rows = self.rows.assign(_m=self.rows["model"].map(order), _b=self.rows["backend"].map(border).fillna(99))
        rows = rows.sort_values(["_m", "threads", "batch", "_b", "backend"], kind="stable").drop(columns=["_m", "_b"])
        timing.atomic_write_csv(rows, self.path)
        self.rows = rows.reset_index(drop=True)
        return self.rows


# --------------------------------------------------------------------------- worker processes

def _worker_env() -> dict:
    env = dict(os.environ)
    lib = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([lib, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _signal_name(rc: int) -> str:
    try:
        return f"signal {-rc}, {signal.Signals(-rc).name}"
    except ValueError:
        return f"signal {-rc}"


def run_job(job: dict, on_event, *, log_path=None, stall_timeout_s: float = 900.0) -> None:
    """Run one worker job to the end, restarting the worker after crashes.

    `job["keys"]` lists the [backend, batch] pairs to produce. `on_event(event)` receives every
    worker event, plus synthesised "row" events (status failed) for pairs a crash or a stall killed.
    """
    pending = {(b, int(n)) for b, n in job["keys"]}
    isolate: set[int] = set(job.get("isolate", []))
    model_info: dict = {}
    for _attempt in range(len(pending) + 3):
        if not pending:
            return
        spec = dict(job, keys=sorted(pending, key=lambda k: (k[1], k[0])), isolate=sorted(isolate))
        log = open(log_path, "a") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen([sys.executable, "-m", "overhead.sweep", "worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, env=_worker_env(), text=True)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout] + [lines.put(None)],
                                  daemon=True)
        reader.start()
        inflight, finished, stalled, fatal = None, False, False, None
        try:
            proc.stdin.write(json.dumps(spec))
            proc.stdin.close()
            while True:
                try:
                    line = lines.get(timeout=stall_timeout_s)
                except queue.Empty:
                    stalled = True
                    proc.kill()
                    break
                if line is None:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # stray output from a native library
                kind = event.get("event")
                if kind == "start":
                    inflight = event
                elif kind == "model":
                    model_info = event
                elif kind == "row":
                    pending.discard((event["row"]["backend"], int(event["row"]["batch"])))
                elif kind == "done":
                    finished = True
                elif kind == "fatal":
                    fatal = event
                on_event(event)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if log_path:
                log.close()
        if finished and rc == 0:
            return
        last = inflight is None or fatal is not None  # nothing to retry after these
        if fatal is not None:
            why, where = f"model could not be loaded: {fatal.get('error')}", ""
            culprits = sorted(pending, key=lambda k: (k[1], k[0]))
        else:
            why = (f"worker stalled (no progress for {stall_timeout_s:.0f} s)" if stalled else
                   f"worker crashed ({_signal_name(rc)})" if rc < 0 else f"worker exited with status {rc}")
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
        "model": job["model"], "model_sha": model_info.get("sha"), "flops": model_info.get("flops"),
        "params": model_info.get("params"), "backend": backend, "batch": batch, "threads": job["threads"],
        "status": "failed", "reason": reason}}


def _job_for(model: str, path: Path, threads: int, keys, args: dict) -> dict:
    return {"model": model, "model_path": str(path), "threads": int(threads),
            "keys": [[b, int(n)] for b, n in keys], **args}


def resolve_models(models=None, extra_models=(), data_dir=None) -> list[tuple[str, Path]]:
    """(name, .keras path) for ladder names and/or paths; None means the whole ladder."""
    if models is None:
        from overhead import models as ladder

        models = list(ladder.LADDER)
    out = []
    for m in [*models, *(extra_models or [])]:
        p = Path(m)
        if p.suffix != ".keras":
            p = config.models_dir(data_dir) / f"{m}.keras"
        out.append((p.stem, p.resolve()))
    return out


def run(models=None, backends=None, batch_sizes=DEFAULT_BATCHES, threads=None, budget_s: float = 0.1, *,
        extra_models=(), data_dir=None, out_dir=None, machine=None, resume: bool = True,
        max_rows: int | None = None, parity_n: int = 128, parity_max_s: float = 0.5,
        max_flops_per_call: float = 8e9, gemm_n: int | None = 2048, progress: bool = True,
        stall_timeout_s: float = 900.0, artifacts=None):
    """Benchmark models x backends x batch sizes x threads into `<out_dir>/bench.csv`; returns its rows.

    out_dir defaults to results_dir(machine). Rows already there (status ok/failed/skipped, same
    model content) are kept and skipped; `max_rows` stops after that many new rows (tests, dry runs).
    Also writes gemm.csv (float32 GEMM rate per thread setting, measured now) and both .meta.json.
    """
    from overhead import backends as bk
    from overhead import converters, envinfo, timing

    if data_dir is not None:
        os.environ["OVERHEAD_DATA"] = str(Path(data_dir).resolve())  # the workers read the same tree
    machine = machine or envinfo.machine_id()
    out_dir = Path(out_dir) if out_dir is not None else config.results_dir(machine)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(backends) if backends else list(bk.NAMES)
    for n in names:
        bk.get(n)
    threads = list(threads) if threads else sorted({1, os.cpu_count() or 1})
    batches = sorted({int(b) for b in batch_sizes})
    todo_models = resolve_models(models, extra_models, data_dir)
    for name, path in todo_models:
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
    results = ResultsCsv(out_dir / "bench.csv")
    if not resume:
        results.drop(results.rows["model"].notna())
    shas = {name: converters.model_sha(path) for name, path in todo_models}
    current = results.rows["model"].map(shas)  # rows of a retrained model (other content) are stale
    stale = current.notna() & (current != results.rows["model_sha"].astype(str))
    results.drop(stale)
    done = results.done_keys()
    plan = [(t, name, path, [(b, n) for n in batches for b in names if (name, b, n, t) not in done])
            for t in threads for name, path in todo_models]
    total = sum(len(k) for *_, k in plan)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="bench", unit="row")
    job_args = {"budget_s": budget_s, "parity_n": parity_n, "parity_max_s": parity_max_s,
                "max_flops_per_call": max_flops_per_call,
                "samples_dir": str(out_dir), "artifacts": str(artifacts) if artifacts else None,
                "mode": "bench"}
    gemm_rows, readbacks, written = [], {}, 0
    (out_dir / "logs").mkdir(exist_ok=True)

    class _Enough(Exception):
        pass

    def on_event(event):
        nonlocal written
        if event["event"] == "hello":
            readbacks[str(event["threads"])] = event["readback"]
        if event["event"] != "row":
            return
        row = dict(event["row"], machine=machine, date=_now())
        results.append(row)
        written += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{row['model']} {row['backend']} b{row['batch']} t{row['threads']}")
        if max_rows is not None and written >= max_rows:
            raise _Enough

    try:
        for t in threads:
            if gemm_n:
                gemm_rows.append({"machine": machine, "threads": t, "n": gemm_n,
                                  "gflops": timing.gemm_gflops(n=gemm_n, threads=t)})
            for t_, name, path, keys in plan:
                if t_ != t or not keys:
                    continue
                if bar is not None:
                    bar.set_description(f"{name} t{t}")
                run_job(_job_for(name, path, t, keys, job_args), on_event,
                        log_path=out_dir / "logs" / f"{name}.t{t}.log", stall_timeout_s=stall_timeout_s)
    except _Enough:
        pass
    finally:
        if bar is not None:
            bar.close()
    _write_gemm(out_dir / "gemm.csv", gemm_rows, machine)
    rows = results.finish()
    envinfo.write_meta(out_dir / "bench.csv", {
        "machine": machine, "stage": "benchmark", "backends": names, "batch_sizes": batches,
        "threads_settings": threads,
        "budget_s": budget_s, "parity_n": parity_n, "max_flops_per_call": max_flops_per_call,
        "models": {n: str(p) for n, p in todo_models}, "model_sha": shas,
        "threads_readback": readbacks}, threads=threads)
    return rows


def _write_gemm(path: Path, new_rows: list[dict], machine: str) -> None:
    import pandas as pd

    from overhead import envinfo, timing

    if not new_rows:
        return
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["machine", "threads", "n", "gflops"])
    new = pd.DataFrame(new_rows)
    old = old[~old["threads"].isin(new["threads"])]
    timing.atomic_write_csv(pd.concat([old, new], ignore_index=True).sort_values("threads"), path)
    envinfo.write_meta(path, {"machine": machine, "stage": "benchmark",
                              "what": "float32 np.matmul n x n, median of repeats"})


def collect_rows(job: dict, *, log_path=None, stall_timeout_s: float = 900.0) -> tuple[list[dict], list[dict]]:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["worker"]:
        print("usage: python -m overhead.sweep worker  < job.json", file=sys.stderr)
        return 2
    from overhead import worker

    return worker.main(json.loads(sys.stdin.read()))


if __name__ == "__main__":
    raise SystemExit(main())
