"""Every inference path a user would try, behind one contract.

``prepare(name, model_path, batch, threads)`` returns a :class:`Runner`: call it with a NumPy batch of
exactly ``batch`` rows and it returns a NumPy array, so each path pays its own conversions as a user
does. Heavy objects (the Keras model, a loaded SavedModel, an ORT session) are shared between the
runners of one process; conversions are cached on disk by :mod:`overhead.converters`.

Threads: call :func:`set_threads` in a fresh process before TensorFlow is imported. TF fixes its
intra/inter-op pools at start-up; LiteRT takes ``num_threads`` at construction (XNNPACK ignores later
changes); ORT gets ``intra_op_num_threads`` with spinning off; the NumPy engine's BLAS is limited with
threadpoolctl.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from overhead import converters

NAMES = [
    "numpy", "keras.predict", "keras.predict_on_batch", "keras.call", "tf.function",
    "tf.function.xla", "tf.savedmodel", "litert", "litert.builtin", "litert.fp16",
    "litert.dynamic_int8", "litert.int8", "onnxruntime",
]
TEST_ENV = "OVERHEAD_TEST_BACKENDS"  # =1 registers fake backends that crash/raise/disagree (tests only)
ACCURACY_MIN_REF = 0.5  # below this reference accuracy the model is untrained/not a digit model
# Top-1 agreement is judged on "decisive" inputs only: where the reference's best class leads the
# runner-up by >= DECISIVE_MARGIN * max(1, |ref|). Seeded-init models give near-uniform softmax outputs
# (margins ~1e-4) whose argmax any rounding flips; there a loose max-abs bound judges instead.
DECISIVE_MARGIN = 0.05
MIN_DECISIVE = 8
QUANTIZED_FALLBACK_MAX_ABS = 0.1


class UnknownBackendError(ValueError):
    """A backend name that is not registered; the message lists the valid ones."""


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # numpy | keras | tf | litert | onnxruntime | test
    description: str
    prepare: Callable = field(repr=False)
    max_abs: float | None = 1e-4  # max |out - ref| <= max_abs * max(1, max |ref|)
    min_top1: float | None = None  # top-1 agreement with the reference (quantised paths)
    max_acc_drop: float | None = None  # accuracy points (fraction) lost vs the reference, trained models
    quantized: bool = False
    needs: tuple[str, ...] = ()

    def tolerance(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"max_abs<={self.max_abs:g}*max(1,|ref|)")
        if self.min_top1 is not None:
            parts.append(f"top1>={self.min_top1:g} on decisive inputs (else max_abs<={QUANTIZED_FALLBACK_MAX_ABS:g})")
        if self.max_acc_drop is not None:
            parts.append(f"acc_drop<={self.max_acc_drop:g}")
        return "; ".join(parts)

    def available(self) -> tuple[bool, str]:
        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        return (not missing, f"missing module(s): {', '.join(missing)}" if missing else "")


class Runner:
    """A prepared inference path: ``runner(x) -> np.ndarray`` for batches of ``batch`` rows."""

    def __init__(self, name: str, fn: Callable[[np.ndarray], np.ndarray], batch: int, threads: int,
                 info: dict):
        self.name, self.fn, self.batch, self.threads, self.info = name, fn, batch, threads, info

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Runner({self.name!r}, batch={self.batch}, threads={self.threads})"


REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    REGISTRY[backend.name] = backend
    return backend


def names() -> list[str]:
    """The registered backend names (the fixed NAMES, plus test fakes when OVERHEAD_TEST_BACKENDS=1)."""
    _maybe_register_test_backends()
    return list(REGISTRY)


def get(name: str) -> Backend:
    _maybe_register_test_backends()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; valid backends: {', '.join(names())}") from None


# --------------------------------------------------------------------------- threads

_THREADS: int | None = None
_BLAS_LIMIT = None


def set_threads(threads: int) -> dict:
    """Fix every library's thread count; call in a fresh process before TensorFlow is imported.

    Sets OMP/OpenBLAS/MKL/TF environment variables, limits the loaded BLAS with threadpoolctl and,
    when TensorFlow is already imported, its intra/inter-op pools (possible only before its first op).
    Inter-op is 1 so `threads` is the number of cores a single inference may use.
    """
    global _THREADS, _BLAS_LIMIT
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads}")
    _THREADS = threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    if "tensorflow" in sys.modules:
        _configure_tf(sys.modules["tensorflow"])
    return threads_readback()


def _configure_tf(tf) -> None:
    if _THREADS is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already ran an op: its pools are fixed
        if tf.config.threading.get_intra_op_parallelism_threads() not in (_THREADS,):
            warnings.warn(f"TensorFlow was initialised before set_threads({_THREADS}); "
                          "its thread pools keep their start-up size", RuntimeWarning, stacklevel=3)


def configure_tf():
    """Import TensorFlow with this process's thread setting applied (before it runs any op)."""
    return _tf()


def _tf():
    import tensorflow as tf

    if not getattr(_tf, "configured", False):
        _configure_tf(tf)
        _tf.configured = True
    return tf


def threads_readback() -> dict:
    """What the libraries report now: BLAS pools (threadpoolctl), TF pools if imported, env."""
    from threadpoolctl import threadpool_info

    out = {"requested": _THREADS,
           "blas": [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"],
           "env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                  "TF_NUM_INTEROP_THREADS")}}
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        out["tf_intra"] = tf.config.threading.get_intra_op_parallelism_threads()
        out["tf_inter"] = tf.config.threading.get_inter_op_parallelism_threads()
    return out


# --------------------------------------------------------------------------- backends

def prepare(name: str, model_path, batch: int, threads: int, artifacts=None) -> Runner:
    """A runner of backend `name` for `model_path` at a fixed batch size and thread count."""
    backend = get(name)
    batch, threads = int(batch), int(threads)
    if batch < 1 or threads < 1:
        raise ValueError(f"batch and threads must be positive integers, got {batch}, {threads}")
    if _THREADS is not None and threads != _THREADS:
        warnings.warn(f"{name}: threads={threads} but this process was set up for {_THREADS}; "
                      "TF/BLAS keep the process setting (use a fresh process per setting)",
                      RuntimeWarning, stacklevel=2)
    ok, why = backend.available()
    if not ok:
        raise RuntimeError(why)
    t0 = time.perf_counter()
    fn, info = backend.prepare(str(model_path), batch, threads, artifacts)
    info = {"convert_s": None, "load_s": None, "artifact": None, "kernels": "", **info}
    # keys starting with "_" hold live objects (tf.function, interpreter); public_info() drops them
    info.setdefault("prepare_s", round(time.perf_counter() - t0, 4))
    return Runner(name, fn, batch, threads, info)


def public_info(runner: Runner) -> dict:
    """Runner.info without the live objects (JSON-serialisable), with tf.function retrace counts."""
    info = {k: v for k, v in runner.info.items() if not k.startswith("_")}
    f = runner.info.get("_tf_function")
    if f is not None:
        info["tracing_count"] = int(f.experimental_get_tracing_count())
    return info


_LOADED: dict = {}  # key -> (object, seconds its first load took): shared by the runners of a process


def _cached(key, loader):
    if key not in _LOADED:
        t0 = time.perf_counter()
        obj = loader()
        _LOADED[key] = (obj, round(time.perf_counter() - t0, 4))
    return _LOADED[key]


def _keras(path):
    _tf()
    return _cached(("keras", path, converters.model_sha(path)), lambda: converters.load_keras(path))


def _tf_info(kind: str, load_s, **extra) -> dict:
    from overhead import envinfo

    tf = _tf()
    return {"load_s": load_s, "kernels": f"{kind}; oneDNN {envinfo.onednn_flag()}",
            "threads_seen": [tf.config.threading.get_intra_op_parallelism_threads(),
                             tf.config.threading.get_inter_op_parallelism_threads()], **extra}


def _prep_numpy(path, batch, threads, artifacts):
    from threadpoolctl import threadpool_info, threadpool_limits

    from overhead import numpy_cnn

    global _BLAS_LIMIT
    _BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    _tf()  # from_keras reads the .keras file through Keras: start TF with our thread settings first
    model, load_s = _cached(("numpy", path, converters.model_sha(path)), lambda: numpy_cnn.from_keras(path))
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    kernels = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
                        f"{p.get('threading_layer')}) x{p.get('num_threads')}" for p in blas)
    return model, {"load_s": load_s, "kernels": kernels or "numpy (no BLAS found)",
                   "threads_seen": [p.get("num_threads") for p in blas]}


def _prep_keras(path, batch, threads, artifacts, how):
    model, load_s = _keras(path)
    if how == "predict":
        return (lambda x: model.predict(x, batch_size=batch, verbose=0)), _tf_info(
            "Keras predict (tf.data pipeline + compiled predict step)", load_s)
    if how == "predict_on_batch":
        return model.predict_on_batch, _tf_info("Keras predict_on_batch (compiled predict step)", load_s)
    return (lambda x: model(x, training=False).numpy()), _tf_info("TF eager ops", load_s)


def _prep_tf_function(path, batch, threads, artifacts, jit=False):
    tf = _tf()
    model, load_s = _keras(path)
    spec = tf.TensorSpec((batch, *converters.input_shape(model)), tf.float32)
    f = tf.function(lambda t: model(t, training=False), input_signature=[spec], jit_compile=jit,
                    reduce_retracing=False)
    t0 = time.perf_counter()
    f.get_concrete_function()  # trace now (XLA compiles on the first call, during the parity check)
    info = _tf_info("XLA:CPU (jit_compile=True)" if jit else "TF graph (tf.function)", load_s,
                    trace_s=round(time.perf_counter() - t0, 4), _tf_function=f)
    return (lambda x: f(x).numpy()), info


def _prep_savedmodel(path, batch, threads, artifacts):
    tf = _tf()
    sm_dir, cinfo = converters.savedmodel(path, artifacts)
    loaded, load_s = _cached(("savedmodel", str(sm_dir)), lambda: tf.saved_model.load(str(sm_dir)))
    sig = loaded.signatures["serving_default"]  # what TF Serving calls
    (arg_name,) = sig.structured_input_signature[1].keys()
    (out_name,) = sig.structured_outputs.keys()
    const = tf.constant

    def run(x):
        return sig(**{arg_name: const(x)})[out_name].numpy()

    return run, _tf_info("TF graph (SavedModel serving_default)", load_s, convert_s=cinfo.get("convert_s"),
                         artifact=str(sm_dir))


def _prep_litert(path, batch, threads, artifacts, variant="float", xnnpack=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tfl, cinfo = converters.tflite(path, variant, artifacts)
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter()
    interp = Interpreter(model_content=tfl.read_bytes(), num_threads=threads,  # XNNPACK reads it only here
                         experimental_op_resolver_type=resolver)
    inp = interp.get_input_details()[0]
    out_index = interp.get_output_details()[0]["index"]
    interp.resize_tensor_input(inp["index"], [batch, *[int(d) for d in inp["shape"][1:]]])
    interp.allocate_tensors()
    load_s = round(time.perf_counter() - t0, 4)
    in_index, set_tensor, invoke, get_tensor = inp["index"], interp.set_tensor, interp.invoke, interp.get_tensor

    def run(x):
        set_tensor(in_index, x)
        invoke()
        return get_tensor(out_index)  # a copy, as a user gets it

    return run, {"convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(tfl),
                 "kernels": converters.tflite_kernels(interp), "threads_seen": [threads], "_interpreter": interp}


def _ort_session(onnx_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def _prep_onnxruntime(path, batch, threads, artifacts):
    onnx_path, cinfo = converters.onnx(path, artifacts)
    sess, load_s = _cached(("ort", str(onnx_path), threads), lambda: _ort_session(onnx_path, threads))
    in_name, run_ = sess.get_inputs()[0].name, sess.run
    opts = sess.get_session_options()
    return (lambda x: run_(None, {in_name: x})[0]), {
        "convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(onnx_path),
        "kernels": f"{','.join(sess.get_providers())}; spinning off",
        "threads_seen": [opts.intra_op_num_threads, opts.inter_op_num_threads]}


_TF = ("tensorflow", "keras")
for _b in [
    Backend("numpy", "numpy", "the NumPy engine (overhead.numpy_cnn), BLAS via threadpoolctl", _prep_numpy,
            needs=("numpy", "threadpoolctl")),
    Backend("keras.predict", "keras", "model.predict(x, verbose=0)",
            lambda *a: _prep_keras(*a, how="predict"), needs=_TF),
    Backend("keras.predict_on_batch", "keras", "model.predict_on_batch(x)",
            lambda *a: _prep_keras(*a, how="predict_on_batch"), needs=_TF),
    Backend("keras.call", "keras", "eager model(x, training=False)", lambda *a: _prep_keras(*a, how="call"),
            needs=_TF),
    Backend("tf.function", "tf", "tf.function with a fixed input signature", _prep_tf_function, needs=_TF),
    Backend("tf.function.xla", "tf", "tf.function(jit_compile=True): XLA-compiled",
            lambda *a: _prep_tf_function(*a, jit=True), needs=_TF),
    Backend("tf.savedmodel", "tf", "Keras export -> tf.saved_model.load -> serving_default", _prep_savedmodel,
            needs=_TF),
    Backend("litert", "litert", "LiteRT float32, XNNPACK on", _prep_litert,
            needs=_TF + ("ai_edge_litert",)),
    Backend("litert.builtin", "litert", "LiteRT float32, XNNPACK off (builtin kernels)",
            lambda *a: _prep_litert(*a, xnnpack=False), needs=_TF + ("ai_edge_litert",)),
    Backend("litert.fp16", "litert", "LiteRT, float16 weights", lambda *a: _prep_litert(*a, variant="fp16"),
            max_abs=1e-2, needs=_TF + ("ai_edge_litert",)),
    Backend("litert.dynamic_int8", "litert", "LiteRT, dynamic-range int8 weights",
            lambda *a: _prep_litert(*a, variant="dynamic_int8"), max_abs=None, min_top1=0.9,
            max_acc_drop=0.03, quantized=True, needs=_TF + ("ai_edge_litert",)),
    Backend("litert.int8", "litert", "LiteRT full-integer int8 (calibrated on 100 real digits), float I/O",
            lambda *a: _prep_litert(*a, variant="int8"), max_abs=None, min_top1=0.9, max_acc_drop=0.03,
            quantized=True, needs=_TF + ("ai_edge_litert",)),
    Backend("onnxruntime", "onnxruntime", "Keras ONNX export, ORT CPU provider", _prep_onnxruntime,
            needs=_TF + ("onnxruntime", "tf2onnx", "onnx")),
]:
    register(_b)
assert list(REGISTRY) == NAMES


# --------------------------------------------------------------------------- parity

def parity(runner: Runner, ref: np.ndarray, x: np.ndarray, y: np.ndarray | None = None, *,
           max_s: float | None = None, min_n: int = 8) -> dict:
    """Compare a runner with the Keras reference `ref` on real inputs `x`, in batches of runner.batch.

    Stops early once `max_s` seconds were spent and at least `min_n` inputs compared (slow paths).
    Returns max_abs_err, top1_agree, accuracy and ref_accuracy (on the same digits, when labels fit
    the outputs), parity ('pass'|'fail'), reason, tolerance, n_parity and call_s (median seconds of
    one call: a cost estimate for the timing that follows).
    """
    backend = get(runner.name)
    n, b = len(x), runner.batch
    outs, times, t_start = [], [], time.perf_counter()
    for start in range(0, n, b):
        chunk = x[start:start + b]
        if len(chunk) < b:  # pad the last batch with leading rows, drop them afterwards
            chunk = np.concatenate([chunk, x[: b - len(chunk)]])
        t0 = time.perf_counter()
        out = runner(np.ascontiguousarray(chunk))
        times.append(time.perf_counter() - t0)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{runner.name} returned {type(out).__name__}, not a numpy array")
        outs.append(out[: min(b, n - start)])
        if max_s is not None and time.perf_counter() - t_start > max_s and start + b >= min_n:
            break
    got = np.concatenate(outs)
    n = len(got)
    ref, y = ref[:n], (None if y is None else y[:n])
    if got.shape != ref.shape:
        raise ValueError(f"{runner.name} output shape {got.shape} != reference {ref.shape}")
    got = got.astype(np.float64)
    max_abs = float(np.max(np.abs(got - ref)))
    top1 = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    acc = ref_acc = None
    if y is not None and ref.shape[-1] > int(np.max(y)):
        acc, ref_acc = float(np.mean(got.argmax(-1) == y)), float(np.mean(ref.argmax(-1) == y))
    problems, notes = [], []
    if not np.all(np.isfinite(got)):
        problems.append("non-finite outputs")
    if backend.max_abs is not None:
        tol = backend.max_abs * max(1.0, float(np.max(np.abs(ref))))
        if not max_abs <= tol:
            problems.append(f"max_abs_err {max_abs:.3g} > {tol:.3g}")
    if backend.min_top1 is not None:
        top2 = np.sort(ref, axis=-1)[:, -2:]
        decisive = (top2[:, 1] - top2[:, 0]) >= DECISIVE_MARGIN * max(1.0, float(np.max(np.abs(ref))))
        if decisive.sum() >= MIN_DECISIVE:
            agree = float(np.mean(got.argmax(-1)[decisive] == ref.argmax(-1)[decisive]))
            if agree < backend.min_top1:
                problems.append(f"top1_agree {agree:.3f} < {backend.min_top1} on {int(decisive.sum())} decisive inputs")
        else:
            notes.append(f"top-1 not judged: reference outputs near-uniform ({int(decisive.sum())} decisive inputs)")
            if max_abs > QUANTIZED_FALLBACK_MAX_ABS:
                problems.append(f"max_abs_err {max_abs:.3g} > {QUANTIZED_FALLBACK_MAX_ABS}")
    if backend.max_acc_drop is not None:
        if ref_acc is None or ref_acc < ACCURACY_MIN_REF:
            notes.append("accuracy not judged (reference accuracy "
                         f"{'n/a' if ref_acc is None else f'{ref_acc:.2f}'}: untrained or not a digit model)")
        elif ref_acc - acc > backend.max_acc_drop:
            problems.append(f"accuracy {acc:.3f} vs reference {ref_acc:.3f}")
    return {"max_abs_err": max_abs, "top1_agree": top1, "accuracy": acc, "ref_accuracy": ref_acc,
            "parity": "fail" if problems else "pass", "reason": "; ".join(problems + notes),
            "tolerance": backend.tolerance(), "n_parity": n, "call_s": float(np.median(times))}


def _maybe_register_test_backends() -> None:
    if os.environ.get(TEST_ENV) == "1" and "test.crash" not in REGISTRY:
        from overhead.worker import register_test_backends

        register_test_backends()
