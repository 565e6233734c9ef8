"""The version stage's child: one TensorFlow release (any of 2.12 ... 2.21), its models one after the other,
every path, timed.

Runs inside a release's own environment (``data/envs/tf-<minor>/bin/python``, started by
:func:`overhead.harness.child.run_child` with ``python=``, which puts the package on ``PYTHONPATH``), so it imports
nothing of the study but the standard library, NumPy, TensorFlow and the NumPy-only helpers ``harness.child``,
``harness.jobs`` and ``harness.timing``. Its thread settings come from the environment ``run_child(threads=)``
gives it (BLAS, OpenMP, TF's intra-op = threads, inter-op = 1), read when TensorFlow is imported.
The model is rebuilt here, with ``tf.keras`` of this release (Keras 2, or Keras 3 from 2.16;
``TF_USE_LEGACY_KERAS=1`` makes it tf_keras), from the NumPy engine's ``.npz`` — version-neutral weights:
a JSON plan plus float32 arrays, read with ``np.load`` alone (format: :mod:`overhead.engine.format`). The
engine has folded BatchNormalization into the convolutions, so the rebuilt model computes the same function
with fewer layers, the same in every release. The parent judges parity on the outputs written here against
the NumPy engine's logits (the study's rule, :mod:`overhead.harness.parity`) and computes the statistics.

Job: a :class:`VersionsJob` on stdin (``python -m overhead.experiments.versions_child child``, read by
:func:`overhead.harness.jobs.child_entry`). TensorFlow is imported once for all models.
Protocol lines: ``import``, then per model ``model`` (only when it cannot be rebuilt), ``path`` (per path: status,
reason, prepare_s, first_call_s), ``rss``, ``model_done`` -- each with ``model`` --, and ``done``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from overhead.harness import jobs
from overhead.harness.child import error_text
from overhead.harness.timing import interleaved

PATHS = ("predict", "predict_on_batch", "call", "tf.function", "tf.function.xla", "savedmodel", "tf1.session",
         "tflite")


@dataclass(frozen=True)
class VersionsJob:
    """One child's job: every model of one (release, Keras, oneDNN, run) configuration, every path, timed.

    `models`: dicts {``model``, ``weights`` (the engine's .npz), ``inputs`` (.npz with ``x``: parity inputs, batch 1
    each), ``out`` (.npz to write), ``scratch`` (a folder for the SavedModel)}; `budget_s` 0: no timing;
    `rss_calls`: predict calls after which RSS is read on the first model, e.g. (1, 200); () for none. `threads`
    is what the child sets TensorFlow's pools to; the environment already holds it (``run_child(threads=)``)."""

    models: tuple
    paths: tuple = PATHS
    threads: int = 1
    budget_s: float = 0.0
    rounds: int = 5
    min_samples: int = 20
    max_samples: int = 20_000
    rss_calls: tuple = ()


# --------------------------------------------------------------------------- the version-neutral weights

def read_plan(path) -> dict:
    """The engine file's plan with its arrays in place of the ``{"__array__": name}`` references."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    plan = json.loads(arrays.pop("__plan__").tobytes().decode("utf-8"))

    def fill(v):
        if isinstance(v, dict):
            return arrays[v["__array__"]] if "__array__" in v else {k: fill(x) for k, x in v.items()}
        return [fill(x) for x in v] if isinstance(v, list) else v
    plan["ops"] = [dict(op, p=fill(op["p"]), bias=fill(op["bias"]), act=fill(op["act"])) for op in plan["ops"]]
    return plan


def _uncommute(ops):
    """The engine moved a convolution's bias and monotone activation after the max-pool that reads it (exact:
    max(a + b) = max(a) + b); put them back on the convolution, where a Keras layer holds them."""
    producer = {op["out"]: op for op in ops}
    for op in ops:
        if op["kind"] == "pool" and (op["bias"] is not None or op["act"] is not None):
            src = producer.get(op["ins"][0])
            if src is None or src["kind"] not in ("conv", "dwconv") or src["bias"] is not None or src["act"]:
                raise ValueError(f"pool {op['name']!r} carries a bias/activation no convolution can take back")
            src["bias"], src["act"], op["bias"], op["act"] = op["bias"], op["act"], None, None
    return ops


def _act_name(spec):
    """A Keras activation name for an engine activation spec, or None when it needs a layer of its own."""
    if spec is None or spec[0] == "linear":
        return "linear"
    if spec[0] == "relu" and list(spec[1:]) in ([0.0, None, 0.0], [0, None, 0]):
        return "relu"
    if spec[0] == "softmax" and spec[1] == -1:
        return "softmax"
    if spec[0] in ("sigmoid", "tanh") or (spec[0] == "elu" and spec[1] == 1.0):
        return spec[0]
    return "swish" if spec[0] == "silu" else None


def _act_layer(L, spec):
    name = _act_name(spec)
    if name is not None:
        return L.Activation(name)
    if spec[0] == "relu":
        return L.ReLU(max_value=spec[2], negative_slope=spec[1], threshold=spec[3])
    if spec[0] == "softmax":
        return L.Softmax(axis=spec[1])
    if spec[0] == "elu":
        return L.ELU(alpha=spec[1])
    raise ValueError(f"activation {spec!r} has no Keras layer here")


def build_model(keras, plan):
    """A functional tf.keras model computing the plan, weights set (works in Keras 2.12 ... 3.x)."""
    L = keras.layers
    inp = keras.Input(shape=tuple(plan["input_shape"][1:]), dtype="float32", name="x")
    vals = {plan["in_val"]: inp}
    for op in _uncommute(plan["ops"]):
        k, p, bias, act = op["kind"], op["p"], op["bias"], op["act"]
        ins = [vals[v] for v in op["ins"]]
        if k in ("conv", "dwconv") and not isinstance(p["padding"], str):  # a ZeroPadding2D the engine folded
            ins = [L.ZeroPadding2D(tuple(tuple(int(v) for v in ax) for ax in p["padding"]))(ins[0])]
            p = dict(p, padding="valid")
        own_act = True  # whether `act` is applied by the layer itself
        weights = None
        if k == "conv":
            kernel = p["w2"].reshape(p["kh"], p["kw"], p["cin"], -1)
            name = _act_name(act)
            own_act = name is not None
            layer = L.Conv2D(kernel.shape[3], (p["kh"], p["kw"]), strides=(p["sh"], p["sw"]), padding=p["padding"],
                             use_bias=bias is not None, activation=name if own_act else None)
            weights = [kernel] + ([bias] if bias is not None else [])
        elif k == "dwconv":
            kernel = p["w"]
            name = _act_name(act)
            own_act = name is not None
            layer = L.DepthwiseConv2D((p["kh"], p["kw"]), strides=(p["sh"], p["sw"]), padding=p["padding"],
                                      depth_multiplier=kernel.shape[3], use_bias=bias is not None,
                                      activation=name if own_act else None)
            weights = [kernel] + ([bias] if bias is not None else [])
        elif k == "dense":
            name = _act_name(act)
            own_act = name is not None
            layer = L.Dense(p["w"].shape[1], use_bias=bias is not None, activation=name if own_act else None)
            weights = [p["w"]] + ([bias] if bias is not None else [])
        elif k == "pool":
            cls = L.MaxPooling2D if p["mode"] == "max" else L.AveragePooling2D
            layer = cls((p["ph"], p["pw"]), strides=(p["sh"], p["sw"]), padding=p["padding"])
            own_act = False
        elif k == "gpool":
            cls = L.GlobalMaxPooling2D if p["mode"] == "max" else L.GlobalAveragePooling2D
            layer, own_act = cls(keepdims=bool(p["keepdims"])), False
        elif k == "reshape":
            layer = L.Flatten() if list(p["target"]) == [-1] else L.Reshape(tuple(p["target"]))
            own_act = False
        elif k == "zeropad":
            layer, own_act = L.ZeroPadding2D(tuple(tuple(x) for x in p["pads"])), False
        elif k == "merge":
            layer = {"add": L.Add, "subtract": L.Subtract, "multiply": L.Multiply, "average": L.Average,
                     "maximum": L.Maximum, "minimum": L.Minimum}[p["mode"]]()
            own_act = False
        elif k == "concat":
            layer, own_act = L.Concatenate(axis=p["axis"]), False
        elif k == "scale_shift" and np.size(p["scale"]) == 1 and np.size(p["shift"]) == 1:
            layer = L.Rescaling(float(np.ravel(p["scale"])[0]), offset=float(np.ravel(p["shift"])[0]))
            own_act = False
        elif k == "identity":
            vals[op["out"]] = ins[0]
            continue
        elif k == "act":
            vals[op["out"]] = _act_layer(L, act)(ins[0])
            continue
        else:
            raise ValueError(f"op {k} {op['name']!r} cannot be rebuilt in Keras here")
        if bias is not None and k not in ("conv", "dwconv", "dense"):
            raise ValueError(f"op {k} {op['name']!r} carries a bias")
        out = layer(ins if k in ("merge", "concat") else ins[0])
        if weights is not None:
            layer.set_weights(weights)
        if act is not None and not own_act:
            out = _act_layer(L, act)(out)
        if k == "conv" and p.get("pool"):  # the engine fused a 2x2-style max-pool into the convolution
            out = L.MaxPooling2D(tuple(p["pool"]), strides=tuple(p["pool"]), padding="valid")(out)
        vals[op["out"]] = out
    outs = [vals[v] for v in plan["out_vals"]]
    return keras.Model(inp, outs[0] if len(outs) == 1 else outs, name=plan.get("name") or "model")


# --------------------------------------------------------------------------- the paths

def _numpy(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def _holding_variables(tf, model):
    """A tf.Module that tracks the model's tf.Variables (Keras 3 wraps each one: ``.value``), as Keras 3's export does."""
    module = tf.Module()
    module.weights_ = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]
    return module


def prepare(tf, keras, model, path: str, x1: np.ndarray, scratch: str, threads: int):
    """A callable x -> np.ndarray for one path at batch 1 (compiles/converts what the path needs)."""
    spec = tf.TensorSpec(x1.shape, tf.float32)
    if path == "predict":
        return lambda x: model.predict(x, verbose=0)
    if path == "predict_on_batch":
        return lambda x: _numpy(model.predict_on_batch(x))
    if path == "call":
        return lambda x: _numpy(model(x, training=False))
    if path in ("tf.function", "tf.function.xla"):
        f = tf.function(lambda t: model(t, training=False), input_signature=[spec],
                        jit_compile=path.endswith("xla"))
        f.get_concrete_function()
        return lambda x: f(x).numpy()
    if path == "savedmodel":
        # A tf.Module holding the variables and one serving function, the way Keras 3's export builds it, in every
        # release alike (Keras 2's own saving would also try to save predict()'s captured iterator).
        target = os.path.join(scratch, "savedmodel")
        module = _holding_variables(tf, model)
        module.serve = tf.function(lambda t: model(t, training=False), input_signature=[spec])
        tf.saved_model.save(module, target, signatures={"serving_default": module.serve.get_concrete_function()})
        sig = tf.saved_model.load(target).signatures["serving_default"]
        (arg,) = list(sig.structured_input_signature[1])
        (out,) = list(sig.structured_outputs)
        return lambda x: sig(**{arg: tf.constant(x)})[out].numpy()
    concrete = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)
    if path == "tf1.session":
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
        frozen = convert_variables_to_constants_v2(concrete)
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(frozen.graph.as_graph_def(), name="")
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        sess = tf.compat.v1.Session(graph=graph, config=config)
        call = sess.make_callable(graph.get_tensor_by_name(frozen.outputs[0].name),
                                  feed_list=[graph.get_tensor_by_name(frozen.inputs[0].name)])
        return call
    if path == "tflite":
        # the variables' holder, not the model: with a Keras 3 model as the trackable object the converter leaves
        # the weights as resource variables (READ_VARIABLE on nothing: NaN outputs)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], _holding_variables(tf, model))
        interp = tf.lite.Interpreter(model_content=converter.convert(), num_threads=threads)
        interp.allocate_tensors()
        i_idx, o_idx = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        def run(x):
            interp.set_tensor(i_idx, x)
            interp.invoke()
            return interp.get_tensor(o_idx).copy()
        return run
    raise ValueError(f"unknown path {path!r}; valid: {', '.join(PATHS)}")


def rss_mb() -> float:
    """Resident set size now (VmRSS), MB; NaN where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _keras_version(tf) -> str:
    from importlib import metadata
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    for dist in (("tf-keras", "tf_keras") if legacy else ()) + ("keras",):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return getattr(tf.keras, "__version__", "")


def measure_model(tf, keras, spec: dict, job: VersionsJob, threads: int, emit, rss_calls=()) -> None:
    """One model of the job: rebuild it, prepare every path, keep its parity outputs, time the paths interleaved,
    write ``spec["out"]``. Events carry ``model``; a model that cannot be rebuilt is one ``model`` event with its
    reason, and the next model still runs."""
    name = spec["model"]
    try:
        model = build_model(keras, read_plan(spec["weights"]))
    except Exception as exc:  # noqa: BLE001
        emit(event="model", model=name, status="failed", reason=f"rebuilding the model failed: {error_text(exc)}")
        return
    with np.load(spec["inputs"]) as npz:
        x = np.ascontiguousarray(npz["x"], dtype=np.float32)
    x1 = np.ascontiguousarray(x[:1])
    outputs, runners = {}, {}
    for path in job.paths:
        t0 = time.perf_counter()
        try:
            fn = prepare(tf, keras, model, path, x1, spec["scratch"], threads)
            prepare_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            first = fn(x1)
            first_call_s = time.perf_counter() - t1
            if path == "predict" and rss_calls:
                done, marks = 1, {}
                for n in sorted(rss_calls):
                    while done < n:
                        fn(x1)
                        done += 1
                    marks[str(n)] = rss_mb()
                emit(event="rss", model=name, calls=marks)
            outs = [first] + [fn(np.ascontiguousarray(x[i:i + 1])) for i in range(1, len(x))]
            outputs[path] = np.concatenate([np.asarray(o, dtype=np.float32).reshape(1, -1) for o in outs])
            runners[path] = fn
            emit(event="path", model=name, path=path, status="ok", reason="", prepare_s=prepare_s,
                 first_call_s=first_call_s)
        except Exception as exc:  # noqa: BLE001 - a path a release lacks is a row with its reason
            emit(event="path", model=name, path=path, status="failed", reason=error_text(exc),
                 prepare_s=time.perf_counter() - t0, first_call_s=None)
    samples = {}
    if runners and job.budget_s > 0:
        samples = interleaved({p: (lambda f=f: f(x1)) for p, f in runners.items()}, budget_s=job.budget_s,
                              rounds=int(job.rounds), min_samples=int(job.min_samples),
                              max_samples=int(job.max_samples))
    arrays = {f"out__{p}": o for p, o in outputs.items()}
    arrays.update({f"samples__{p}": np.asarray(s, dtype=np.int64) for p, s in samples.items()})
    tmp = spec["out"] + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, spec["out"])
    emit(event="model_done", model=name)


def measure_job(job: VersionsJob, proto) -> int:
    """Import TensorFlow, then every model of the job (:func:`measure_model`); events as JSON lines on `proto`."""
    threads = int(job.threads)

    def emit(**kw):
        proto.write(json.dumps(kw, default=float) + "\n")

    t0 = time.perf_counter()
    try:
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - a release that does not import is a row with its reason
        emit(event="import", status="failed", reason=f"import tensorflow failed: {error_text(exc)}")
        return 1
    import_s = time.perf_counter() - t0
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras = tf.keras
    emit(event="import", status="ok", import_s=import_s, tensorflow=tf.__version__, keras=_keras_version(tf),
         numpy=np.__version__, onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""), rss_mb=rss_mb())
    for i, spec in enumerate(job.models):
        measure_model(tf, keras, spec, job, threads, emit, rss_calls=job.rss_calls if i == 0 else ())
    emit(event="done", rss_mb=rss_mb(), cpu_s=time.process_time())  # CPU seconds: the cost on a quiet machine
    return 0


def main(argv=None) -> int:
    return jobs.child_entry(VersionsJob, measure_job, argv)  # a VersionsJob on stdin


if __name__ == "__main__":
    raise SystemExit(main())
