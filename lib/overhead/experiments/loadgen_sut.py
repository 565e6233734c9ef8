"""The System Under Test LoadGen drives: any registered path behind a concurrency strategy, plus the child process.

One child process per configuration (``python -m overhead.experiments.loadgen_sut child``, a :class:`SutJob` on
stdin read by :func:`overhead.harness.jobs.child_entry`, JSON lines on the claimed stdout, as the sweep's workers do): it fixes the threads, loads real digits
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
and compared with the Keras reference by :func:`overhead.harness.parity.compare` in the path's precision tier
(the criterion of :func:`overhead.harness.parity.parity`); a failing sample fails the row.
"""
from __future__ import annotations

import gc
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from overhead import backends as bk
from overhead.backends import reference
from overhead.base import data
from overhead.experiments import loadgen_rules as rules
from overhead.experiments import loadgen_wrk
from overhead.experiments.loadgen_core import (
    NOOP,
    PER_THREAD,
    THREAD_UNSAFE,
    BatchingPool,
    ProcessPool,
    Recorder,
    ThreadPool,
    _runner,
    allowed_batches,
    capacity,
    min_qps,
    next_qps,
    server_run_limits,
    service_time_s,
)
from overhead.experiments.loadgen_http import HttpPool, HttpServer
from overhead.experiments.loadgen_jobs import ServeJob, SutJob
from overhead.experiments.pipeline import input_shape
from overhead.harness import jobs, parity
from overhead.harness.child import error_text


def build_pool(lg, item: dict, serve: ServeJob, x, recorder: Recorder):
    """The strategy of `item` around its path (`serve.path`); returns (pool, description of how runners are held)."""
    path, strategy, workers = serve.path, item["strategy"], int(item.get("workers", 1))
    if strategy == "thread":
        return ThreadPool(lg, [_runner(serve, 1)], x, recorder), "one runner"
    if strategy == "threads":
        if path in THREAD_UNSAFE:
            raise RuntimeError(f"{path} cannot run under threads: {THREAD_UNSAFE[path]}")
        if path in PER_THREAD:
            return ThreadPool(lg, [_runner(serve, 1) for _ in range(workers)], x, recorder), "per-thread"
        one = _runner(serve, 1)
        return ThreadPool(lg, [one] * workers, x, recorder), "shared"
    if strategy == "processes":
        return ProcessPool(lg, serve, workers, x, recorder), "per-process"
    if strategy == "batching":
        b = item["batching"]
        fns = {n: _runner(serve, n) for n in allowed_batches(int(b["max_batch"]))}
        return BatchingPool(lg, fns, x, recorder, wait_ms=float(b["wait_ms"]), max_batch=int(b["max_batch"])), \
            "one runner per allowed batch size"
    raise ValueError(f"unknown strategy {strategy!r}")


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
                expected_s: float = 1e-3, stretch: bool = True) -> dict:
    """One LoadGen test of `pool` in PerformanceOnly mode; returns the parsed verdict and latencies (us).
    `stretch`: a slow model's Server run may take fewer queries and a longer cap (:func:`server_run_limits`)."""
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
        st.min_query_count, st.max_duration_ms = server_run_limits(settings, target_qps, stretch)
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
    """The kept outputs against the reference rows they answer (criterion of overhead.harness.parity)."""
    if path == NOOP:
        return {"parity": "", "parity_n": 0, "logit_rel_err": None, "parity_reason": "no-op path: not judged"}
    if not kept:
        return {"parity": "", "parity_n": 0, "logit_rel_err": None, "parity_reason": "no output kept"}

    idx = np.array([i for i, _ in kept])
    got = np.stack([o for _, o in kept])
    res = parity.compare(got, ref[idx].reshape(len(idx), -1), parity.tier_of(bk.get(path)))
    return {"parity": "fail" if res["problems"] else "pass", "parity_n": int(len(idx)),
            "logit_rel_err": res["logit_rel_err"], "parity_reason": "; ".join(res["problems"])}


# --------------------------------------------------------------------------- the child process

def _inputs(job: SutJob):

    x, _ = data.inputs_for(input_shape(job.model_path), int(job.n_inputs), split="test")
    x = np.ascontiguousarray(x, dtype=np.float32)
    ref = reference.keras_reference(job.model_path, x, artifacts=job.artifacts)
    return x, ref


def run_item(lg, item: dict, job: SutJob, x, ref, emit) -> None:
    """Prepare the item's strategy, then one LoadGen run per point: Single-Stream, fixed QPS, or a Server
    bisection whose short runs steer and whose maximum and first failing point are confirmed by long runs."""

    serve = job.serving(item["path"], out_width=int(np.prod(ref.shape[1:])))
    if item.get("client") == "wrk":
        return run_wrk_item(item, job, serve, x, emit)
    rec = Recorder()
    if item.get("transport") == "http":

        pool = HttpPool(lg, item, serve, x, rec)
        held = pool.held
    else:
        pool, held = build_pool(lg, item, serve, x, rec)
    try:
        probe = pool.probe if hasattr(pool, "probe") else None
        svc = probe() if probe else service_time_s(_single_call(serve, pool), x)
        emit(event="prepared", key=item["key"], service_s=svc, held=held)
        for q, phase in _points(item, job, svc):
            settings = rules.confirm_settings(job.settings) if phase == "confirm" else job.settings
            hopeless = item["scenario"] == "Server" and svc * 1e3 >= float(item["bound_ms"])
            if hopeless:
                # one call is slower than the bound: LoadGen's verdict is INVALID at any load; a short run says so
                # (and is not stretched as a slow model's run would be: it was 30 s instead of 2)
                settings = dict(settings, server_max_duration_ms=min(settings["server_max_duration_ms"], 2000))
            rec.reset()
            if hasattr(pool, "mark"):
                pool.mark()
            res = run_loadgen(lg, pool, len(x), item["scenario"], settings, target_qps=q,
                              bound_ms=item.get("bound_ms"), expected_s=svc, stretch=not hopeless)
            par = parity_of(item["path"], rec.kept, ref)
            point = {**res, **par, "target_qps": q, "phase": phase, "batch_hist": dict(sorted(rec.batches.items())),
                     "errors": list(rec.errors), "held": held, "service_us": svc * 1e6,
                     "loadgen_validity": res["validity"]}
            if item["scenario"] == "Server":
                st = rules.stationarity(rec.latencies, bound_s=float(item["bound_ms"]) / 1e3, service_s=svc)
                point.update(st)
                if res["validity"] == "VALID" and st["stationary"] is False:
                    point["validity"] = "INVALID"
                    point["invalid_reason"] = rules.growing_reason(st)
            if hasattr(pool, "server_cpu_s"):
                point["server_cpu_us"] = pool.server_cpu_s() * 1e6 / max(res["n_queries"], 1)
            if hasattr(pool, "conn_split"):
                point["conn_split"] = pool.conn_split  # e.g. "2+2": connections per server process
            emit(event="point", key=item["key"], point=point)
            if q is not None:
                item.setdefault("done", []).append((q, point["validity"] == "VALID", phase))
    finally:
        pool.stop()
    emit(event="item_done", key=item["key"])


def run_wrk_item(item: dict, job: SutJob, serve: ServeJob, x, emit) -> None:
    """The wrk cross-check of one HTTP configuration: one wrk run per connection count, on its own server."""
    if not job.wrk:
        raise RuntimeError(job.wrk_reason or loadgen_wrk.MISSING)
    server = HttpServer(serve, x.shape[1:], workers=int(item.get("server_workers") or 1))
    try:
        emit(event="prepared", key=item["key"], service_s=None, held="wrk")
        duration = float(job.settings.get("wrk_duration_s", loadgen_wrk.DURATION_S))
        for c in item.get("connections") or loadgen_wrk.CONNECTIONS:
            if duration >= 2:  # a warm-up second: connections opened, the server's first requests served
                loadgen_wrk.run_wrk(job.wrk, server.port, item["payload"], x, connections=c, duration_s=1)
            cpu0 = server.cpu_s()
            res = loadgen_wrk.run_wrk(job.wrk, server.port, item["payload"], x, connections=c, duration_s=duration)
            res["server_cpu_us"] = (server.cpu_s() - cpu0) * 1e6 / max(res["n_queries"], 1)
            emit(event="point", key=item["key"], point=dict(res, phase="wrk", parity="",
                                                              parity_reason="wrk: answers not read"))
    finally:
        server.stop()
    emit(event="item_done", key=item["key"])


def _points(item: dict, job: SutJob, svc: float):
    """(target QPS, phase) of the item's runs, each decided after the previous one finished (item["done"])."""
    done = item.setdefault("done", [])
    done[:] = [(d[0], d[1], d[2] if len(d) > 2 else "steer") for d in done]
    if item["scenario"] == "SingleStream":
        if not done:
            yield None, "single-stream"
        return
    if item.get("qps"):
        for q in item["qps"]:
            if not any(math.isclose(q, d[0]) for d in done):
                yield q, "points"
        return
    floor = min_qps(job.settings)
    while True:
        short = [(q, v) for q, v, ph in done if ph == "steer"]
        q = next_qps(short, workers=int(item.get("workers", 1)) * _batch_gain(item), service_s=svc,
                     bound_ms=float(item["bound_ms"]), floor=floor, **item.get("bisect", {}))
        if q is None:
            break
        yield q, "steer"
    if not item.get("confirm", True):
        return
    short = [(q, v) for q, v, ph in done if ph == "steer"]
    lo = capacity(short) or None
    hi = min([q for q, v in short if not v and (lo is None or q > lo)], default=None)
    while True:
        q = rules.next_confirm([(q, v) for q, v, ph in done if ph == "confirm"], lo=lo, hi=hi, floor=floor)
        if q is None:
            return
        yield q, "confirm"


def _batch_gain(item: dict) -> float:
    """Batching answers several queries per call: the bisection's first guess grows with the batch."""
    if item["strategy"] != "batching":
        return 1
    return max(1.0, min(8.0, float(item["batching"]["max_batch"]) / 2))


def _single_call(serve: ServeJob, pool):
    """A callable that runs one query through the pool's own runner (threads/thread) or a fresh one."""
    if isinstance(pool, ThreadPool):
        return pool.fns[0]
    if isinstance(pool, BatchingPool):
        return pool.fns[1]
    return _runner(serve, 1)


def measure_job(job: SutJob, proto) -> int:
    """The SUT child: the job's items in order, events as JSON lines on `proto`."""

    def emit(**event):
        proto.write(json.dumps(event, default=_plain) + "\n")
        proto.flush()


    kind = job.process
    bk.enter_process(kind)
    threads = int(job.threads)
    bk.set_threads(threads)
    if kind == "tf":
        bk.configure_tf()
    import mlperf_loadgen as lg

    try:
        x, ref = _inputs(job)
    except Exception as exc:
        emit(event="fatal", error=error_text(exc))
        return 3
    gc.collect()
    gc.freeze()  # what the imports and the reference built is never garbage: full collections during a run skip it
    emit(event="hello", pid=os.getpid(), threads=threads, readback=bk.threads_readback())
    for item in job.items:
        emit(event="start", key=item["key"])
        try:
            run_item(lg, item, job, x, ref, emit)
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


def main(argv=None) -> int:
    return jobs.child_entry(SutJob, measure_job, argv)  # a SutJob on stdin


if __name__ == "__main__":
    sys.exit(main())
