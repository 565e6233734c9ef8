"""Serving under load: every path under MLPerf LoadGen's Single-Stream and Server scenarios -> ``loadgen.csv``.

The parent never imports TensorFlow or LoadGen. It plans items -- (scenario, model, path, threads,
transport, strategy x workers, batching, bound) -- groups them into one fresh child process per
(model, threads, process kind) (``python -m overhead.experiments.loadgen_sut``, JSON job on stdin; the
SUT and the strategies are described there) and streams back one ``point`` per LoadGen run. Every
finished point is appended to ``loadgen.points.jsonl`` at once (append + fsync, as runlog does), so a run
killed mid-bisection resumes from its last finished point; the table is rewritten atomically after
every item. A child that dies fails the item it was in and is restarted without it.

Server capacity: the highest target QPS whose run LoadGen calls VALID (p99 under the bound, enough
queries for its early-stopping estimate), found by :func:`next_qps` -- double until INVALID, halve until
VALID, then bisect geometrically until the bracket is within ``precision``.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

from overhead import backends
from overhead.backends import converters
from overhead.base import atomic, config, envinfo
from overhead.base.settings import QUICK_YAML, Settings, cores, thread_settings
from overhead.experiments import loadgen_rules as rules
from overhead.experiments import loadgen_wrk
from overhead.experiments import sweep
from overhead.experiments.loadgen_core import (  # noqa: F401  (next_qps: re-exported)
    BISECT, EARLY_STOP_MIN_QUERIES, NOOP, SLOW_CAP_MS, PARITY_EVERY, PARITY_MAX, STRATEGIES, THREAD_UNSAFE, capacity, min_qps, next_qps, process_kind, sharing,
)
from overhead.experiments.loadgen_jobs import SutJob
from overhead.experiments.loadgen_table import COLUMNS, PointLog, publishable, rows_of, table  # noqa: F401
from overhead.harness import child

SCENARIOS = ("SingleStream", "Server")
MODELS = ("cnn_seed", "cnn_medium", "resnet18_32px")  # the seed CNN, a mid-size CNN, ResNet-18 at 32 px
# the paths people serve with (the Server scenario's set); Single-Stream runs every registered path
# (keras.jax.predict and numpy.plain left out of the Server set: each bisection now ends in two 10 s runs)
SERVER_PATHS = ("keras.predict", "keras.predict_on_batch", "keras.call", "tf.function", "tf.savedmodel",
                "tf_keras.predict", "jax.jit", "litert", "litert.int8", "onnxruntime", "openvino", "numpy")
BOUNDS_MS = {"cnn_seed": 10.0, "cnn_medium": 10.0, "resnet18_32px": 100.0}
SMALL_BOUND_MS, LARGE_BOUND_MS, LARGE_FLOPS = 10.0, 100.0, 1e8  # models not named: by FLOPs per image
# the strategies and the dynamic batching run on the first model, on paths that show the GIL's role
STRATEGY_PATHS = ("numpy", "tf.function", "litert")
PROCESS_PATHS = ("numpy", "litert")  # each worker process loads its own runtime
BATCHING_PATHS = ("onnxruntime",)
BATCHING_GRID = ((1.0, 8), (5.0, 32))  # (D ms, B): a short wait with a small batch, a long one with a large
HTTP_PATHS = ("noop", "numpy", "litert", "onnxruntime", "keras.predict")  # Single-Stream over HTTP
HTTP_PAYLOADS = ("pydantic", "json", "binary")  # pydantic JSON (the tutorial service), plain JSON, float32 bytes
HTTP_SERVER_WORKERS = (1, 2)  # uvicorn worker processes
HTTP_SS_PAYLOADS = ("pydantic", "binary")  # Single-Stream over HTTP of the paths other than the no-op
HTTP_SERVER_PATHS = ("noop", "litert")  # Server bisection over HTTP (each overloaded run drains slowly)
HTTP_CLIENTS_PER_WORKER = 2  # LoadGen's client connections per server process: one in flight while one is parsed
# every model after the first (a mid-size CNN, ResNet-18 at 100 ms): the Server bisection on the paths that
# can hold load; the budget goes to the first model's full set
LARGE_SERVER_PATHS = ("tf.function", "litert", "onnxruntime", "numpy")
# QUICK: one path of each family in Single-Stream, one Server point, the no-op and one path over HTTP
QUICK_PATHS = ("numpy", "keras.predict", "tf.function", "tf_keras.predict", "jax.jit", "litert", "onnxruntime",
               "openvino")
QUICK_SERVER = ("litert", 500.0)
QUICK_HTTP = ("noop", "litert")

SETTINGS = {**rules.CONFIRM_SETTINGS, **Settings().loadgen.runs}  # LoadGen run lengths (params/*.yaml loadgen.runs)

METHOD = (
    "MLPerf Inference LoadGen (mlcommons-loadgen, PerformanceOnly mode) drives each path through a System Under "
    "Test in a fresh child process per model x thread setting x process kind; queries are real test digits "
    "(256 in the Query Sample Library), batch 1 per query. Single-Stream reports LoadGen's p50/p90/p99; Server "
    "sends Poisson arrivals at a target QPS and a run is VALID when LoadGen says so (p99 under the bound, with "
    "its early-stopping estimate) and its queue is not growing (median latency of the last third of the queries "
    "under {gr:g}x the first third's, or risen by less than {gb:g} % of the bound). Short runs steer a "
    "bisection (double until INVALID, halve until VALID, then geometric bisection to {prec:g} %, at most {maxp} "
    "runs; halving stops at {floor:g} QPS, tried once, where a run can still reach its minimum query count before "
    "its cap: a lower capacity is not resolved and counts as 0); the maximum they find and the first failing point above it are then run "
    "again for at least {cmin:g} s and {cq} queries (capped at {cmax:g} s; a failing maximum steps down by "
    "{step:g}x, at most {cruns} long runs), and only such a long run is published as a maximum. A maximum above "
    "{slack:g} x workers x batch / the service time measured in the same process is impossible: it is flagged "
    "and not published. Deviations from MLPerf's rules, to fit the study's budget on a 2-core machine: "
    "minimum duration {ss} ms per Single-Stream run, {srv} ms per steering Server run and {cmin:g} s per "
    "published Server run instead of 600 s; at least {ssq} queries per Single-Stream run (MLPerf: 1,024) and "
    "{srvq} per Server run (MLPerf: 270,336; a model too slow to reach them before a run's cap gets what "
    "90 % of the cap holds at its target, never under {esq}, and a cap of up to {slow:g} s), enough for LoadGen's early-stopping p99 estimate; steering Server "
    "runs stop after {cap} ms; no accuracy run (parity is checked on every {every}th response, up to {pmax} per "
    "run, against Keras with the study's logit criterion); LoadGen, the SUT and any HTTP client share the "
    "machine's cores with the path they measure.")


def method_text(quick: bool = False, runs: dict | None = None) -> str:
    """The method paragraph for these LoadGen run lengths (default: the study's; quick: params/quick.yaml's)."""
    if runs is None and quick:
        runs = Settings.from_yaml(QUICK_YAML).loadgen.runs
    s = {**SETTINGS, **(runs or {})}

    c = {**rules.CONFIRM_SETTINGS, **{k: v for k, v in s.items() if k.startswith("confirm_")}}
    return METHOD.format(ss=s["ss_min_duration_ms"], srv=s["server_min_duration_ms"], ssq=s["ss_min_queries"],
                         srvq=s["server_min_queries"], cap=s["server_max_duration_ms"], every=PARITY_EVERY,
                         pmax=PARITY_MAX, prec=100 * BISECT["precision"], maxp=BISECT["max_points"],
                         floor=min_qps(s), gr=rules.GROWTH_RATIO, gb=100 * rules.GROWTH_BOUND_SHARE,
                         cmin=c["confirm_min_duration_ms"] / 1e3, cq=c["confirm_min_queries"],
                         cmax=c["confirm_max_duration_ms"] / 1e3, step=rules.CONFIRM_STEP,
                         cruns=rules.CONFIRM_MAX_RUNS, slack=rules.CAPACITY_SLACK,
                         esq=EARLY_STOP_MIN_QUERIES, slow=SLOW_CAP_MS / 1e3)


class LoadgenInputError(ValueError):
    """Bad input to the experiment; the message is one line naming the problem and the fix."""


# --------------------------------------------------------------------------- inputs

def bound_for(model: str, bounds_ms=None, flops=None) -> float:
    bounds = {**BOUNDS_MS, **(bounds_ms or {})}
    if model in bounds:
        return float(bounds[model])
    return LARGE_BOUND_MS if (flops or 0) >= LARGE_FLOPS else SMALL_BOUND_MS


def check_inputs(*, scenarios=SCENARIOS, bounds_ms=None, qps=None, paths=(), strategies=("thread",),
                 workers=None) -> None:
    """Raise LoadgenInputError (one line, with the fix) on input the experiment cannot run."""

    for s in scenarios:
        if s not in SCENARIOS:
            raise LoadgenInputError(f"unknown scenario {s!r}; valid scenarios: {', '.join(SCENARIOS)}")
    for model, b in (bounds_ms or {}).items():
        if not _positive(b):
            raise LoadgenInputError(f"latency bound for {model} must be > 0 ms, got {b!r}; e.g. --bound-ms 10")
    for q in qps or ():
        if not _positive(q):
            raise LoadgenInputError(f"target QPS must be > 0, got {q!r}; e.g. --qps 100")
    for st in strategies:
        if st not in STRATEGIES:
            raise LoadgenInputError(f"unknown strategy {st!r}; valid strategies: {', '.join(STRATEGIES)}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise LoadgenInputError(f"workers must be a positive integer, got {workers!r}; e.g. --workers 2")
    for p in paths:
        if p == NOOP:
            continue
        try:
            backends.get(p)
        except backends.UnknownBackendError as exc:
            raise LoadgenInputError(f"{exc}; run `overhead backends` to see which work here") from None
        if "threads" in strategies and p in THREAD_UNSAFE:
            raise LoadgenInputError(f"path {p} cannot run under threads ({THREAD_UNSAFE[p]}); "
                                    "use --strategy thread or processes")


def _positive(v) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    except TypeError:
        return False


# --------------------------------------------------------------------------- planning

def _item(scenario, model, sha, path, threads, *, transport="inproc", strategy="thread", workers=1,
          batching=None, bound_ms=None, qps=None, payload="", server_workers=None, client="loadgen") -> dict:
    bt = "" if not batching else f"D={batching['wait_ms']:g}ms,B={batching['max_batch']}"
    what = "wrk" if client == "wrk" else "ss" if scenario == "SingleStream" else (
        "q=" + ",".join(f"{q:g}" for q in qps) if qps else "bisect")
    http = f"{payload}x{int(server_workers or 1)}" if transport == "http" else ""
    key = "|".join([scenario, model, sha, path, f"t{threads}", transport, f"{strategy}x{workers}", bt,
                    f"{bound_ms:g}ms" if bound_ms else "", what] + ([http] if http else []))
    clients = None
    if transport == "http" and client == "loadgen":
        clients = 1 if scenario == "SingleStream" else HTTP_CLIENTS_PER_WORKER * int(server_workers or 1)
    return {"key": key, "scenario": scenario, "model": model, "path": path, "threads": int(threads),
            "transport": transport, "strategy": strategy, "workers": int(workers), "batching": batching,
            "bound_ms": bound_ms, "qps": list(qps) if qps else None, "bisect": dict(BISECT), "client": client,
            "payload": payload if transport == "http" else "", "clients": clients,
            "server_workers": (int(server_workers or 1) if transport == "http" else None)}


def plan(models, *, paths=None, threads=(1, None), scenarios=SCENARIOS, bounds_ms=None, quick=False,
         server_paths=None, strategies=("threads", "processes"), strategy_paths=None, workers=None,
         batching_paths=None, http_paths=None, qps=None, shas=None, flops=None) -> list[dict]:
    """Every item of the experiment, small models and the Server bisection first."""

    server_given, strategy_given, http_given = server_paths, strategy_paths, http_paths
    workers = int(workers or cores())
    tset = thread_settings(threads)
    shas, flops = shas or {}, flops or {}
    if quick:
        paths = list(paths if paths is not None else QUICK_PATHS)
        server_paths = list(server_paths if server_paths is not None else [QUICK_SERVER[0]])
        qps = list(qps or [QUICK_SERVER[1]])
        strategy_paths, batching_paths = strategy_paths or (), batching_paths or ()
        http_paths = list(http_paths if http_paths is not None else QUICK_HTTP)
        tset = tset[:1]
    else:

        paths = list(paths if paths is not None else backends.NAMES)
        server_paths = list(server_paths) if server_paths is not None else [p for p in SERVER_PATHS if p in paths]
        strategy_paths = [p for p in (STRATEGY_PATHS if strategy_paths is None else strategy_paths)]
        batching_paths = [p for p in (BATCHING_PATHS if batching_paths is None else batching_paths)]
        http_paths = list(HTTP_PATHS if http_paths is None else http_paths)
    process_paths = list(strategy_paths) if (strategy_given is not None or quick) else list(PROCESS_PATHS)
    http_server_paths = set(http_paths) if http_given is not None else set(HTTP_SERVER_PATHS)
    items = []
    first = models[0] if models else None
    for m in models:
        sha, bound = shas.get(m, ""), bound_for(m, bounds_ms, flops.get(m))
        if "Server" in scenarios:
            later = m != first and not quick and server_given is None
            for p in [p for p in server_paths if p in LARGE_SERVER_PATHS] if later else server_paths:
                items.append(_item("Server", m, sha, p, tset[0], bound_ms=bound, qps=qps))
        if "SingleStream" in scenarios:
            for t in tset:
                for p in [NOOP] + [p for p in paths if p != NOOP]:
                    items.append(_item("SingleStream", m, sha, p, t))
        if m != first:
            continue
        if "Server" in scenarios:
            for st in strategies:
                for p in (process_paths if st == "processes" else strategy_paths):
                    items.append(_item("Server", m, sha, p, 1, strategy=st, workers=workers, bound_ms=bound, qps=qps))
            for p in batching_paths:
                for d, b in BATCHING_GRID:
                    items.append(_item("Server", m, sha, p, 1, strategy="batching",
                                       batching={"wait_ms": d, "max_batch": b}, bound_ms=bound, qps=qps))
        for p in http_paths:
            payloads = HTTP_PAYLOADS if p == NOOP and not quick else ("pydantic",) if quick else HTTP_SS_PAYLOADS
            if "SingleStream" in scenarios:
                for pl in payloads:
                    items.append(_item("SingleStream", m, sha, p, tset[0], transport="http", payload=pl))
            if "Server" in scenarios and not quick and p in http_server_paths:
                grid = [(pl, w) for pl in HTTP_PAYLOADS for w in HTTP_SERVER_WORKERS] if p == NOOP else \
                    [("pydantic", 1)]
                for pl, w in grid:
                    items.append(_item("Server", m, sha, p, tset[0], transport="http", bound_ms=bound, qps=qps,
                                       payload=pl, server_workers=w))
                    if p == NOOP:  # the C load generator's view of the same service
                        items.append(_item("Server", m, sha, p, tset[0], transport="http", payload=pl,
                                           server_workers=w, client="wrk", bound_ms=bound))
    return items


# --------------------------------------------------------------------------- children

def serve_items(job: SutJob, on_event, *, log_path=None, stall_timeout_s: float = 900.0, data_dir=None) -> None:
    """Serve the job's items in fresh SUT children until each ended; a dead child fails the item it was in."""
    todo = [it["key"] for it in job.items]
    by_key = {it["key"]: it for it in job.items}
    for _attempt in range(len(todo) + 1):
        if not todo:
            return
        state = {"current": None, "fatal": None}

        def handle(ev, state=state):
            nonlocal todo
            if not isinstance(ev, dict):
                return
            kind = ev.get("event")
            if kind == "start":
                state["current"] = ev["key"]
            elif kind in ("item_done", "item_failed"):
                todo = [k for k in todo if k != ev["key"]]
                state["current"] = None
            elif kind == "fatal":
                state["fatal"] = ev.get("error")
            on_event(ev)

        done = child.run_child("overhead.experiments.loadgen_sut", ["child"],
                               job=replace(job, items=tuple(by_key[k] for k in todo)), kind=job.process,
                               threads=int(job.threads), on_event=handle, stall_timeout_s=stall_timeout_s,
                               stderr_path=log_path, data_dir=data_dir)
        if not todo:
            return
        if state["fatal"] is not None:
            for k in todo:
                on_event({"event": "item_failed", "key": k, "error": f"child could not start: {state['fatal']}"})
            return
        why = "stalled" if done.stalled else f"child died ({done.failure(200)})"
        culprits = [state["current"]] if state["current"] in todo else list(todo)
        for k in culprits:
            on_event({"event": "item_failed", "key": k, "error": why})
        todo = [k for k in todo if k not in culprits]


# --------------------------------------------------------------------------- the experiment

def run(settings: Settings, *, out_dir=None, artifacts=None, resume=True, progress=True, max_items=None):
    """Run ``settings.loadgen``; write ``loadgen.csv`` (+ ``.meta.json``, ``loadgen.points.jsonl``) in `out_dir`
    (default: the machine's results folder) and return the table (:data:`COLUMNS`).

    `paths` run in Single-Stream (default: every registered path; quick: :data:`QUICK_PATHS`),
    `server_paths` in the Server bisection (default :data:`SERVER_PATHS`), `qps` gives fixed Server
    points instead of the bisection. Raises :class:`LoadgenInputError` on bad input before anything runs.
    """
    lg, quick, data_dir, machine = settings.loadgen, settings.quick, settings.data_dir, settings.machine
    models, scenarios, bounds_ms = list(lg.models), tuple(lg.scenarios), lg.bounds_ms
    if isinstance(bounds_ms, (int, float)) and not isinstance(bounds_ms, bool):
        bounds_ms = {m: bounds_ms for m in models}
    check_inputs(scenarios=scenarios, bounds_ms=bounds_ms, qps=lg.qps,
                 paths=[*(lg.paths or ()), *(lg.server_paths or ()), *(lg.strategy_paths or ()), *(lg.http_paths or ())],
                 strategies=("thread", *lg.strategies), workers=lg.workers)
    machine = machine or envinfo.machine_id()
    out = Path(out_dir) if out_dir else config.results_dir(machine, data_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, log_path = out / "loadgen.csv", out / "loadgen.points.jsonl"
    if not resume and log_path.exists():
        log_path.unlink()
    resolved = sweep.resolve_models(models, (), data_dir)
    for name, p in resolved:
        if not p.exists():
            raise LoadgenInputError(f"model {name} not found at {p}; train it first (make models) or pass a .keras path")
    shas = {name: converters.model_sha(p) for name, p in resolved}
    items = plan([n for n, _ in resolved], paths=lg.paths, threads=lg.threads, scenarios=scenarios,
                 bounds_ms=bounds_ms, quick=quick, server_paths=lg.server_paths, strategies=lg.strategies,
                 strategy_paths=lg.strategy_paths, workers=lg.workers, batching_paths=lg.batching_paths,
                 http_paths=lg.http_paths, qps=lg.qps, shas=shas)
    if max_items is not None:
        items = items[:int(max_items)]
    for it in items:
        it["bisect"] = {**BISECT, **(lg.bisect or {})}
    runs = {**SETTINGS, **lg.runs}
    log = PointLog(log_path)
    base = {"machine": machine}
    paths_of = dict(resolved)
    t0 = time.perf_counter()
    groups: dict[tuple, list] = {}
    for it in items:
        if log.finished(it["key"]) or (it["scenario"] == "SingleStream" and log.points(it["key"])):
            continue  # a Single-Stream item is one run: its point is the whole item
        it["done"] = [(p["target_qps"], p["validity"] == "VALID", p.get("phase") or "steer")
                      for p in log.points(it["key"]) if p.get("target_qps") is not None]
        groups.setdefault((it["model"], it["threads"], process_kind(it["path"])), []).append(it)
    wrk, wrk_how = (None, "no wrk item")
    if any(it.get("client") == "wrk" for its in groups.values() for it in its):
        wrk, wrk_how = loadgen_wrk.ensure_wrk()
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(v) for v in groups.values()), desc="loadgen", disable=not progress)

    def on_event(ev):
        kind = ev.get("event")
        if kind == "point":
            log.append({"key": ev["key"], "point": dict(ev["point"], date=_now())})
        elif kind in ("item_done", "item_failed"):
            log.append({"key": ev["key"], "end": True, "error": ev.get("error")})
            atomic.atomic_write_csv(table(items, log, base), csv_path)
            bar.update(1)

    for (model, t, kind), its in groups.items():
        job = SutJob(model=model, model_path=str(paths_of[model]), threads=t, process=kind, items=tuple(its),
                     settings=runs, artifacts=artifacts, wrk=wrk, wrk_reason=wrk_how)
        serve_items(job, on_event, log_path=out / "loadgen.children.log", data_dir=data_dir)
    bar.close()
    frame = table(items, log, base)
    atomic.atomic_write_csv(frame, csv_path)
    envinfo.write_meta(csv_path, extra={
        "stage": "loadgen", "models": [n for n, _ in resolved], "scenarios": list(scenarios), "quick": quick,
        "settings": runs, "bisection": BISECT,
        "stationarity": {"growth_ratio": rules.GROWTH_RATIO, "growth_bound_share": rules.GROWTH_BOUND_SHARE,
                         "growth_service_times": rules.GROWTH_SERVICE_TIMES},
        "capacity_slack": rules.CAPACITY_SLACK,
        "deviations_from_mlperf": (f"published Server runs last >= {runs['confirm_min_duration_ms'] / 1e3:g} s "
                                   "(MLPerf: 600 s), "
                                   f"steering runs {runs['server_min_duration_ms']} ms; at least "
                                   f"{runs['confirm_min_queries']} queries per published Server "
                                   "run (MLPerf: 270,336); no accuracy run; client and SUT share the cores"), "bounds_ms": {n: bound_for(n, bounds_ms) for n, _ in resolved},
        "threads_settings": sorted({it["threads"] for it in items}), "method": method_text(quick, runs),
        "client_and_server": "the HTTP client (LoadGen + one client thread on raw keep-alive sockets, requests built "
                             "before the run, spread evenly over the server's worker processes before every run; or "
                             "wrk) "
                             f"and the uvicorn server share this machine's {cores()} cores; client_cpu_us / "
                             "server_cpu_us are their CPU time per query",
        "wrk": wrk_how,
        "run_s": round(time.perf_counter() - t0, 1)})
    return frame


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
