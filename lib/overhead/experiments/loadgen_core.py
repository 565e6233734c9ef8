"""What the LoadGen parent, its System Under Test and its HTTP service share: the strategies and their worker
pools, the runners, the service-time probe, and the Server bisection (pure). The children's jobs are in
:mod:`overhead.experiments.loadgen_jobs`.

Strategies (:data:`STRATEGIES`) are described in :mod:`overhead.experiments.loadgen_sut`.
"""
from __future__ import annotations

import math
import os
import queue
import threading
import time

import numpy as np

from overhead import backends as bk
from overhead.base import paths
from overhead.experiments.loadgen_jobs import ServeJob
from overhead.harness.child import error_text

BISECT = {"precision": 0.15, "max_points": 8}
NOOP = "noop"  # a path that returns zeros at once: what LoadGen, the SUT and HTTP cost without a model
STRATEGIES = ("thread", "threads", "processes", "batching")
# paths whose runner is not thread-safe (a LiteRT interpreter, an OpenVINO infer request): one per thread
PER_THREAD = {e.name: e.per_thread for e in paths.CATALOGUE if e.per_thread}
# paths that cannot be driven from several threads at all (neither shared nor one object per thread)
THREAD_UNSAFE = {"test.single_thread": "the test path refuses concurrent calls"}
PARITY_EVERY, PARITY_MAX = 7, 64


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
            self.latencies = []  # (issue time, seconds to completion) per query, as the SUT saw it

    def answered(self, t_issue: float, t_done: float) -> None:
        self.latencies.append((t_issue, t_done - t_issue))  # list.append is atomic under the GIL

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

        with self.lock:
            if len(self.errors) < 3:
                self.errors.append(error_text(exc))


def _complete(lg, items, rec: Recorder | None = None) -> None:
    """items: [(query id, output array or None, issue time)]; LoadGen reads the response bytes during the call."""
    keep, responses = [], []
    now = time.perf_counter()
    for qid, out, t_issue in items:
        if rec is not None:
            rec.answered(t_issue, now)
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
        now = time.perf_counter()
        for s in samples:
            self.q.put((s.id, s.index, self.rec.keep_next(), now))

    def _work(self, fn) -> None:
        x, rec, lg = self.x, self.rec, self.lg
        while True:
            item = self.q.get()
            if item is None:
                return
            qid, idx, keep, t_issue = item
            try:
                out = fn(x[idx:idx + 1])
            except Exception as exc:  # the query still completes (LoadGen would wait forever); the row fails
                rec.error(exc)
                out = None
            if keep and out is not None:
                rec.keep(idx, out[0])
            rec.batch(1)
            _complete(lg, [(qid, out, t_issue)], rec)

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
            for k, (qid, i, keep, _t) in enumerate(batch):
                if keep and out is not None:
                    rec.keep(i, out[k])
            _complete(self.lg, [(qid, None if out is None else out[k], t) for k, (qid, _, _, t) in enumerate(batch)],
                      rec)
            if stop:
                return

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=30)


def _proc_worker(job: ServeJob, x, work_q, result_q) -> None:
    """A worker process of the ``processes`` strategy: its own threads setting and runner."""

    try:
        bk.enter_process(job.process)
        bk.set_threads(int(job.threads))
        if job.process == "tf":
            bk.configure_tf()
        runner = _runner(job, 1)
        runner(x[:1])
        result_q.put(("ready", os.getpid(), None))
    except Exception as exc:
        result_q.put(("fatal", os.getpid(), error_text(exc)))
        return
    while True:
        item = work_q.get()
        if item is None:
            return
        qid, idx, keep, t_issue = item
        try:
            out = runner(x[idx:idx + 1])
            result_q.put((qid, idx, out[0] if keep else None, t_issue))
        except Exception as exc:
            result_q.put((qid, idx, error_text(exc), t_issue))


class ProcessPool:
    """N spawned worker processes sharing one work queue; a collector thread completes their answers."""

    def __init__(self, lg, job: ServeJob, workers: int, x, recorder: Recorder, timeout_s: float = 600):
        import multiprocessing as mp

        self.lg, self.rec = lg, recorder
        ctx = mp.get_context("spawn")
        self.work_q, self.result_q = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_proc_worker, args=(job, x, self.work_q, self.result_q), daemon=True)
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
        now = time.perf_counter()  # echoed back by the worker: completion is timed here, in the same clock
        for s in samples:
            self.work_q.put((s.id, s.index, self.rec.keep_next(), now))

    def _collect(self) -> None:
        while True:
            qid, idx, out, t_issue = self.result_q.get()
            if qid is None:
                return
            if isinstance(out, str):
                self.rec.error(RuntimeError(out))
                out = None
            elif out is not None:
                self.rec.keep(idx, out)
            self.rec.batch(1)
            _complete(self.lg, [(qid, out, t_issue)], self.rec)

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
            self.result_q.put((None, None, None, None))
            self.collector.join(timeout=10)


# --------------------------------------------------------------------------- runners

def _runner(job: ServeJob, batch: int):
    """A runner of `job.path` at `batch` rows; the no-op path returns zeros shaped like the model's outputs."""
    if job.path == NOOP:
        width = int(job.out_width)
        return lambda x: np.zeros((len(x), width), np.float32)

    return bk.prepare(job.path, job.model_path, batch, int(job.threads), artifacts=job.artifacts)


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


def process_kind(path: str) -> str:
    """The worker-process kind a path needs (the no-op path: a TF worker)."""
    return "tf" if path == NOOP else (bk.get(path).process or "tf")


# --------------------------------------------------------------------------- bisection (pure)

def next_qps(done, *, workers: float = 1, service_s: float = 1e-3, bound_ms: float = 10.0,
             precision: float = BISECT["precision"], max_points: int = BISECT["max_points"],
             start=None, floor: float = 0.0) -> float | None:
    """The next target QPS of a Server bisection given the finished points `done` = [(qps, valid), ...].

    First guess: half the capacity of `workers` servers of `service_s` each. Doubles until a run is
    INVALID, halves until one is VALID, then bisects (geometric mean) between the highest VALID and
    the lowest INVALID above it until they are within `precision`. None: finished. A path whose single
    call is slower than the bound stops after its first INVALID run (no load can bring p99 under it);
    halving stops at `floor` (runs below it cannot reach their minimum query count), which is tried once.
    """
    done = [(float(q), bool(v)) for q, v in done]
    if not done:
        guess = start or 0.5 * workers / max(service_s, 1e-6)
        return float(f"{guess:.4g}")
    if len(done) >= max_points:
        return None
    valid = [q for q, v in done if v]
    lo = max(valid) if valid else None
    above = [q for q, v in done if not v and (lo is None or q > lo)]
    hi = min(above) if above else None
    if hi is None:
        return float(f"{2 * lo:.4g}")
    if lo is None:
        if service_s * 1e3 >= bound_ms or hi < 0.01 * workers / max(service_s, 1e-6):
            return None
        if hi / 4 < floor:  # the floor itself is the last point worth a run (below it none can finish)
            return float(f"{floor:.4g}") if hi > floor * (1 + precision) else None
        return float(f"{hi / 4:.4g}")
    if hi / lo <= 1 + precision:
        return None
    return float(f"{math.sqrt(lo * hi):.4g}")


def capacity(done) -> float:
    """The highest VALID target QPS of a bisection (0 if none was VALID)."""
    return max([float(q) for q, v in done if v], default=0.0)


# LoadGen's early-stopping p99 estimate (99 % confidence) can pass only after 459 queries with none over the bound:
# a Server run never asks for fewer, whatever its model's speed
EARLY_STOP_MIN_QUERIES = 500
FILL = 0.9  # a run asks for the queries 90 % of its time cap holds at the target (Poisson slack)
SLOW_CAP_MS = 30_000  # a slow model's run may last up to this (the confirming runs' cap) to reach its queries


def server_run_limits(settings, target_qps, stretch: bool = True) -> tuple[int, int]:
    """(minimum query count, time cap in ms) of one Server run at `target_qps`. The stage's (1,024 queries,
    12 s) when they fit; for a slow model fewer queries (what the cap holds, never under
    :data:`EARLY_STOP_MIN_QUERIES`) and a longer cap (up to :data:`SLOW_CAP_MS`). A fixed 1,024 queries in
    12 s made every run of a model slower than ~85 QPS stop at its cap first: "exited early", INVALID at
    any load, so ResNet-18 had no Server figure. `stretch` False: the settings' own limits (a run that only has
    to show a verdict already known)."""
    n, cap = int(settings["server_min_queries"]), int(settings["server_max_duration_ms"])
    q = max(float(target_qps or 0), 1e-9)
    if not stretch or n <= FILL * q * cap / 1e3:
        return n, cap
    n = min(n, max(EARLY_STOP_MIN_QUERIES, int(FILL * q * cap / 1e3)))
    return n, int(min(max(cap, SLOW_CAP_MS), max(cap, 1e3 * n / (FILL * q))))


def min_qps(settings) -> float:
    """The lowest target QPS a Server run can reach its minimum query count at, before its longest cap."""
    n = min(int(settings["server_min_queries"]), EARLY_STOP_MIN_QUERIES)
    cap = max(int(settings["server_max_duration_ms"]), SLOW_CAP_MS)
    return round(n / (FILL * cap / 1e3), 1)