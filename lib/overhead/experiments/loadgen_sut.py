"""The System Under Test LoadGen drives: any registered path behind a concurrency strategy, plus the child process.

One child process per configuration (``python -m overhead.experiments.loadgen_sut``, a JSON job on stdin,
JSON lines on the claimed stdout, as the sweep's workers do): it fixes the threads, loads real digits
into LoadGen's Query Sample Library, computes the Keras reference for them, prepares the path and runs
the job's items (Single-Stream, Server points or a Server bisection), one ``point`` event per LoadGen run.

Strategies (:data:`STRATEGIES`), each stated in the table:
- ``thread``: one worker thread pulls queries from a queue and calls the runner;
- ``threads``: N worker threads; they share one runner where the runtime allows concurrent calls
  (TF, ORT ``run``, JAX; the NumPy engine serialises calls on one object with its own lock), or get one
  runner each where it does not (:data:`PER_THREAD`: a LiteRT interpreter or an OpenVINO infer request
  is not thread-safe). Paths in :data:`THREAD_UNSAFE` cannot run under threads at all;
- ``processes``: N worker processes (spawned, each with its own runner), fed by one queue;
- ``batching``: one worker that collects queries for at most D ms or B queries, pads them to the next
  allowed batch size (powers of two up to B, as TF Serving's ``allowed_batch_sizes``) and runs them at once.

Parity under load: every :data:`PARITY_EVERY`-th query's output (up to :data:`PARITY_MAX` per run) is kept
and compared with the Keras reference by :func:`overhead.parity.compare` in the path's precision tier
(the criterion of :func:`overhead.parity.parity`); a failing sample fails the row.
"""
from __future__ import annotations

import json
import math
import os
import queue
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

NOOP = "noop"  # a path that returns zeros at once: what LoadGen, the SUT and HTTP cost without a model
STRATEGIES = ("thread", "threads", "processes", "batching")
PER_THREAD = {"litert": "a LiteRT interpreter is not thread-safe: one interpreter per thread",
              "litert.builtin": "a LiteRT interpreter is not thread-safe: one interpreter per thread",
              "litert.fp16": "a LiteRT interpreter is not thread-safe: one interpreter per thread",
              "litert.dynamic_int8": "a LiteRT interpreter is not thread-safe: one interpreter per thread",
              "litert.int8": "a LiteRT interpreter is not thread-safe: one interpreter per thread",
              "openvino": "an OpenVINO infer request is not thread-safe: one request per thread"}
# paths that cannot be driven from several threads at all (neither shared nor one object per thread)
THREAD_UNSAFE = {"test.single_thread": "the test path refuses concurrent calls"}
PARITY_EVERY, PARITY_MAX = 7, 64
N_INPUTS = 256  # real digits in the Query Sample Library (all held in memory)


def sharing(path: str, strategy: str) -> str:
    """How N worker threads hold the path: "shared" (one runner), "per-thread", or "" (other strategies)."""
    if strategy != "threads":
        return ""
    return "per-thread" if path in PER_THREAD else "shared"


def allowed_batches(max_batch: int) -> list[int]:
    """Batch sizes a batching server pads to: powers of two below `max_batch`, and `max_batch`."""
    out, b = [], 1
    while b < max_batch:
        out.append(b)
        b *= 2
    return out + [int(max_batch)]


def pad_size(n: int, allowed) -> int:
    return next(b for b in allowed if b >= n)


# --------------------------------------------------------------------------- what a run keeps

class Recorder:
    """Counts queries, keeps every `every`-th output for parity and the batch sizes actually run."""

    def __init__(self, every: int = PARITY_EVERY, limit: int = PARITY_MAX):
        self.every, self.limit = every, limit
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.issued, self.kept, self.batches, self.errors = 0, [], {}, []

    def keep_next(self) -> bool:
        """Called once per issued query: keep its output?"""
        with self.lock:
            self.issued += 1
            return self.issued % self.every == 0 and len(self.kept) < self.limit

    def keep(self, idx: int, out: np.ndarray) -> None:
        with self.lock:
            if len(self.kept) < self.limit:
                self.kept.append((int(idx), np.asarray(out, dtype=np.float64).reshape(-1)))

    def batch(self, n: int) -> None:
        with self.lock:
            self.batches[int(n)] = self.batches.get(int(n), 0) + 1

    def error(self, exc: BaseException) -> None:
        from overhead.child import error_text

        with self.lock:
            if len(self.errors) < 3:
                self.errors.append(error_text(exc))


def _complete(lg, items) -> None:
    """items: [(query id, output array or None)]; LoadGen reads the response bytes during the call."""
    keep, responses = [], []
    for qid, out in items:
        arr = np.ascontiguousarray(out if out is not None else np.zeros(1, np.float32))
        keep.append(arr)
        responses.append(lg.QuerySampleResponse(qid, arr.ctypes.data, arr.nbytes))
    lg.QuerySamplesComplete(responses)


# --------------------------------------------------------------------------- strategies

class ThreadPool:
    """`fns` = one callable per worker thread (the same object when they share a runner)."""

    def __init__(self, lg, fns, x, recorder: Recorder):
        self.lg, self.fns, self.x, self.rec = lg, list(fns), x, recorder
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, args=(fn,), daemon=True) for fn in self.fns]
        for t in self.threads:
            t.start()

    def issue(self, samples) -> None:
        for s in samples:
            self.q.put((s.id, s.index, self.rec.keep_next()))

    def _work(self, fn) -> None:
        x, rec, lg = self.x, self.rec, self.lg
        while True:
            item = self.q.get()
            if item is None:
                return
            qid, idx, keep = item
            try:
                out = fn(x[idx:idx + 1])
            except Exception as exc:  # the query still completes (LoadGen would wait forever); the row fails
                rec.error(exc)
                out = None
            if keep and out is not None:
                rec.keep(idx, out[0])
            rec.batch(1)
            _complete(lg, [(qid, out)])

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join(timeout=30)


class BatchingPool:
    """One worker: the first waiting query opens a batch that closes after `wait_ms` or `max_batch` queries."""

    def __init__(self, lg, fns_by_size: dict, x, recorder: Recorder, *, wait_ms: float, max_batch: int):
        self.lg, self.fns, self.x, self.rec = lg, fns_by_size, x, recorder
        self.allowed = sorted(fns_by_size)
        self.wait_s, self.max_batch = wait_ms / 1e3, int(max_batch)
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    issue = ThreadPool.issue

    def _work(self) -> None:
        x, rec = self.x, self.rec
        while True:
            first = self.q.get()
            if first is None:
                return
            batch, stop = [first], False
            deadline = time.perf_counter() + self.wait_s
            while len(batch) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    item = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            n = len(batch)
            size = pad_size(n, self.allowed)
            idx = [b[1] for b in batch] + [batch[0][1]] * (size - n)
            try:
                out = self.fns[size](np.ascontiguousarray(x[idx]))
            except Exception as exc:
                rec.error(exc)
                out = None
            rec.batch(n)
            for k, (qid, i, keep) in enumerate(batch):
                if keep and out is not None:
                    rec.keep(i, out[k])
            _complete(self.lg, [(qid, None if out is None else out[k]) for k, (qid, _, _) in enumerate(batch)])
            if stop:
                return

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=30)


def _proc_worker(spec: dict, x, work_q, result_q) -> None:
    """A worker process of the ``processes`` strategy: its own threads setting and runner."""
    from overhead import backends as bk
    from overhead.child import error_text

    try:
        bk.enter_process(spec.get("process", "tf"))
        bk.set_threads(int(spec["threads"]))
        if spec.get("process", "tf") == "tf":
            bk.configure_tf()
        runner = _runner(spec["path"], spec, 1)
        runner(x[:1])
        result_q.put(("ready", os.getpid(), None))
    except Exception as exc:
        result_q.put(("fatal", os.getpid(), error_text(exc)))
        return
    while True:
        item = work_q.get()
        if item is None:
            return
        qid, idx, keep = item
        try:
            out = runner(x[idx:idx + 1])
            result_q.put((qid, idx, out[0] if keep else None))
        except Exception as exc:
            result_q.put((qid, idx, error_text(exc)))


class ProcessPool:
    """N spawned worker processes sharing one work queue; a collector thread completes their answers."""

    def __init__(self, lg, spec: dict, workers: int, x, recorder: Recorder, timeout_s: float = 600):
        import multiprocessing as mp

        self.lg, self.rec = lg, recorder
        ctx = mp.get_context("spawn")
        self.work_q, self.result_q = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_proc_worker, args=(spec, x, self.work_q, self.result_q), daemon=True)
                      for _ in range(workers)]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            kind, _pid, err = self.result_q.get(timeout=timeout_s)
            if kind == "fatal":
                self.stop()
                raise RuntimeError(f"worker process failed: {err}")
        self.collector = threading.Thread(target=self._collect, daemon=True)
        self.collector.start()

    def issue(self, samples) -> None:
        for s in samples:
            self.work_q.put((s.id, s.index, self.rec.keep_next()))

    def _collect(self) -> None:
        while True:
            qid, idx, out = self.result_q.get()
            if qid is None:
                return
            if isinstance(out, str):
                self.rec.error(RuntimeError(out))
                out = None
            elif out is not None:
                self.rec.keep(idx, out)
            self.rec.batch(1)
            _complete(self.lg, [(qid, out)])

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        for _ in self.procs:
            self.work_q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        if getattr(self, "collector", None) is not None:
            self.result_q.put((None, None, None))
            self.collector.join(timeout=10)


# --------------------------------------------------------------------------- runners

def _runner(path: str, spec: dict, batch: int):
    """A runner of `path` at `batch` rows; the no-op path returns zeros shaped like the model's outputs."""
    if path == NOOP:
        width = int(spec.get("out_width", 10))
        return lambda x: np.zeros((len(x), width), np.float32)
    from overhead import backends as bk

    return bk.prepare(path, spec["model_path"], batch, int(spec["threads"]), artifacts=spec.get("artifacts"))


def build_pool(lg, item: dict, spec: dict, x, recorder: Recorder):
    """The strategy of `item` around its path; returns (pool, description of how runners are held)."""
    path, strategy, workers = item["path"], item["strategy"], int(item.get("workers", 1))
    if strategy == "thread":
        return ThreadPool(lg, [_runner(path, spec, 1)], x, recorder), "one runner"
    if strategy == "threads":
        if path in THREAD_UNSAFE:
            raise RuntimeError(f"{path} cannot run under threads: {THREAD_UNSAFE[path]}")
        if path in PER_THREAD:
            return ThreadPool(lg, [_runner(path, spec, 1) for _ in range(workers)], x, recorder), "per-thread"
        one = _runner(path, spec, 1)
        return ThreadPool(lg, [one] * workers, x, recorder), "shared"
    if strategy == "processes":
        return ProcessPool(lg, dict(spec, path=path), workers, x, recorder), "per-process"
    if strategy == "batching":
        b = item["batching"]
        fns = {n: _runner(path, spec, n) for n in allowed_batches(int(b["max_batch"]))}
        return BatchingPool(lg, fns, x, recorder, wait_ms=float(b["wait_ms"]), max_batch=int(b["max_batch"])), \
            "one runner per allowed batch size"
    raise ValueError(f"unknown strategy {strategy!r}")


def service_time_s(fn, x, calls: int = 20, budget_s: float = 2.0) -> float:
    """Median seconds of one batch-1 call (warm-up of the path and the bisection's first guess)."""
    fn(x[:1])
    times, t_end = [], time.perf_counter() + budget_s
    for i in range(calls):
        t0 = time.perf_counter()
        fn(x[i % len(x): i % len(x) + 1])
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end and len(times) >= 3:
            break
    return float(np.median(times))


# --------------------------------------------------------------------------- LoadGen

def parse_detail(text: str) -> dict:
    """The result keys of LoadGen's ``mlperf_log_detail.txt`` (one ``:::MLLOG {json}`` line each)."""
    out = {}
    for line in text.splitlines():
        if not line.startswith(":::MLLOG"):
            continue
        try:
            rec = json.loads(line[len(":::MLLOG"):])
        except ValueError:
            continue
        key = rec.get("key", "")
        if key.startswith("result_") or key in ("early_stopping_met", "early_stopping_result", "error_invalid_config"):
            out[key] = rec.get("value")
        if rec.get("metadata", {}).get("is_error"):
            out.setdefault("errors", []).append(f"{key}: {rec.get('value')}")
    return out


def _pct(res: dict, p: str):
    v = res.get(f"result_{p}_percentile_latency_ns")
    return None if v is None else float(v) / 1e3


def run_loadgen(lg, pool, n_samples: int, scenario: str, settings: dict, *, target_qps=None, bound_ms=None,
                expected_s: float = 1e-3) -> dict:
    """One LoadGen test of `pool` in PerformanceOnly mode; returns the parsed verdict and latencies (us)."""
    st = lg.TestSettings()
    st.mode = lg.TestMode.PerformanceOnly
    st.performance_sample_count_override = int(n_samples)
    if scenario == "SingleStream":
        st.scenario = lg.TestScenario.SingleStream
        # LoadGen plans min_duration / expected queries and stops when they are done: guess low (half the
        # measured call) so the plan outlasts the minimum duration, and cap the run at twice the minimum
        st.single_stream_expected_latency_ns = max(1000, int(expected_s / 2 * 1e9))
        st.min_duration_ms = int(settings["ss_min_duration_ms"])
        st.min_query_count = int(settings["ss_min_queries"])
        st.max_duration_ms = int(2 * settings["ss_min_duration_ms"] + 2e3 * settings["ss_min_queries"] * expected_s)
    elif scenario == "Server":
        st.scenario = lg.TestScenario.Server
        st.server_target_qps = float(target_qps)
        st.server_target_latency_ns = int(float(bound_ms) * 1e6)
        st.min_duration_ms = int(settings["server_min_duration_ms"])
        st.min_query_count = int(settings["server_min_queries"])
        st.max_duration_ms = int(settings["server_max_duration_ms"])
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        ls = lg.LogSettings()
        ls.log_output.outdir = tmp
        ls.log_output.copy_summary_to_stdout = False
        ls.enable_trace = False
        sut = lg.ConstructSUT(pool.issue, pool.flush)
        qsl = lg.ConstructQSL(int(n_samples), int(n_samples), lambda idx: None, lambda idx: None)
        cpu0, t0 = time.process_time(), time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, st, ls)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        res = parse_detail((Path(tmp) / "mlperf_log_detail.txt").read_text(errors="replace"))
    n = int(res.get("result_query_count") or 0)
    achieved = res.get("result_completed_samples_per_sec") or res.get("result_qps_without_loadgen_overhead") \
        or res.get("result_qps_with_loadgen_overhead")
    return {"validity": res.get("result_validity"), "perf_ok": res.get("result_perf_constraints_met"),
            "min_duration_ok": res.get("result_min_duration_met"), "min_queries_ok": res.get("result_min_queries_met"),
            "early_stopping_ok": res.get("early_stopping_met", _early_ok(res)),
            "invalid_reason": (res.get("result_invalid_reason") or "").strip(),
            "n_queries": n, "achieved_qps": None if achieved is None else float(achieved),
            "scheduled_qps": res.get("result_scheduled_samples_per_sec"),
            "p50_us": _pct(res, "50.00"), "p90_us": _pct(res, "90.00"), "p99_us": _pct(res, "99.00"),
            "mean_us": None if res.get("result_mean_latency_ns") is None else float(res["result_mean_latency_ns"]) / 1e3,
            "duration_s": round(wall, 3), "client_cpu_us": (cpu / n * 1e6) if n else None}


def _early_ok(res: dict):
    text = res.get("early_stopping_result")
    if text is None:
        return None
    return not bool(re.search(r"would need to run at least|not enough queries", str(text), re.I))


# --------------------------------------------------------------------------- parity under load

def parity_of(path: str, kept, ref: np.ndarray) -> dict:
    """The kept outputs against the reference rows they answer (criterion of overhead.parity)."""
    if path == NOOP:
        return {"parity": "", "parity_n": 0, "logit_rel_err": None, "parity_reason": "no-op path: not judged"}
    if not kept:
        return {"parity": "", "parity_n": 0, "logit_rel_err": None, "parity_reason": "no output kept"}
    from overhead import backends as bk
    from overhead import parity

    idx = np.array([i for i, _ in kept])
    got = np.stack([o for _, o in kept])
    res = parity.compare(got, ref[idx].reshape(len(idx), -1), parity.tier_of(bk.get(path)))
    return {"parity": "fail" if res["problems"] else "pass", "parity_n": int(len(idx)),
            "logit_rel_err": res["logit_rel_err"], "parity_reason": "; ".join(res["problems"])}


# --------------------------------------------------------------------------- the child process

def _inputs(spec: dict):
    from overhead import data, reference
    from overhead.pipeline import input_shape

    x, _ = data.inputs_for(input_shape(spec["model_path"]), int(spec.get("n_inputs", N_INPUTS)), split="test")
    x = np.ascontiguousarray(x, dtype=np.float32)
    ref = reference.keras_reference(spec["model_path"], x, artifacts=spec.get("artifacts"))
    return x, ref


def run_item(lg, item: dict, spec: dict, x, ref, emit) -> None:
    """Prepare the item's strategy, then one LoadGen run per point (Single-Stream, fixed QPS or bisection)."""
    from overhead.experiments.loadgen import min_qps, next_qps

    rec = Recorder()
    if item.get("transport") == "http":
        from overhead.experiments.loadgen_http import HttpPool

        pool = HttpPool(lg, item, spec, x, rec)
        held = "one runner behind a lock in the server"
    else:
        pool, held = build_pool(lg, item, spec, x, rec)
    try:
        probe = pool.probe if hasattr(pool, "probe") else None
        svc = probe() if probe else service_time_s(_single_call(item, spec, pool), x)
        emit(event="prepared", key=item["key"], service_s=svc, held=held)
        done = [tuple(p) for p in item.get("done", [])]
        if item["scenario"] == "SingleStream":
            todo = iter([None]) if not done else iter([])
        elif item.get("qps"):
            todo = iter([q for q in item["qps"] if not any(math.isclose(q, d[0]) for d in done)])
        else:
            todo = None
        while True:
            if todo is not None:
                q = next(todo, "end")
                if q == "end":
                    break
            else:
                q = next_qps(done, workers=int(item.get("workers", 1)) * _batch_gain(item), service_s=svc,
                             bound_ms=float(item["bound_ms"]), floor=min_qps(spec["settings"]),
                             **item.get("bisect", {}))
                if q is None:
                    break
            settings = spec["settings"]
            if item["scenario"] == "Server" and svc * 1e3 >= float(item["bound_ms"]):
                # one call is slower than the bound: LoadGen's verdict is INVALID at any load; a short run says so
                settings = dict(settings, server_max_duration_ms=min(settings["server_max_duration_ms"], 2000))
            rec.reset()
            if hasattr(pool, "mark"):
                pool.mark()
            res = run_loadgen(lg, pool, len(x), item["scenario"], settings, target_qps=q,
                              bound_ms=item.get("bound_ms"), expected_s=svc)
            par = parity_of(item["path"], rec.kept, ref)
            point = {**res, **par, "target_qps": q, "batch_hist": dict(sorted(rec.batches.items())),
                     "errors": list(rec.errors), "held": held, "service_us": svc * 1e6}
            if hasattr(pool, "server_cpu_s"):
                point["server_cpu_us"] = pool.server_cpu_s() * 1e6 / max(res["n_queries"], 1)
            emit(event="point", key=item["key"], point=point)
            if q is not None:
                done.append((q, res["validity"] == "VALID"))
    finally:
        pool.stop()
    emit(event="item_done", key=item["key"])


def _batch_gain(item: dict) -> float:
    """Batching answers several queries per call: the bisection's first guess grows with the batch."""
    if item["strategy"] != "batching":
        return 1
    return max(1.0, min(8.0, float(item["batching"]["max_batch"]) / 2))


def _single_call(item, spec, pool):
    """A callable that runs one query through the pool's own runner (threads/thread) or a fresh one."""
    if isinstance(pool, ThreadPool):
        return pool.fns[0]
    if isinstance(pool, BatchingPool):
        return pool.fns[1]
    return _runner(item["path"], spec, 1)


def main(job: dict) -> int:
    from overhead.child import claim_stdout, error_text

    proto = claim_stdout()

    def emit(**event):
        proto.write(json.dumps(event, default=_plain) + "\n")
        proto.flush()

    from overhead import backends as bk

    kind = job.get("process", "tf")
    bk.enter_process(kind)
    threads = int(job["threads"])
    bk.set_threads(threads)
    if kind == "tf":
        bk.configure_tf()
    import mlperf_loadgen as lg

    try:
        x, ref = _inputs(job)
    except Exception as exc:
        emit(event="fatal", error=error_text(exc))
        return 3
    spec = dict(job, out_width=int(np.prod(ref.shape[1:])))
    emit(event="hello", pid=os.getpid(), threads=threads, readback=bk.threads_readback())
    for item in job["items"]:
        emit(event="start", key=item["key"])
        try:
            run_item(lg, item, spec, x, ref, emit)
        except Exception as exc:  # this item fails; the next ones still run
            emit(event="item_failed", key=item["key"], error=error_text(exc))
    emit(event="done")
    return 0


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.stdin.read())))
