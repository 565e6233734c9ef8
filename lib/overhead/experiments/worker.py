"""One benchmark worker process: fixed threads, one model, many backends and batch sizes.

Started by :func:`overhead.experiments.sweep.run_job` as ``python -m overhead.experiments.sweep worker`` with a
:class:`WorkerJob` on stdin (:func:`overhead.harness.jobs.child_entry`); talks JSON lines on the original stdout (fd 1 is pointed at stderr, so whatever native
libraries print cannot corrupt the protocol). Events: hello, model, fatal, start (before every step
that may crash: preparing a backend, timing a group), row, done.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead import backends as bk
from overhead.backends import converters
from overhead.backends.reference import keras_reference
from overhead.base import atomic, data
from overhead.harness import parity, stats, timing
from overhead.harness.child import error_text
from overhead.ladder import models
from overhead.usermodel import feed as userfeed
from overhead.usermodel.feed import fatal_text
from overhead.usermodel.refsignal import degenerate

PARITY_FLOPS = 5e10  # parity inputs per batch size are capped so that big models stay affordable
PARITY_MAX_S = 0.5  # slow paths compare fewer inputs (at least 8) rather than stall the sweep
# int8 / fp16 paths, first run: parity on enough inputs for parity.DECISIVE_TARGET (200) decisive ones, from
# at most REDUCED_PARITY_INPUTS screened by the reference (int8 floors probabilities at 1/256, so fewer rows are
# decisive than in float32: 57 % for a lightly trained logreg, 77-97 % for the ladder in float32), each
# path stopping after REDUCED_PARITY_MAX_S (a slow reduced path on a big model then records fewer,
# n_decisive says how many). Cost on ResNet-18 224 px: the Keras reference on 512 images, first run only.
REDUCED_PARITY_INPUTS = 512
REDUCED_PARITY_MAX_S = 60.0
MAX_SAMPLES = 2_000  # per backend, configuration and run: enough for p99; keeps the sample files small
MIN_VALUES_SLOW = 20  # values per run at least (pyperf-style), slow paths
MIN_VALUES_FAST = 200  # values per run for fast paths, or MIN_SECONDS_FAST of calls if fewer
MIN_SECONDS_FAST = 0.5


@dataclass(frozen=True)
class WorkerJob:
    """One worker's job: `keys` ((backend, batch) pairs) of one model at one thread setting in one process kind.

    `mode`: ``bench`` (parity, then timing), ``check`` (parity only, `overhead check`) or ``probe`` (a tiny
    throw-away model instead of `model_path`, `overhead backends`). `isolate`: batch sizes whose backends are
    timed one by one (after a crash in a group). `input_shape` / `inputs`: a user model's ``--input-shape``
    text and ``--inputs`` file."""

    model: str
    model_path: str
    threads: int
    keys: tuple
    run: int = 1  # which fresh process (run) of this configuration this is
    process: str = "tf"
    mode: str = "bench"
    budget_s: float = 0.1
    parity_n: int = 128
    parity_max_s: float = PARITY_MAX_S
    max_flops_per_call: float = 8e9
    samples_dir: str | None = None
    artifacts: str | None = None
    data_dir: str | None = None
    isolate: tuple = ()
    input_shape: str | None = None
    inputs: str | None = None


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


def _tiny_probe_model(folder: Path) -> Path:
    """A small seeded CNN to find out which backends work on this machine (`overhead backends`)."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                              L.Flatten(), L.Dense(10, activation="softmax")], name="probe")
    path = folder / "probe.keras"
    model.save(path)
    return path


def _describe(model_path: Path, model) -> dict:
    meta = {}
    json_path = model_path.with_suffix(".json")
    if json_path.exists():
        try:
            meta = json.loads(json_path.read_text())
        except ValueError:
            meta = {}
    flops = meta.get("flops") or models.count_flops(model)
    params = meta.get("params") or models.count_params(model)
    return {"sha": converters.model_sha(model_path), "flops": int(flops), "params": int(params),
            "input_shape": list(converters.input_shape(model)), "weights": meta.get("weights", "unknown")}


def min_values(call_s: float) -> int:
    """Values one run needs: >= 200 (or >= 0.5 s of calls when 200 would take longer), never < 20."""
    by_time = math.ceil(MIN_SECONDS_FAST / max(call_s, 1e-9))
    return int(max(MIN_VALUES_SLOW, min(MIN_VALUES_FAST, by_time)))


def _timing_plan(costs: dict, budget_s: float) -> dict:
    """interleaved() settings for a group of runners with these per-call costs in s (from the parity check).

    Each runner gets its own floor of values (:func:`min_values`) and at least `budget_s` of calls,
    in 5 rounds (fewer if a floor is smaller); slow groups (>= 50 ms a call) get one warm-up call and
    no per-round warm-up (a cache refill is noise next to a 50 ms call).
    """
    floors = {nm: min_values(c or 0.0) for nm, c in costs.items()}
    slow = max(costs.values(), default=0.0) >= 0.05
    return {"budget_s": budget_s, "rounds": min(5, min(floors.values(), default=5)), "min_samples": floors,
            "max_samples": MAX_SAMPLES, "warmup_calls": 1 if slow else 2, "warmup_s": min(0.02, budget_s / 10),
            "round_warmup_calls": 0 if slow else 1}


def measure_job(job: WorkerJob, proto) -> int:
    """The worker (``sweep.main``: ``jobs.child_entry(WorkerJob, measure_job, argv, command="worker")``): events as
    JSON lines on `proto`."""

    def emit(**event):
        proto.write(json.dumps(event, default=_plain) + "\n")
        proto.flush()


    bk.enter_process(job.process)  # KERAS_BACKEND, before anything imports keras
    threads = int(job.threads)
    bk.set_threads(threads)
    if job.process == "tf":
        bk.configure_tf()  # TF's pools are sized now, before loading the model runs any op
    mode = job.mode
    tmp = tempfile.TemporaryDirectory()
    try:
        if mode == "probe":  # a throw-away model: its conversions stay in the temp folder too
            model_path, job = _tiny_probe_model(Path(tmp.name)), dataclasses.replace(job, artifacts=tmp.name)
        else:
            model_path = Path(job.model_path)

        # model: a modelfile.OpenedModel
        model, desc, io = userfeed.open_for_worker(model_path, input_shape=job.input_shape, inputs=job.inputs)
    except Exception as exc:  # a missing, corrupt or unloadable model file; inputs that do not fit it
        emit(event="fatal", error=fatal_text(exc))
        return 3
    emit(event="hello", threads=threads, readback=bk.threads_readback(), pid=os.getpid())
    emit(event="model", **desc)
    try:
        _run(job, model_path, model, desc, threads, mode, emit, io)
    except BaseException as exc:  # the parent reports this instead of a bare exit status
        emit(event="error", error=error_text(exc))
        raise
    finally:
        tmp.cleanup()
    emit(event="done")
    return 0


def inputs_and_reference(opened, model_path, job: WorkerJob, n: int):
    """(x, labels or None, reference outputs) for parity and timing: real digits for a ladder model
    (unless --inputs is given), otherwise the user's inputs or inputs generated from the signature.

    The reference is Keras 3 on TensorFlow (overhead.backends.reference: a TF child process in JAX / NumPy
    workers) for one-input models; several inputs, a SavedModel or a tf_keras model are their own
    reference here (computed in this process).
    """
    if userfeed.is_ladder(model_path) and not job.inputs and opened.keras_model is not None:
        x, y = data.inputs_for(list(opened.signature.inputs[0].shape), n, split="test")
    else:
        fed = userfeed.build_feed(opened.signature, n, input_shape=job.input_shape, inputs_npz=job.inputs)
        x, y = fed.x, fed.y
    if opened.loader == "keras" and x.dtype.names is None and len(opened.signature.outputs) == 1:
        ref = keras_reference(model_path, x, batch_size=min(64, len(x)), artifacts=job.artifacts)
        return x, y, ref
    return x, y, userfeed.reference(opened, x)



def _run(job, model_path, model, desc, threads, mode, emit, io):
    keys = [(b, int(n)) for b, n in job.keys]
    order = {name: i for i, name in enumerate(bk.names())}
    isolate = set(int(b) for b in job.isolate)
    budget_s, cap = float(job.budget_s), float(job.max_flops_per_call)
    run = int(job.run)
    base = {"model": job.model or model_path.stem, "model_sha": desc["sha"], "flops": desc["flops"],
            "params": desc["params"], "threads": threads, "run": run}
    n_par = int(min(job.parity_n, max(8, PARITY_FLOPS // max(desc["flops"], 1))))
    batches = sorted({n for _, n in keys})
    too_big = {n: userfeed.memory_reason(model, n, io) for n in batches}
    runnable = [n for n in batches if desc["flops"] * n <= cap and not too_big[n]]
    reduced = {b for b, _ in keys if parity.tier_of(bk.get(b)) != "float32"}
    n_reduced = REDUCED_PARITY_INPUTS if reduced and run == 1 and runnable else 0
    need = max([math.ceil(n_par / n) * n for n in runnable] + [n_reduced] if runnable else [0])
    no_signal = None
    if need:
        # the model's own inputs (digits for a ladder model); reference: Keras on TF (overhead.backends.reference)
        x_all, y_all, ref = inputs_and_reference(model, model_path, job, need)
        no_signal = degenerate(ref, inputs_given=bool(job.inputs))  # said once, on every row
        if no_signal:
            emit(event="reference", note=no_signal)
    timer_ns = timing.timer_overhead_ns(budget_s=0.05)
    samples_dir = Path(job.samples_dir) if job.samples_dir else None

    for batch in batches:
        names = sorted((b for b, n in keys if n == batch), key=lambda b: order.get(b, 99))
        if batch not in runnable:
            for name in names:
                emit(event="row", row=dict(base, backend=name, batch=batch, status="skipped", reason=too_big[batch] or (
                    f"{desc['flops'] * batch / 1e9:.3g} GFLOP per call exceeds the cap of {cap / 1e9:.3g} "
                    "GFLOP (max_flops_per_call)")))
            continue
        n = math.ceil(n_par / batch) * batch
        prepared = {}
        for name in names:
            emit(event="start", phase="prepare", batch=batch, backends=[name])
            skip = userfeed.precheck(bk.get(name), model)
            if skip:
                emit(event="row", row=dict(base, backend=name, batch=batch, status="skipped", reason=skip))
                continue
            try:
                runner = userfeed.adapt(bk.prepare(name, model_path, batch, threads,
                                                   artifacts=job.artifacts, io=io), model.signature)
                if name in reduced and n_reduced:  # >= DECISIVE_TARGET decisive inputs, time-capped
                    m = parity.decisive_prefix(ref[:need], parity.DECISIVE_TARGET, parity.tier_of(bk.get(name)))
                    par = bk.parity(runner, ref[:m], x_all[:m], None if y_all is None else y_all[:m],
                                    max_s=REDUCED_PARITY_MAX_S)
                else:
                    par = bk.parity(runner, ref[:n], x_all[:n], None if y_all is None else y_all[:n],
                                    max_s=float(job.parity_max_s))
            except Exception as exc:  # unsupported layers, failed conversions: skipped with the reason
                status, reason = userfeed.classify(name, exc, model.signature)
                emit(event="row", row=dict(base, backend=name, batch=batch, status=status, reason=reason))
                continue
            if no_signal:
                par = dict(par, reason="; ".join(filter(None, [no_signal, par["reason"]])))
            prepared[name] = (runner, par)
        if mode != "bench":
            for name, (runner, par) in prepared.items():
                emit(event="row", row=_row(base, name, batch, runner, par, None, run, timer_ns, None))
            continue
        x = np.ascontiguousarray(x_all[:batch])
        groups = [[nm] for nm in prepared] if batch in isolate else [list(prepared)] if prepared else []
        gc.collect()  # GC stays on while timing (as users run); interleaved() collects before every turn
        for group in groups:
            emit(event="start", phase="timing", batch=batch, backends=group)
            fns = {nm: (lambda r=prepared[nm][0]: r(x)) for nm in group}
            cost = {nm: prepared[nm][1]["call_s"] or 0.0 for nm in group}
            samples = timing.interleaved(fns, **_timing_plan(cost, budget_s))
            for nm in group:
                rel = None
                if samples_dir is not None:
                    rel = f"samples/{base['model']}/{nm}__b{batch}__t{threads}__r{run}.npz"
                    atomic.save_samples(samples_dir / rel, {"samples_ns": samples[nm]})
                runner, par = prepared[nm]
                emit(event="row", row=_row(base, nm, batch, runner, par, samples[nm], run, timer_ns, rel))
        prepared.clear()
        gc.collect()


def _row(base, name, batch, runner, par, samples, run, timer_ns, samples_file) -> dict:
    """One run's row: parity, this run's statistics, its raw samples file (the sweep pools the runs)."""

    info = bk.public_info(runner)
    notes = [par["reason"]] if par["reason"] else []
    if info.get("tracing_count", 1) > 1:
        notes.append(f"tf.function traced {info['tracing_count']} times")
    summary = stats.summarize(samples) if samples is not None and len(samples) else {"n": 0}
    status = "ok" if par["parity"] == "pass" else "failed"  # timed anyway: the numbers stay visible
    if status == "failed":
        notes[0] = f"parity: {notes[0]}"
    return dict(base, backend=name, batch=batch, status=status, reason="; ".join(notes),
                parity=par["parity"], tolerance=par["tolerance"], max_abs_err=par["max_abs_err"],
                top1_agree=par["top1_agree"], accuracy=par["accuracy"], ref_accuracy=par["ref_accuracy"],
                logit_rel_err=par.get("logit_rel_err"), logit_cos=par.get("logit_cos"),
                top1_decisive=par.get("top1_decisive"), n_decisive=par.get("n_decisive"),
                criterion=par.get("criterion"), **summary, run=run, timer_overhead_ns=timer_ns,
                convert_s=info.get("convert_s"),
                load_s=info.get("load_s"), kernels=info.get("kernels"), samples_file=samples_file,
                threads_seen=info.get("threads_seen"), call_s=par.get("call_s"))
