"""Speed targets of the NumPy engine, measured in one run against tf.function, LiteRT and the GEMM peak.

    python -m overhead.experiments.enginebench [--quick] [--threads N] [--profile] [--no-save] [--apps|--only-apps]
                                               [--blas-setting-only]

For the tiny MLP (784-32-10), the seed's CNN and ResNet-18 at 224 px it times, interleaved in rounds
(median of many calls): our engine (`overhead.engine`, converted in process and also reloaded from
its saved .npz file), `numpy.plain` (the plain NumPy a reader would write; skipped above 5 GFLOP per
call, where one call takes seconds), a `tf.function` with a fixed input
signature wrapping ``model(x, training=False)`` and returning ``.numpy()``, and LiteRT with XNNPACK
(``num_threads`` = the thread count); with ResNet-18 a 2048^3 float32 ``np.matmul`` is timed in the
same rounds, so the GEMM rate and the engine's model-FLOP rate see the same machine load. Every path
is checked against ``model(x, training=False)`` first. Where a target is a ratio to LiteRT (the small models
and the families), the same rounds also time the model's NumPy floor: its GEMMs, depthwise einsums and activations
alone, on operands laid out for them (:mod:`overhead.experiments.enginefloor`), the time no exact NumPy engine can beat
here; on the families, a miss (against LiteRT or tf.function) whose floor is above the goal as well is beyond
NumPy on this machine. Prints a table of the ratios against the
targets (PASS/MISS) and, unless ``--no-save``, writes it to ``<results>/<machine>/enginebench.csv``.

NumPy's GEMMs run on OpenBLAS, whose kernel a machine can pin with OPENBLAS_CORETYPE (one VM here sets
``Haswell``: AVX2 kernels on an AVX-512 CPU, about half the GEMM rate), while LiteRT's XNNPACK picks its own.
When the variable is set, the same cases also run in a child process with it unset (read once, when OpenBLAS
loads), and every row and target names its setting; ``--blas-setting-only`` keeps this environment's only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from overhead.base import atomic, config, envinfo
from overhead.base.settings import cores
from overhead.engine import UnsupportedLayerError, from_keras, load, plain
from overhead.experiments import blasab
from overhead.experiments.enginefloor import primitive_floor
from overhead.harness import child, jobs, timing
from overhead.harness.child import thread_env
from overhead.harness.targets import LITERT_GOAL, TF_FUNCTION_GOAL, band, verdict
from overhead.ladder import families, models

# (model, batch) cases; the ResNet-18 batch-32 case is the throughput end.
CASES = [("mlp_tiny", 1), ("cnn_seed", 1), ("resnet18_224px", 1), ("resnet18_224px", 32)]
APP_CASES = [(name, 1) for name in families.FAMILIES]  # --apps: the Keras Applications families
GEMM_N = 2048
PLAIN_MAX_FLOPS = 5e9  # numpy.plain is timed up to this many FLOPs per call (ResNet-18 224 b1: 3.6e9)
TOL = 1e-4  # max |out - ref| <= TOL * max(1, max |ref|)


# --------------------------------------------------------------------------- models

def build_model(name: str):
    """A ladder model (overhead.ladder.models) or a Keras Applications family (overhead.ladder.families)."""
    return families.build(name) if name in families.FAMILIES else models.build(name, seed=0)


# --------------------------------------------------------------------------- runners

def tf_function_runner(tf, model, x):
    spec = tf.TensorSpec(x.shape, tf.float32)
    fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
    return lambda: fn(x).numpy()


@contextlib.contextmanager
def _quiet():
    """Silence the TFLite converter's prints and the C++ INFO lines (fd-level stdout/stderr)."""
    saved = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:  # no real file descriptors (e.g. captured by a notebook): Python-level only
        pass
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for fd, dup in saved:
            os.dup2(dup, fd)
            os.close(dup)


def tflite_flatbuffer(tf, model) -> bytes:
    with _quiet():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def litert_runner(flat, x, threads):
    from ai_edge_litert.interpreter import Interpreter
    with _quiet():
        it = Interpreter(model_content=flat, num_threads=threads)
        inp = it.get_input_details()[0]
        if tuple(inp["shape"]) != x.shape:
            it.resize_tensor_input(inp["index"], list(x.shape))
        it.allocate_tensors()
        i, o = inp["index"], it.get_output_details()[0]["index"]
        it.set_tensor(i, x)
        it.invoke()

    def run():
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)
    return run


def _measure(fns, budget_s, min_samples, rounds, warmup_calls=5):
    """Per-call ns of every fn, interleaved in rounds (:func:`overhead.harness.timing.interleaved`)."""
    return timing.interleaved(fns, budget_s=budget_s, rounds=rounds, min_samples=min_samples,
                              warmup_calls=warmup_calls, warmup_s=0.0 if warmup_calls <= 1 else 0.2,
                              round_warmup_calls=0 if warmup_calls <= 1 else 1)


# --------------------------------------------------------------------------- the run

def run(quick=False, threads=None, profile=False, cases=None, log=print):
    threads = int(threads or cores())

    # An os.environ write by library code, on purpose: this benchmark runs in the process that calls it (`make bench`
    # runs `python -m overhead.experiments.enginebench`), no child to hand an environment to, and TensorFlow, imported
    # just below, reads its thread variables once, at import. override=False keeps what the caller set.
    thread_env(threads, override=False)
    from threadpoolctl import threadpool_limits
    limit = threadpool_limits(limits=threads, user_api="blas")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    blas = blas_label()
    kernel = (envinfo.numpy_blas() or {}).get("architecture")
    rng = np.random.default_rng(0)
    rows, built = [], {}
    gemm_a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    gemm_b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    gemm_o = np.empty_like(gemm_a)
    tmp = tempfile.TemporaryDirectory(prefix="enginebench-")
    for name, batch in cases or CASES:
        t0 = time.perf_counter()
        if name not in built:
            m = build_model(name)
            net = from_keras(m)
            net.save(os.path.join(tmp.name, f"{name}.npz"))
            try:
                plain_net = plain.from_keras(m)
            except UnsupportedLayerError:  # numpy.plain covers the ladder's layers only
                plain_net = None
            built[name] = (m, net, load(os.path.join(tmp.name, f"{name}.npz")), plain_net,
                           models.count_flops(m), tflite_flatbuffer(tf, m))
        model, net, loaded, plain_net, flops, flat = built[name]
        x = rng.random((batch,) + tuple(model.input_shape[1:]), dtype=np.float32)
        ref = np.asarray(model(x, training=False))
        fns = {"numpy": lambda net=net, x=x: net(x),
               "numpy.npz": lambda net=loaded, x=x: net(x),
               "tf.function": tf_function_runner(tf, model, x),
               "litert": litert_runner(flat, x, threads)}
        if plain_net is not None and flops * batch <= PLAIN_MAX_FLOPS:
            fns["numpy.plain"] = lambda net=plain_net, x=x: net(x)
        errs = {}
        for k, f in fns.items():
            out = np.asarray(f()).reshape(ref.shape)
            errs[k] = float(np.abs(out - ref).max())
        big = flops * batch > 1e9 and name not in families.FAMILIES  # judged against tf.function and the GEMM rate
        floor = None if big else primitive_floor(net, x)  # the cases judged against LiteRT
        if floor is not None:  # after the checks: it runs in the engine's buffers (each engine call rewrites them)
            fns["numpy.floor"] = floor
        if big:
            fns["gemm"] = lambda: np.matmul(gemm_a, gemm_b, out=gemm_o)
        if quick:
            budget, min_samples, rounds = (1.5, 3, 3) if big else (0.3, 200, 3)
        else:
            budget, min_samples, rounds = ((4.0 if batch == 1 else 16.0), 10, 8) if big else (3.0, 1000, 8)
        samples = _measure(fns, budget, min_samples, rounds, warmup_calls=1 if big and batch > 1 else 5)
        med = {k: float(np.median(v)) / 1e3 for k, v in samples.items()}  # us
        quart = {k: np.percentile(v, [25, 75]) / 1e3 for k, v in samples.items()}
        row = {"model": name, "batch": batch, "threads": threads, "blas": blas, "blas_kernel": kernel,
               "flops": flops * batch,
               "load_avg_1min": round(os.getloadavg()[0], 2),
               "numpy_us": med["numpy"], "numpy_npz_us": med["numpy.npz"], "numpy_plain_us": med.get("numpy.plain"),
               "tf_function_us": med["tf.function"], "litert_us": med["litert"],
               "err_numpy": errs["numpy"], "err_numpy_npz": errs["numpy.npz"], "err_numpy_plain": errs.get("numpy.plain"),
               "err_tf_function": errs["tf.function"], "err_litert": errs["litert"],
               "tol": TOL * max(1.0, float(np.abs(ref).max())),
               "n_numpy": len(samples["numpy"])}
        if "numpy.floor" in med:
            row["numpy_floor_us"] = med["numpy.floor"]
        for k in ("numpy", "tf.function", "litert", "numpy.floor"):  # the calls' interquartile range: noise bands
            if k in quart:
                key = k.replace(".", "_")
                row[f"{key}_q25_us"], row[f"{key}_q75_us"] = (float(q) for q in quart[k])
        if "gemm" in med:
            row["gemm_gflops"] = 2 * GEMM_N ** 3 / (med["gemm"] * 1e3)
        row["numpy_gflops"] = flops * batch / (med["numpy"] * 1e3)
        rows.append(row)
        plain_txt = f"{med['numpy.plain']:.1f} us" if "numpy.plain" in med else "skipped"
        floor_txt = f" (its NumPy floor {med['numpy.floor']:.1f} us)" if "numpy.floor" in med else ""
        log(f"  {name} b{batch} [{blas}]: numpy {med['numpy']:.1f} us{floor_txt} (from .npz {med['numpy.npz']:.1f} us), "
            f"numpy.plain {plain_txt}, tf.function {med['tf.function']:.1f} us, litert {med['litert']:.1f} us "
            f"({time.perf_counter() - t0:.0f} s, load {row['load_avg_1min']})")
        if profile:
            log(profile_table(net, x, gemm_gflops=row.get("gemm_gflops")))
    limit.restore_original_limits()
    tmp.cleanup()
    return rows


def profile_table(net, x, top=12, gemm_gflops=None) -> str:
    """The engine's per-step profile: time by op kind, the GEMM-op rate, and the slowest steps."""
    prof = net.profile(x, repeats=5 if x.shape[0] > 1 else 20)
    total = sum(p["us"] for p in prof)
    by_kind: dict[str, float] = {}
    for p in prof:
        by_kind[p["kind"]] = by_kind.get(p["kind"], 0.0) + p["us"]
    gemm_us = sum(p["us"] for p in prof if p["flops"])
    gemm_fl = sum(p["flops"] for p in prof)
    lines = [f"    profile {net.name} batch {x.shape[0]}: {total:.0f} us in {len(prof)} steps; by kind: "
             + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(by_kind.items(), key=lambda t: -t[1]))]
    if gemm_us:
        rate = gemm_fl / gemm_us / 1e3
        ref = f" = {100 * rate / gemm_gflops:.0f}% of the GEMM rate" if gemm_gflops else ""
        lines.append(f"    conv/dense steps: {100 * gemm_us / total:.0f}% of the time at {rate:.0f} GFLOP/s{ref}")
    for p in sorted(prof, key=lambda p: -p["us"])[:top]:
        rate = f"{p['flops'] / p['us'] / 1e3:7.0f} GF/s" if p["flops"] else ""
        lines.append(f"      {p['op']:24s} {p['kind']:12s} {p['us']:10.1f} us {100 * p['us'] / total:5.1f}% {rate}")
    return "\n".join(lines)


def blas_label(env=None) -> str:
    """This process's BLAS setting, as :mod:`overhead.experiments.blasab` names it."""
    return blasab.settings(env)[0][0]


def case_tag(r, several_blas: bool) -> str:
    """A row's case: model and batch, and its BLAS setting when the rows hold more than one."""
    return f"{r['model']} b{r['batch']}" + (f" [{r['blas']}]" if several_blas else "")


def targets(rows) -> list[dict]:
    """The issue's targets, evaluated on the measured rows, for the engine converted in process and
    reloaded from its .npz; numpy.plain's ratios are reported, with no goal (measured, not tuned). On the
    Applications families each target also gets the ratio's band over the calls' interquartile ranges and
    its verdict (:func:`verdict`): a median just under the goal with a band across it is noise, not a pass."""
    out = []
    several = len({r.get("blas") for r in rows}) > 1
    for r in rows:
        tag = case_tag(r, several)
        for label, key in (("numpy", "numpy_us"), ("numpy.npz", "numpy_npz_us")):
            us = r[key]
            if r["model"] in families.FAMILIES:  # issue 25: within 3x of LiteRT, at or below tf.function
                for ref, goal in (("litert", LITERT_GOAL), ("tf_function", TF_FUNCTION_GOAL)):
                    b = band(r, "numpy", ref) if label == "numpy" else None
                    floor = band(r, "numpy_floor", ref)
                    out.append({"case": tag, "target": f"{label} / {ref.replace('_', '.')}",
                                "value": us / r[f"{ref}_us"], "goal": f"<= {goal:g}",
                                "ok": us / r[f"{ref}_us"] <= goal, "band": b, "verdict": verdict(b, goal, floor)})
            elif r["flops"] < 1e9:
                out.append({"case": tag, "target": f"tf.function / {label}", "value": r["tf_function_us"] / us,
                            "goal": ">= 15", "ok": r["tf_function_us"] / us >= 15})
                out.append({"case": tag, "target": f"{label} / litert", "value": us / r["litert_us"],
                            "goal": f"<= {LITERT_GOAL:g}", "ok": us / r["litert_us"] <= LITERT_GOAL})
            else:
                out.append({"case": tag, "target": f"{label} / tf.function", "value": us / r["tf_function_us"],
                            "goal": "<= 1.1", "ok": us / r["tf_function_us"] <= 1.1})
        if r["flops"] >= 1e9 and "gemm_gflops" in r:
            frac = r["numpy_gflops"] / r["gemm_gflops"]
            out.append({"case": tag, "target": "model GFLOP/s / GEMM GFLOP/s", "value": frac,
                        "goal": ">= 0.5", "ok": frac >= 0.5})
        for label, key in (("numpy", "err_numpy"), ("numpy.npz", "err_numpy_npz")):
            out.append({"case": tag, "target": f"{label} max|err| / tol", "value": r[key] / r["tol"],
                        "goal": "<= 1", "ok": r[key] <= r["tol"]})
        if r.get("numpy_plain_us"):
            out.append({"case": tag, "target": "numpy.plain / numpy", "value": r["numpy_plain_us"] / r["numpy_us"],
                        "goal": "-", "ok": None})
            out.append({"case": tag, "target": "numpy.plain / tf.function",
                        "value": r["numpy_plain_us"] / r["tf_function_us"], "goal": "-", "ok": None})
            out.append({"case": tag, "target": "numpy.plain max|err| / tol", "value": r["err_numpy_plain"] / r["tol"],
                        "goal": "<= 1", "ok": r["err_numpy_plain"] <= r["tol"]})
        if r.get("numpy_floor_us"):
            b = band(r, "numpy_floor", "litert")
            out.append({"case": tag, "target": "numpy floor / litert", "value": r["numpy_floor_us"] / r["litert_us"],
                        "goal": "-", "ok": None, "band": b, "verdict": ""})
    return out


def format_report(rows, checks) -> str:
    several = len({r.get("blas") for r in rows}) > 1
    width = max([24] + [len(case_tag(r, several)) for r in rows])
    lines = [f"{'case':{width}s} {'numpy us':>11s} {'.npz us':>11s} {'plain us':>11s} {'tf.function us':>15s} "
             f"{'litert us':>11s} {'numpy GF/s':>11s} {'GEMM GF/s':>10s} {'load':>5s}"]
    for r in rows:
        gemm = f"{r['gemm_gflops']:10.1f}" if "gemm_gflops" in r else f"{'':>10s}"
        plain_us = f"{r['numpy_plain_us']:11.1f}" if r.get("numpy_plain_us") else f"{'skipped':>11s}"
        lines.append(f"{case_tag(r, several):{width}s} {r['numpy_us']:11.1f} {r['numpy_npz_us']:11.1f} "
                     f"{plain_us} {r['tf_function_us']:15.1f} {r['litert_us']:11.1f} {r['numpy_gflops']:11.2f} "
                     f"{gemm} {r['load_avg_1min']:5.2f}")
    lines.append("")
    lines.append(f"{'case':{width}s} {'target':30s} {'measured':>9s} {'goal':>7s}  status")
    for c in checks:
        status = "(reported)" if c["ok"] is None else ("PASS" if c["ok"] else "MISS")
        if c.get("band"):
            lo, hi = c["band"]
            status += f"  (calls' IQR band {lo:.3g}-{hi:.3g}" + (f": {c['verdict']})" if c["verdict"] else ")")
        lines.append(f"{c['case']:{width}s} {c['target']:30s} {c['value']:9.3g} {c['goal']:>7s}  {status}")
    return "\n".join(lines)


def save(rows, checks, path=None):
    import csv
    machine = envinfo.machine_id()
    path = path or config.results_dir(machine) / "enginebench.csv"
    status = {(c["case"], c["target"]): c for c in checks}
    fields = list(dict.fromkeys(k for r in rows for k in r)) + ["machine"]
    with atomic.atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "machine": machine})
    envinfo.write_meta(path, {"targets": list(status.values())}, threads=rows[0]["threads"])
    return path


@dataclass(frozen=True)
class BenchJob:
    """The cases a child process measures (:func:`rows_with_blas_unset`)."""
    cases: tuple
    quick: bool = False
    threads: int | None = None
    profile: bool = False


def measure_job(job: BenchJob, proto) -> int:
    """In the child: :func:`run` on the job's cases; its log lines, then its rows, as JSON lines."""
    def say(value):
        proto.write(json.dumps(value, default=float) + "\n")
        proto.flush()
    rows = run(quick=job.quick, threads=job.threads, profile=job.profile, cases=[tuple(c) for c in job.cases],
               log=lambda text: say({"event": "log", "text": text}))
    say({"event": "rows", "rows": rows})
    return 0


def rows_with_blas_unset(job: BenchJob, launch=child.run_child) -> list[dict]:
    """The same cases in a child process whose environment differs only by OPENBLAS_CORETYPE unset."""
    env = blasab.child_env(None)
    print(f"\nthe same cases with {blas_label(env)} (a child process):", flush=True)

    def show(event):
        if isinstance(event, dict) and event.get("event") == "log":
            print(event["text"], flush=True)
    done = launch("overhead.experiments.enginebench", ["child"], job=job, env=env, on_event=show)
    got = done.last("rows")
    if not done.ok or got is None:
        raise RuntimeError(f"the child with OPENBLAS_CORETYPE unset: {done.failure() or 'wrote no rows'}")
    return got["rows"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        return jobs.child_entry(BenchJob, measure_job, argv)  # a BenchJob on stdin
    ap = argparse.ArgumentParser(prog="python -m overhead.experiments.enginebench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small time budgets (about a minute)")
    ap.add_argument("--threads", type=int, default=None, help="threads for every engine (default: all cores)")
    ap.add_argument("--profile", action="store_true", help="print the engine's per-layer profile of each case")
    ap.add_argument("--no-save", action="store_true", help="do not write enginebench.csv")
    ap.add_argument("--apps", action="store_true", help="also the Keras Applications families (overhead.ladder.families) at batch 1")
    ap.add_argument("--only-apps", action="store_true", help="only the Keras Applications families")
    ap.add_argument("--blas-setting-only", action="store_true",
                    help="only this environment's OPENBLAS_CORETYPE (default: also unset, in a child, when it is set)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"NumPy engine benchmark ({'quick' if args.quick else 'full'}), threads={args.threads or cores()}, "
          f"load average {os.getloadavg()[0]:.2f} (the machine is shared: other jobs slow every engine)")
    cases = APP_CASES if args.only_apps else CASES + (APP_CASES if args.apps else [])
    rows = run(quick=args.quick, threads=args.threads, profile=args.profile, cases=cases)
    if not args.blas_setting_only and len(blasab.settings()) > 1:
        rows += rows_with_blas_unset(BenchJob(tuple(cases), args.quick, args.threads, args.profile))
    checks = targets(rows)
    print()
    print(format_report(rows, checks))
    if not args.no_save:
        print(f"\nsaved {save(rows, checks)}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
