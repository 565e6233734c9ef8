"""The registry's building blocks: Backend, Runner, thread settings, per-process caches.

Threads: call :func:`set_threads` in a fresh process before TensorFlow is imported. TF fixes its
intra/inter-op pools at start-up; LiteRT takes ``num_threads`` at construction (XNNPACK ignores later
changes); ORT gets ``intra_op_num_threads`` with spinning off; the NumPy engine's BLAS is limited with
threadpoolctl; JAX/XLA, OpenVINO and TF1 sessions read it in their own modules.
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

from overhead.backends import converters
from overhead.base import envinfo, paths
from overhead.harness.child import KERAS_BACKEND_OF, thread_env
from overhead.harness.parity import QUANTIZED_FALLBACK_MAX_ABS

_PROCESS = "tf"  # this process's kind, set by enter_process()


def enter_process(kind: str) -> str:
    """Make this fresh process a worker of `kind` ("tf", "jax", "keras-numpy"): sets KERAS_BACKEND.

    Must run before keras is imported (Keras 3 reads KERAS_BACKEND once, at import); raises otherwise.
    """
    if kind not in KERAS_BACKEND_OF:
        raise ValueError(f"unknown process kind {kind!r}; valid kinds: {', '.join(KERAS_BACKEND_OF)}")
    global _PROCESS
    want = KERAS_BACKEND_OF[kind]
    _PROCESS = kind
    if "keras" in sys.modules:
        have = sys.modules["keras"].backend.backend()
        if have != want:
            raise RuntimeError(f"keras already imported with backend {have!r}; a {kind!r} process needs "
                               f"KERAS_BACKEND={want} set before keras is imported (use a fresh process)")
        return want
    os.environ["KERAS_BACKEND"] = want
    return want


class UnknownBackendError(ValueError):
    """A backend name that is not registered; the message lists the valid ones."""


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # numpy | keras | tf | tf_keras | jax | litert | onnxruntime | openvino | test
    description: str
    prepare: Callable = field(repr=False)
    max_abs: float | None = 1e-4  # max |out - ref| <= max_abs * max(1, max |ref|)
    min_top1: float | None = None  # top-1 agreement with the reference (quantised paths)
    max_acc_drop: float | None = None  # accuracy points (fraction) lost vs the reference, trained models
    quantized: bool = False
    needs: tuple[str, ...] = ()
    # the worker-process kind this path needs: "tf" shares a process with TensorFlow (Keras 3 on TF);
    # "jax" / "keras-numpy" run Keras 3 with KERAS_BACKEND=jax / numpy, set before keras is imported
    process: str = "tf"
    # True when `prepare` takes io= (a user model's concrete shapes / input names: LiteRT, SavedModel)
    takes_io: bool = False
    # modules a cold start imports before loading a model (None: not declared; the cold start refuses the
    # path rather than guess) and the converters' artifact file names it loads
    runtime: tuple[str, ...] | None = None
    artifacts: tuple[str, ...] = ()

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


def catalogued(name: str, prepare: Callable, *, takes_io: bool = False) -> Backend:
    """The Backend of catalogue path `name` (:mod:`overhead.base.paths`) prepared by `prepare`."""
    e = paths.entry(name)
    if e is None:
        raise KeyError(f"{name!r} has no entry in overhead.base.paths.CATALOGUE: a path is its entry there "
                       "plus its prepare in overhead.backends")
    return Backend(e.name, e.family, e.description, prepare, max_abs=e.max_abs, min_top1=e.min_top1,
                   max_acc_drop=e.max_acc_drop, quantized=e.quantized, needs=e.needs, process=e.process,
                   takes_io=takes_io, runtime=e.runtime, artifacts=e.artifacts)


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
    # An os.environ write by library code, on purpose: set_threads also runs in the calling process (the breakdown
    # and pipeline stages time their paths in the notebook's own process), where no parent could have passed the
    # variables; OpenMP/oneDNN/TF read them once, when imported after this. Children get the same values from
    # run_child(threads=) where the parent knows them; writing equal values again changes nothing.
    thread_env(threads)
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=threads, user_api="blas")
    if _PROCESS == "jax":
        _jax_threads(threads)
    if "tensorflow" in sys.modules:
        _configure_tf(sys.modules["tensorflow"])
    return threads_readback()


def _jax_threads(threads: int) -> None:
    """JAX has no thread-count setting (jax 0.10: none in jax.config; XLA's CPU client sizes its pools
    from the CPUs it may run on). So: pin the process to `threads` CPUs (os.sched_setaffinity, what the
    JAX issue tracker recommends, e.g. jax-ml/jax#1539) and turn off Eigen's multi-threading for 1 thread
    (XLA flag --xla_cpu_multi_thread_eigen). Must run before jax is imported."""
    if "jax" in sys.modules:
        warnings.warn("jax was imported before set_threads(): its CPU thread pools keep their size",
                      RuntimeWarning, stacklevel=3)
    allowed = sorted(os.sched_getaffinity(0))
    if threads < len(allowed):
        os.sched_setaffinity(0, allowed[:threads])
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_cpu_multi_thread_eigen" not in f]
    if threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    os.environ["XLA_FLAGS"] = " ".join(flags)


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
    out["process"], out["affinity"] = _PROCESS, len(os.sched_getaffinity(0))
    if _PROCESS == "jax":
        out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
        out["os_threads"] = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        out["tf_intra"] = tf.config.threading.get_intra_op_parallelism_threads()
        out["tf_inter"] = tf.config.threading.get_inter_op_parallelism_threads()
    return out


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
    tf = _tf()
    return {"load_s": load_s, "kernels": f"{kind}; oneDNN {envinfo.onednn_flag()}",
            "threads_seen": [tf.config.threading.get_intra_op_parallelism_threads(),
                             tf.config.threading.get_inter_op_parallelism_threads()], **extra}


