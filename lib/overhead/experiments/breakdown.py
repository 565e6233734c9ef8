"""Where a batch-1 call's time goes: the Keras / TF inference paths decomposed into buckets.

Method (explained in notebooks/04_pipeline.ipynb):

1. **Wall-clock stack sampling** over many calls: a periodic ``SIGALRM`` (``setitimer``, every
   3.1 ms, not a multiple of any call period) runs a handler that records the main thread's whole
   Python stack. Each timer expiration is one sample worth one interval; expirations that queued
   while the thread sat in a long C call all count there. The handler's own time is taken out of
   the calls' time, and so is the slowdown a sample causes its call afterwards (signal delivery),
   measured as the difference of the median sampled and unsampled call. Sampling rather than
   cProfile: cProfile's per-call hooks (and, on Python 3.11, de-specialised bytecode while any
   profiler is set) slow the Python parts of these calls down by more than a calibration on
   synthetic calls predicts (its corrected sums missed the median by 30-250 % here), whereas the
   sampler's cost is measured in the run itself. cProfile still counts the calls per inference,
   and the summary's ``cprofile_us`` shows its slowdown.
2. **Buckets**: a sample's bucket comes from its stack, outermost frame first, by :data:`RULES`
   (module path / function name patterns): the innermost frame a rule names decides, except that
   tracing and callbacks absorb everything below them. A stack whose innermost frame is on a
   ``TFE_Py_Execute`` / ``TFE_Py_FastPathExecute`` line is in TF's C++ runtime, unless it runs a
   tf.data op (then tf.data) or a conversion.
3. **Kernels**: for graph paths the TensorFlow profiler's host events of the op kernels (per op:
   median duration x count per call) are moved out of "TF C++ runtime". Eager ops have no separate
   kernel events, so ``keras.call`` keeps "TF C++ runtime + kernels".
4. **Check**: plain rounds (``timing.measure``) alternate with the sampled ones, so the measured
   median comes from the same stretch of time. Gross outliers (calls slower than 2x the median:
   preempted on a shared machine) are left out of both; the buckets' sum (samples x interval /
   calls) is compared with the median and with the mean of the plain calls. Nothing rescales the
   buckets to either: the discrepancy is what the method leaves unexplained, and on a noisy
   machine the gap between the median and the mean of the calls.
"""
from __future__ import annotations

import functools
import linecache
import math
import re
import signal
import sys
import time

from overhead import backends as registry
from overhead.base import config, data, envinfo
from overhead.experiments import sweep
from overhead.experiments.pipeline import input_shape, save_rows
from overhead.harness import timing
from overhead.harness.child import error_text

DATA = "data adapter & tf.data"
TRACING = "tracing & graph building"
CALLBACKS = "callbacks"
TFFUNC = "tf.function call & arguments"
KERAS = "Keras Python (model call, predict loop)"
DISPATCH = "eager op dispatch (Python)"
CONVERT = "tensor<->NumPy conversion"
CPP = "TF C++ runtime"
CPP_EAGER = "TF C++ runtime + kernels"
KERNELS = "kernels"
OTHER = "other Python"
BUCKETS = (DATA, TRACING, CALLBACKS, TFFUNC, KERAS, DISPATCH, CONVERT, CPP, CPP_EAGER, KERNELS, OTHER)
ABSORBING = frozenset({TRACING, CALLBACKS})
COLUMNS = ["machine", "model", "backend", "bucket", "us_per_call", "share", "measured_median_us", "method"]
DEFAULT_BACKENDS = ("keras.predict", "keras.predict_on_batch", "keras.call", "tf.function", "tf_keras.predict")
EAGER = frozenset({"keras.call", "tf_keras.call"})  # eager ops: no separate kernel events
INTERVAL_S = 3.1e-3
OUTLIER_FACTOR = 2.0  # calls slower than this x the median are left out (preempted), sampled and plain alike

# (bucket, path pattern, function-name pattern); the first match wins. Paths are relative to
# site-packages ("~" for builtins in cProfile keys).
RULES = (
    (CONVERT, r"^tensorflow/python/framework/(tensor|ops)\.py$", r"^(numpy|_numpy|__array__)$"),
    (CONVERT, r"^tensorflow/python/framework/(constant_op|constant_tensor_conversion|tensor_conversion"
              r"|tensor_conversion_registry)\.py$", None),
    (CONVERT, r"^tensorflow/python/framework/ops\.py$", r"^convert_to_tensor"),
    (CONVERT, r"^keras/", r"^(convert_to_numpy|convert_to_np_if_not_ragged|convert_to_tensor)$"),
    (TRACING, r"^tensorflow/python/eager/polymorphic_function/tracing_compilation\.py$",
     r"^_create_concrete_function$"),
    (TRACING, r"^tensorflow/python/(framework/func_graph\.py|autograph/|data/ops/structured_function\.py)", None),
    (CALLBACKS, r"^keras/src/callbacks/", None),
    (CALLBACKS, r"^tf_keras/src/callbacks\.py$", None),  # Keras 2 (tf-keras)
    (DATA, r"^keras/src/trainers/(data_adapters/|epoch_iterator\.py)", None),
    (DATA, r"^tf_keras/src/engine/data_adapter\.py$", None),
    (DATA, r"^tensorflow/python/(data/|ops/gen_(experimental_)?dataset_ops\.py)", None),
    (TFFUNC, r"^tensorflow/(python/eager/polymorphic_function/|core/function/)", None),
    (KERAS, r"^(tf_)?keras/", None),
    (DISPATCH, r"^tensorflow/python/(ops/|eager/execute\.py|util/dispatch\.py|framework/op_callbacks\.py)", None),
)
_COMPILED = [(b, re.compile(p), re.compile(n) if n else None) for b, p, n in RULES]
EXEC_RE = re.compile(r"TFE_Py_(FastPath)?Execute")
KERNEL_EVENT_RE = re.compile(r"^[^\s:]+:([A-Za-z_]\w*)$")  # "scope/op:OpType" on the host plane
NOT_KERNELS = re.compile(r"Iterator|Dataset")


# --------------------------------------------------------------------------- pure functions

def short_path(filename: str) -> str:
    """A file name relative to site-packages ('stdlib/...' for the standard library)."""
    f = filename.replace("\\", "/")
    if "/site-packages/" in f:
        return f.split("/site-packages/", 1)[1]
    m = re.search(r"/lib/python3\.\d+/(.*)$", f)
    return f"stdlib/{m.group(1)}" if m else f


@functools.lru_cache(maxsize=65536)
def classify(func) -> str | None:
    """The bucket a function ((file, first line, name), as cProfile keys it) names, or None."""
    path, name = short_path(func[0]), func[2]
    for bucket, p, n in _COMPILED:
        if p.search(path) and (n is None or n.search(name)):
            return bucket
    return None


def resolve(own, inherited: str, executes: bool = False) -> str:
    """Bucket of code with rule-bucket `own` (None: unnamed) running in context `inherited`."""
    if inherited in ABSORBING:
        return inherited
    if executes:
        return inherited if inherited in (DATA, CONVERT) else CPP
    return own if own is not None else inherited


def stack_bucket(stack, line_text: str = "") -> str:
    """Bucket of one sample: `stack` of function keys outermost first, `line_text` the source line
    the innermost frame was executing (a C++ execute call on it puts the sample in C++)."""
    ctx = OTHER
    for func in stack:
        ctx = resolve(classify(func), ctx)
    if EXEC_RE.search(line_text or ""):
        ctx = resolve(None, ctx, executes=True)
    return ctx


def aggregate(samples, interval_s: float, calls, bucket_of=stack_bucket) -> dict:
    """Seconds per call and bucket from samples [(call index, stack, line text, expirations)],
    over the calls in `calls` (a set of indices)."""
    out: dict = {}
    for call, stack, line, count in samples:
        if call in calls:
            b = bucket_of(stack, line)
            out[b] = out.get(b, 0.0) + count * interval_s
    return {b: s / max(len(calls), 1) for b, s in out.items()}


def kernel_seconds_per_call(durations: dict, n_calls: int) -> float:
    """Kernel time per call from {op event name: [durations, s]}: per op median x count per call."""
    import numpy as np

    return sum(float(np.median(d)) * len(d) / n_calls for d in durations.values() if len(d))


def finish(buckets: dict, kernel_s: float | None, eager: bool) -> dict:
    """Split C++ time into runtime and kernels (graph paths), clamp negatives, order the buckets."""
    b = dict(buckets)
    if kernel_s is not None and kernel_s > 0 and not eager:
        k = min(kernel_s, b.get(CPP, 0.0))
        b[KERNELS] = b.get(KERNELS, 0.0) + k
        b[CPP] = b.get(CPP, 0.0) - k
    elif eager and CPP in b:
        b[CPP_EAGER] = b.pop(CPP)
    return {k: max(0.0, b[k]) for k in BUCKETS if k in b}


# --------------------------------------------------------------------------- sampling

def _checkpoint():
    return None


class Sampler:
    """Periodic SIGALRM stack sampler of the main thread over calls of `fn` (see the module docstring).

    Successive :meth:`run` calls accumulate: ``samples`` [(call, stack keys, line, expirations)],
    ``walls`` and ``handler_s`` (seconds per call), call indices continuing across runs."""

    def __init__(self, interval_s: float = INTERVAL_S):
        self.dt = float(interval_s)
        self.samples, self.walls, self.handler_s = [], [], []
        self.inside, self.call = False, -1

    def _handler(self, signum, frame):
        t = time.perf_counter()
        # grid points passed since the last handler; a signal can arrive tens of us after its grid
        # point, so no cut at the call's start (the harness between calls is ~1 % of the time)
        count = math.floor((t - self.t0) / self.dt) - self.done
        if self.inside and count > 0 and frame is not None and frame is not self.stop:
            stack, f = [], frame
            while f is not None and f is not self.stop:
                stack.append((f.f_code.co_filename, f.f_code.co_firstlineno, f.f_code.co_name))
                f = f.f_back
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno) if frame.f_lineno else ""
            self.samples.append((self.call, tuple(reversed(stack)), line, count))
        end = time.perf_counter()
        self.done = math.floor((end - self.t0) / self.dt)  # expirations during the handler are dropped
        if self.inside:
            self.handler_s[-1] += end - t

    def run(self, fn, calls: int) -> None:
        """Call `fn` `calls` times while sampling (GC off)."""

        self.done, self.stop = 0, sys._getframe()
        old = signal.signal(signal.SIGALRM, self._handler)
        signal.siginterrupt(signal.SIGALRM, False)  # restart system calls other threads make
        try:
            with timing.gc_disabled():
                self.t0 = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, self.dt, self.dt)
                for _ in range(calls):
                    self.call += 1
                    self.handler_s.append(0.0)
                    self.call_start = time.perf_counter()
                    self.inside = True
                    fn()
                    _checkpoint()  # a function entry: a signal pending since fn's last C call is handled now
                    self.inside = False
                    self.walls.append(time.perf_counter() - self.call_start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, old)


def profiled_calls(fn, calls: int = 20) -> dict:
    """Python function calls and builtin calls per call of `fn`, counted by cProfile (and its time)."""
    import cProfile
    import pstats

    pr, t0 = cProfile.Profile(), time.perf_counter()
    pr.runcall(lambda: [fn() for _ in range(calls)])
    wall = time.perf_counter() - t0
    st = pstats.Stats(pr).stats
    py = sum(v[1] for f, v in st.items() if f[0] != "~")
    return {"py_calls": py / calls, "builtin_calls": sum(v[1] for f, v in st.items() if f[0] == "~") / calls,
            "cprofile_wall_s": wall / calls}


def tf_kernel_durations(fn, calls: int, logdir) -> dict:
    """Run `fn` under the TensorFlow profiler (host tracer only); {op kernel event: [seconds]}.

    Host-plane events named like ``scope/op:OpType`` are the op kernels of graph execution;
    tf.data's threads and iterator / dataset ops are left out."""
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    opts = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                    device_tracer_level=0)
    tf.profiler.experimental.start(str(logdir), options=opts)
    try:
        for _ in range(calls):
            fn()
    finally:
        tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as fh:
        space.ParseFromString(fh.read())
    out: dict = {}
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_data"):
                continue
            for e in line.events:
                m = KERNEL_EVENT_RE.match(names.get(e.metadata_id, ""))
                if m and not NOT_KERNELS.search(m.group(1)):
                    out.setdefault(m.group(0), []).append(e.duration_ps * 1e-12)
    return out


def central_calls(net_s, sampled_calls, typical_s: float, factor: float = 2.5) -> tuple[set, float]:
    """The calls that count, and the slowdown one sample causes (s).

    A sampled call weighs a whole interval, so any rule that keeps sampled and unsampled calls at
    different rates biases the sum; hence only gross outliers are dropped (calls slower than
    `factor` x `typical_s`, the plain median: preempted on a shared machine), after taking out of
    each sampled call the slowdown its samples caused (signal delivery, ~0.1-0.3 ms on a VM),
    estimated as the difference of the median sampled and unsampled call."""
    import numpy as np

    net = np.asarray(net_s, dtype=float)
    k = np.bincount(np.asarray(list(sampled_calls), dtype=int), minlength=len(net))[: len(net)]
    perturb = 0.0
    if (k > 0).any() and (k == 0).sum() >= 10:
        perturb = max(0.0, float(np.median(net[k > 0]) - np.median(net[k == 0])))
    return set(np.flatnonzero(net - perturb * k <= factor * typical_s).tolist()), perturb


def top_functions(samples, interval_s: float, calls, n: int = 3) -> list[dict]:
    """Per bucket, the innermost functions holding most of its samples (µs per call)."""
    acc: dict = {}
    for call, stack, line, count in samples:
        if call in calls:
            f = stack[-1]
            key = (stack_bucket(stack, line), f"{short_path(f[0])}:{f[1]}({f[2]})")
            acc[key] = acc.get(key, 0.0) + count * interval_s / max(len(calls), 1) * 1e6
    rows = sorted(({"bucket": b, "function": f, "us_per_call": v} for (b, f), v in acc.items()),
                  key=lambda r: (BUCKETS.index(r["bucket"]), -r["us_per_call"]))
    return [r for i, r in enumerate(rows) if i < n or rows[i - n]["bucket"] != r["bucket"]]


def decompose(fn, *, eager: bool = False, budget_s: float = 4.0, interval_s: float = INTERVAL_S,
              rounds: int = 5, max_calls: int = 50_000, kernels: bool = True, measure_s: float = 1.0) -> dict:
    """Decompose one (warmed-up) call of `fn`; see the module docstring.

    Sampled rounds alternate with plain rounds (``timing.measure``), so the measured median comes
    from the same stretch of time as the samples on a machine whose load drifts."""
    import tempfile

    import numpy as np


    per_call = float(np.median(timing.measure(fn, budget_s=0.2, min_samples=3, max_samples=2000))) * 1e-9
    calls = int(min(max_calls, max(2 * rounds, budget_s / max(per_call, 1e-9))))
    sampler, plain = Sampler(interval_s), []
    for _ in range(rounds):
        plain.append(timing.measure(fn, budget_s=measure_s / rounds, min_samples=3, max_samples=5000,
                                    warmup_calls=1, warmup_s=0.0))
        sampler.run(fn, -(-calls // rounds))
    net = np.asarray(sampler.walls) - np.asarray(sampler.handler_s)
    hits = [s[0] for s in sampler.samples]
    plain_s = np.concatenate(plain) * 1e-9
    measured = float(np.median(plain_s))
    keep, perturb_s = central_calls(net, hits, measured, OUTLIER_FACTOR)
    trimmed = float(plain_s[plain_s <= OUTLIER_FACTOR * measured].mean())
    buckets = aggregate(sampler.samples, interval_s, keep)
    sampled_s = sum(buckets.values())
    n_hits = sum(1 for h in hits if h in keep) / max(len(keep), 1)
    # each sample stretches its call by perturb_s, and grid points in that stretch were counted too
    scale = max(0.0, 1.0 - perturb_s * n_hits / sampled_s) if sampled_s > 0 else 1.0
    buckets = {b: v * scale for b, v in buckets.items()}
    kernel_s = None
    if kernels and not eager:
        with tempfile.TemporaryDirectory(prefix="tfprof-") as tmp:
            k_calls = max(5, min(200, int(budget_s / 4 / max(per_call, 1e-9))))
            kernel_s = kernel_seconds_per_call(tf_kernel_durations(fn, k_calls, tmp), k_calls) or None
    buckets = finish(buckets, kernel_s, eager)
    counts = profiled_calls(fn, max(3, min(50, int(0.5 / max(per_call, 1e-9)))))
    total = sum(buckets.values())
    hit = np.zeros(len(net), bool)
    hit[hits] = True
    us = 1e6
    return {"buckets": buckets, "sum_s": total, "measured_median_s": measured,
            "top": top_functions(sampler.samples, interval_s, keep),
            "summary": {"measured_median_us": measured * us, "sum_us": total * us,
                        "discrepancy_pct": (total / measured - 1) * 100,
                        "within_10pct": bool(abs(total / measured - 1) <= 0.10),
                        "plain_mean_us": trimmed * us, "discrepancy_vs_mean_pct": (total / trimmed - 1) * 100,
                        "kernel_us": None if kernel_s is None else kernel_s * us, "calls": len(net),
                        "calls_used": len(keep), "samples": sum(s[3] for s in sampler.samples if s[0] in keep),
                        "handler_us_per_call": float(np.mean(sampler.handler_s)) * us,
                        "perturbation_us_per_sample": perturb_s * us,
                        "sampled_call_us": float(np.median(net[hit])) * us if hit.any() else float("nan"),
                        "unsampled_call_us": float(np.median(net[~hit])) * us if (~hit).any() else float("nan"),
                        "python_calls": counts["py_calls"], "builtin_calls": counts["builtin_calls"],
                        "cprofile_us": counts["cprofile_wall_s"] * us}}


def run(models, backends=DEFAULT_BACKENDS, *, threads=None, budget_s: float = 4.0, interval_s: float = INTERVAL_S,
        extra_models=(), data_dir=None, machine=None, artifacts=None, out_dir=None, progress: bool = True):
    """Decompose batch-1 calls of models x backends in this process; write breakdown.csv.

    Returns (rows as written, a summary per model x backend with the sum-vs-median check, the top
    functions of every bucket). Rows of other (model, backend) pairs already in the file are kept.
    """
    import os
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm


    names = list(backends or DEFAULT_BACKENDS)
    for n in names:
        registry.get(n)
    threads = int(threads or os.cpu_count() or 1)
    registry.set_threads(threads)
    machine = machine or envinfo.machine_id()
    path = (Path(out_dir) if out_dir else config.results_dir(machine, data_dir)) / "breakdown.csv"
    rows, summary, tops = [], [], []
    todo = sweep.resolve_models(list(models), extra_models, data_dir)
    for model, mpath, b in tqdm([(m, p, b) for m, p in todo for b in names], desc="breakdown",
                                disable=not progress):
        try:
            x, _ = data.inputs_for(input_shape(mpath), 1, data_dir=data_dir)
            runner = registry.prepare(b, mpath, 1, threads, artifacts)
            fn = lambda r=runner: r(x)  # noqa: E731
            timing.measure(fn, budget_s=0.3, min_samples=10, max_samples=100, warmup_calls=5)
            res = decompose(fn, eager=(b in EAGER), budget_s=budget_s, interval_s=interval_s)
        except Exception as exc:  # noqa: BLE001  (reported in the summary, not fatal)
            summary.append({"model": model, "backend": b, "status": "failed", "reason": error_text(exc)})
            continue
        method = (f"SIGALRM stack sampling every {interval_s * 1e3:g} ms, {res['summary']['samples']} samples; "
                  + ("eager ops: kernels inside C++ time" if CPP_EAGER in res["buckets"]
                     else "kernels from TF profiler op events"))
        total, med = res["sum_s"], res["measured_median_s"]
        rows += [{"machine": machine, "model": model, "backend": b, "bucket": k, "us_per_call": v * 1e6,
                  "share": v / total if total > 0 else float("nan"), "measured_median_us": med * 1e6,
                  "method": method} for k, v in res["buckets"].items()]
        summary.append({"model": model, "backend": b, "status": "ok", "reason": "", **res["summary"]})
        tops += [{"model": model, "backend": b, **t} for t in res["top"]]
        del runner, fn
    new = pd.DataFrame(rows, columns=COLUMNS)
    save_rows(new, path, COLUMNS)
    table = pd.DataFrame(summary)
    envinfo.write_meta(path, extra={
        "stage": "breakdown", "models": [m for m, _ in todo], "backends": names, "batch": 1,
        "threads_setting": threads, "budget_s": budget_s, "interval_s": interval_s,
        "rules": [list(r) for r in RULES], "share": "us_per_call / sum of the buckets of that model x backend",
        "summary": table.replace({np.nan: None}).to_dict(orient="records")}, threads=threads)
    return new, table, pd.DataFrame(tops)
