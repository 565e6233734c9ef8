"""The catalogue of inference paths: one entry per path, everything the study says about it but how to prepare it.

A path is its entry here plus its ``prepare`` function, registered in one family module of
``overhead.backends`` (which checks at import that both sides name the same paths). Every per-path table of
the package is derived from ``CATALOGUE``: the backend order (``NAMES``), the report's families, colours and
"stays in TF" / "no TF at serving time" sets, the one-line changes and runnable snippets of the advice, the
modules a cold start imports and the artifacts it loads, how a path is shared between threads, and whether it
needs the Keras model object (a SavedModel folder has none).
This module imports nothing of the package, so every layer may read it.

Snippets assume ``model`` (a Keras 3 model on TensorFlow), ``x`` (a float32 NumPy batch of 1), ``tf`` and ``np``
in scope and leave the prediction in ``y``; files go to the working directory. tests/test_report_snippets.py
runs every one on a tiny model. Paths that need another process kind (``KERAS_BACKEND=jax``/``numpy``) have none.
"""
from __future__ import annotations

from dataclasses import dataclass

# the report's families, in display order (every figure and table groups the paths so)
KERAS3_TF, KERAS2, JAX, LITERT, OTHER_RUNTIMES, NUMPY = (
    "Keras 3 / TensorFlow", "Keras 2 (tf_keras)", "Keras on JAX / NumPy, JAX", "LiteRT", "other runtimes", "NumPy")
FAMILIES = (KERAS3_TF, KERAS2, JAX, LITERT, OTHER_RUNTIMES, NUMPY)
TF_FAMILIES = (KERAS3_TF, KERAS2)  # paths that keep you inside TensorFlow / Keras at serving time

TF = ("tensorflow", "keras")
_LITERT_RUNTIME = ("ai_edge_litert.interpreter",)
_LITERT_NEEDS = TF + ("ai_edge_litert",)
_PER_INTERPRETER = "a LiteRT interpreter is not thread-safe: one interpreter per thread"
_LITERT_RUN = ("it.allocate_tensors(); it.set_tensor(it.get_input_details()[0]['index'], x); it.invoke(); "
               "y = it.get_tensor(it.get_output_details()[0]['index'])")
_IMPORT_LITERT = "from ai_edge_litert.interpreter import Interpreter; "
_TF_FUNCTION = "f = tf.function(lambda t: model(t, training=False), input_signature=[tf.TensorSpec(x.shape, tf.float32)]"


# the advice's effort ladder: the smallest change first, then leaving TF, then reduced precision, then TF1
EFFORT_STEPS = ("1. one call changed, still Keras 3 on TensorFlow", "2. a compiled function, still TensorFlow",
                "3. leave TensorFlow at serving time (float32, exact)",
                "4. reduced precision (an option: it changes answers)",
                "TF1-style: `tf.compat.v1` + a private freezing API (legacy, not advised)")


@dataclass(frozen=True)
class Entry:
    name: str
    family: str        # the registry's family (Backend.family): numpy | keras | tf | tf_keras | jax | litert | ...
    shown_in: str      # the report's family (one of FAMILIES)
    colour: str        # each family one hue, each path one shade
    description: str   # one line, as `overhead backends` lists it
    change: str        # the change from `model.predict(x)` in words (the advice, the effort ladder)
    runtime: tuple[str, ...]  # modules a user imports before loading a model (the cold start times them)
    needs: tuple[str, ...] = TF  # modules that must be installed for the path to run
    process: str = "tf"  # worker-process kind: "tf", or "jax" / "keras-numpy" (Keras 3 on those backends)
    artifacts: tuple[str, ...] = ()  # converters' file names it loads; () = runs the .keras file itself
    snippet: str | None = None  # the change as code that runs as written (see the module docstring)
    note: str = ""     # what the snippet assumes beyond model, x, tf, np
    tf_free: bool = False  # runs without TensorFlow installed at serving time (conversion may need it once)
    per_thread: str = ""  # why N threads need one object each ("" = one object shared by all threads)
    keras_object: bool = True  # prepared from the Keras model object (so not from a SavedModel folder)
    max_abs: float | None = 1e-4  # parity: max |out - ref| <= max_abs * max(1, max |ref|)
    min_top1: float | None = None  # parity: top-1 agreement with the reference (quantised paths)
    max_acc_drop: float | None = None  # parity: accuracy points (fraction) lost vs the reference
    precision: str = "fp32"  # the arithmetic it serves with: fp32 | fp16 | int8 (reduced: not bounded by fp32 ceilings)
    effort: int | None = None  # its step in the advice's effort ladder (an index of EFFORT_STEPS); None: not a step

    @property
    def quantized(self) -> bool:  # int8 arithmetic: judged on top-1 agreement and accuracy, not on max abs error
        return self.precision == "int8"


def _litert(name, colour, description, change, variant, snippet=None, **kw) -> Entry:
    return Entry(name, "litert", LITERT, colour, description, change, _LITERT_RUNTIME, needs=_LITERT_NEEDS,
                 artifacts=("savedmodel", f"model.{variant}.tflite"), snippet=snippet, tf_free=True,
                 per_thread=_PER_INTERPRETER, keras_object=False, **kw)


CATALOGUE: tuple[Entry, ...] = (
    Entry("numpy", "numpy", NUMPY, "#000000", "the NumPy engine (overhead.engine), BLAS via threadpoolctl",
          "`overhead export model.keras model.npz`, then `overhead.engine.load('model.npz')(x)` (NumPy only)",
          ("numpy", "overhead.engine"), needs=("numpy", "threadpoolctl"), artifacts=("model.engine.npz",),
          snippet="import overhead.engine; y = overhead.engine.from_keras(model)(x)  # this repository's engine",
          tf_free=True),
    Entry("numpy.plain", "numpy", NUMPY, "#737373", "plain NumPy as a reader would write it (overhead.engine.plain)",
          "write the forward pass as a page of NumPy (`np.matmul`, im2col) — see the appendix",
          TF, needs=("numpy", "threadpoolctl"), tf_free=True),
    Entry("keras.predict", "keras", KERAS3_TF, "#d7301f", "model.predict(x, verbose=0)",
          "`model.predict(x, verbose=0)` (the default)", TF, snippet="y = model.predict(x, verbose=0)"),
    Entry("keras.predict_on_batch", "keras", KERAS3_TF, "#fc8d59", "model.predict_on_batch(x)",
          "`model.predict_on_batch(x)` instead of `model.predict(x)`", TF, snippet="y = model.predict_on_batch(x)", effort=0),
    Entry("keras.call", "keras", KERAS3_TF, "#990000", "eager model(x, training=False)",
          "`model(x, training=False)` instead of `model.predict(x)`", TF, snippet="y = model(x, training=False)", effort=0),
    Entry("tf.function", "tf", KERAS3_TF, "#08519c", "tf.function with a fixed input signature",
          "`f = tf.function(model, input_signature=[tf.TensorSpec(x.shape, tf.float32)])`; call `f(x)`", TF,
          snippet=_TF_FUNCTION + "); y = f(x)", effort=1),
    Entry("tf.function.xla", "tf", KERAS3_TF, "#6baed6", "tf.function(jit_compile=True): XLA-compiled",
          "the same `tf.function(..., jit_compile=True)`", TF, snippet=_TF_FUNCTION + ", jit_compile=True); y = f(x)", effort=1),
    Entry("tf.savedmodel", "tf", KERAS3_TF, "#3f007d", "Keras export -> tf.saved_model.load -> serving_default",
          "`model.export('m/')`; `tf.saved_model.load('m/').signatures['serving_default']`", ("tensorflow",),
          artifacts=("savedmodel",), keras_object=False,
          snippet="model.export('m_saved', verbose=False); m = tf.saved_model.load('m_saved'); y = m.serve(x)"),
    Entry("tf1.session", "tf", KERAS3_TF, "#2171b5",
          "frozen graph in a tf.compat.v1.Session (ConfigProto threads, make_callable)",
          "freeze the graph (`convert_variables_to_constants_v2`) and run it with "
          "`tf.compat.v1.Session(...).make_callable(...)`", TF,
          snippet=("from tensorflow.python.framework.convert_to_constants import "
                   "convert_variables_to_constants_v2 as freeze; "
                   "g = freeze(tf.function(lambda t: model(t, training=False))"
                   ".get_concrete_function(tf.TensorSpec(x.shape, tf.float32))).graph; "
                   "y = tf.compat.v1.Session(graph=g).run(g.outputs[0].name, {g.inputs[0].name: x})"), effort=4),
    Entry("tf_keras.predict", "tf_keras", KERAS2, "#e6550d", "Keras 2 (tf-keras) model.predict(x, verbose=0)",
          "Keras 2 (`import tf_keras`) `model.predict(x)`", TF + ("tf_keras",), needs=TF + ("tf_keras",)),
    Entry("tf_keras.predict_on_batch", "tf_keras", KERAS2, "#fdae6b", "Keras 2 (tf-keras) model.predict_on_batch(x)",
          "Keras 2 `model.predict_on_batch(x)`", TF + ("tf_keras",), needs=TF + ("tf_keras",)),
    Entry("tf_keras.call", "tf_keras", KERAS2, "#a63603", "Keras 2 (tf-keras) eager model(x, training=False)",
          "Keras 2 `model(x, training=False)`", TF + ("tf_keras",), needs=TF + ("tf_keras",)),
    Entry("keras.jax.predict", "jax", JAX, "#c51b8a", "Keras 3 on JAX: model.predict(x, verbose=0)",
          "`KERAS_BACKEND=jax` before `import keras`, then `model.predict(x)`", ("jax", "keras"),
          needs=("keras", "jax"), process="jax"),
    Entry("keras.jax.call", "jax", JAX, "#7a0177", "Keras 3 on JAX: model(x, training=False)",
          "`KERAS_BACKEND=jax`, then `model(x, training=False)`", ("jax", "keras"), needs=("keras", "jax"),
          process="jax"),
    Entry("jax.jit", "jax", JAX, "#f768a1", "jax.jit of the model's stateless_call, weights passed as arrays",
          "`KERAS_BACKEND=jax`; `jax.jit(model.stateless_call)` with the weights passed as arrays", ("jax", "keras"),
          needs=("keras", "jax"), process="jax", tf_free=True),
    Entry("keras.numpy.predict", "keras", JAX, "#dd3497", "Keras 3 on its NumPy backend: model.predict(x, verbose=0)",
          "`KERAS_BACKEND=numpy` before `import keras`, then `model.predict(x)`", ("keras",),
          needs=("keras", "numpy"), process="keras-numpy"),
    _litert("litert", "#006d2c", "LiteRT float32, XNNPACK on",
            "`tf.lite.TFLiteConverter.from_keras_model(model).convert()`, run with "
            "`ai_edge_litert.interpreter.Interpreter`", "float",
            _IMPORT_LITERT + "it = Interpreter(model_content="
            "tf.lite.TFLiteConverter.from_keras_model(model).convert()); " + _LITERT_RUN, effort=2),
    _litert("litert.builtin", "#41ab5d", "LiteRT float32, XNNPACK off (builtin kernels)",
            "the LiteRT conversion with XNNPACK off (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`)", "float"),
    _litert("litert.fp16", "#a1d99b", "LiteRT, float16 weights",
            "the LiteRT conversion with float16 weights (`target_spec.supported_types=[tf.float16]`)", "fp16",
            _IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
            "c.optimizations = [tf.lite.Optimize.DEFAULT]; c.target_spec.supported_types = [tf.float16]; "
            "it = Interpreter(model_content=c.convert()); " + _LITERT_RUN, max_abs=1e-2, precision="fp16", effort=3),
    _litert("litert.dynamic_int8", "#78a832", "LiteRT, dynamic-range int8 weights",
            "the LiteRT conversion with `optimizations=[tf.lite.Optimize.DEFAULT]`", "dynamic_int8",
            _IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
            "c.optimizations = [tf.lite.Optimize.DEFAULT]; it = Interpreter(model_content=c.convert()); "
            + _LITERT_RUN, max_abs=None, min_top1=0.9, max_acc_drop=0.03, precision="int8", effort=3),
    _litert("litert.int8", "#00441b", "LiteRT full-integer int8 (calibrated on 100 real digits), float I/O",
            "the LiteRT conversion, full-integer int8 with a representative dataset", "int8",
            _IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
            "c.optimizations = [tf.lite.Optimize.DEFAULT]; "
            "c.representative_dataset = lambda: ([s[None]] for s in x_calib); "
            "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]; "
            "it = Interpreter(model_content=c.convert()); " + _LITERT_RUN,
            note="`x_calib`: a few hundred real inputs (float32, without the batch axis) for calibration",
            max_abs=None, min_top1=0.9, max_acc_drop=0.03, precision="int8", effort=3),
    Entry("onnxruntime", "onnxruntime", OTHER_RUNTIMES, "#7b4fa6", "Keras ONNX export, ORT CPU provider",
          "export to ONNX (`tf2onnx`), run `onnxruntime.InferenceSession('m.onnx').run(...)`", ("onnxruntime",),
          needs=TF + ("onnxruntime", "tf2onnx", "onnx"), artifacts=("model.onnx",), tf_free=True, keras_object=False,
          snippet=("model.export('m.onnx', format='onnx', verbose=False); import onnxruntime as ort; "
                   "s = ort.InferenceSession('m.onnx'); y = s.run(None, {s.get_inputs()[0].name: x})[0]"), effort=2),
    Entry("onnxruntime.int8", "onnxruntime", OTHER_RUNTIMES, "#c2a5cf",
          "the ONNX export after ORT quantize_dynamic (int8 weights), ORT CPU provider",
          "quantize the ONNX export with `onnxruntime.quantization.quantize_dynamic` (int8 weights), run it with "
          "`onnxruntime`", ("onnxruntime",), needs=TF + ("onnxruntime", "tf2onnx", "onnx"),
          artifacts=("model.onnx", "model.int8.onnx"), tf_free=True, keras_object=False,
          snippet=("model.export('m.onnx', format='onnx', verbose=False); import onnxruntime as ort; "
                   "from onnxruntime.quantization import QuantType, quantize_dynamic; "
                   "quantize_dynamic('m.onnx', 'm.int8.onnx', weight_type=QuantType.QInt8); "
                   "s = ort.InferenceSession('m.int8.onnx'); y = s.run(None, {s.get_inputs()[0].name: x})[0]"),
          note=("quantize_dynamic's defaults: int8 weights per tensor, activations quantised at run time, ORT's "
                "integer-op list (Conv, MatMul, Gather, LSTM, ...; no Gemm); Conv becomes ConvInteger, which ORT 1.32's "
                "CPU provider runs, slower than a float Conv (`op_types_to_quantize=['MatMul']` keeps Conv float)"),
          max_abs=None, min_top1=0.9, max_acc_drop=0.03, precision="int8", effort=3),
    Entry("openvino", "openvino", OTHER_RUNTIMES, "#b15928",
          "Keras ONNX export, OpenVINO CPU plugin (latency hint, one infer request)",
          "export to ONNX, `openvino.Core().compile_model('m.onnx', 'CPU')`", ("openvino",),
          needs=TF + ("openvino", "tf2onnx", "onnx"), artifacts=("model.onnx",), tf_free=True, keras_object=False,
          per_thread="an OpenVINO infer request is not thread-safe: one request per thread",
          snippet=("model.export('m.onnx', format='onnx', verbose=False); import openvino as ov; "
                   "y = ov.Core().compile_model('m.onnx', 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(x)[0]"), effort=2),
)
BY_NAME = {e.name: e for e in CATALOGUE}
NAMES = tuple(BY_NAME)  # the study's fixed order of paths (backends.NAMES)


def reduced_precision(name: str) -> bool:
    """Serves with less than float32 arithmetic (its answers may change); a path outside the catalogue (a user's or
    a test backend) by its name's tag."""
    e = BY_NAME.get(name)
    return e.precision != "fp32" if e is not None else any(t in str(name) for t in ("int8", "fp16", "bf16"))


def int8(name: str) -> bool:
    e = BY_NAME.get(name)
    return e.precision == "int8" if e is not None else "int8" in str(name)


def effort_ladder() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(step, paths) of the advice's effort ladder, steps in order, paths in catalogue order."""
    return tuple((step, tuple(e.name for e in CATALOGUE if e.effort == i)) for i, step in enumerate(EFFORT_STEPS))


def entry(name: str) -> Entry | None:
    """The catalogue entry of ``name``; None for a path outside the catalogue (a user's or a test backend)."""
    return BY_NAME.get(name)


def in_family(*families: str) -> tuple[str, ...]:
    """The paths shown in ``families``, families in the given order, members in catalogue order."""
    return tuple(e.name for f in families for e in CATALOGUE if e.shown_in == f)
