"""The buckets of the per-call decomposition (:mod:`overhead.experiments.breakdown`): which bucket a sampled
stack is in, by :data:`RULES`, and the bookkeeping from samples to seconds per call and bucket.

A sample's bucket comes from its stack, outermost frame first: the innermost frame a rule names decides,
except that tracing and callbacks absorb everything below them. A stack whose innermost frame is on a
``TFE_Py_Execute`` / ``TFE_Py_FastPathExecute`` line is in TF's C++ runtime, unless it runs a tf.data op
(then tf.data) or a conversion. Pure functions: no TensorFlow, no timing.
"""
from __future__ import annotations

import functools
import re

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
