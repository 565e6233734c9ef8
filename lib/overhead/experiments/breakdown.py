"""Where a batch-1 call's time goes: the Keras / TF inference paths decomposed into buckets.

Method (explained in notebooks/04_pipeline.ipynb):

1. **Wall-clock stack sampling** (:mod:`overhead.experiments.breakdown_sampler`) over many calls: a periodic ``SIGALRM`` (``setitimer``, every
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
2. **Buckets** (:mod:`overhead.experiments.breakdown_buckets`): a sample's bucket comes from its stack,
   outermost frame first, by ``RULES`` (module path / function name patterns): the innermost frame a rule names decides, except that
   tracing and callbacks absorb everything below them. A stack whose innermost frame is on a
   ``TFE_Py_Execute`` / ``TFE_Py_FastPathExecute`` line is in TF's C++ runtime, unless it runs a
   tf.data op (then tf.data) or a conversion.
3. **Kernels** (:mod:`overhead.experiments.breakdown_kernels`): for graph paths the TensorFlow profiler's host events of the op kernels (per op:
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

import time

from overhead import backends as registry
from overhead.base import config, data, envinfo
from overhead.experiments.breakdown_buckets import CPP_EAGER, RULES, aggregate, finish, top_functions
from overhead.experiments import sweep
from overhead.experiments.breakdown_kernels import kernel_seconds_per_call, tf_kernel_durations
from overhead.experiments.breakdown_sampler import INTERVAL_S, Sampler, central_calls
from overhead.experiments.pipeline import input_shape, save_rows
from overhead.harness import timing
from overhead.harness.child import error_text

COLUMNS = ["machine", "model", "backend", "bucket", "us_per_call", "share", "measured_median_us", "method"]
DEFAULT_BACKENDS = ("keras.predict", "keras.predict_on_batch", "keras.call", "tf.function", "tf_keras.predict")
EAGER = frozenset({"keras.call", "tf_keras.call"})  # eager ops: no separate kernel events
OUTLIER_FACTOR = 2.0  # calls slower than this x the median are left out (preempted), sampled and plain alike


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
