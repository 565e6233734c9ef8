"""The change from ``model.predict(x)`` to each path, as code that runs as written.

Each snippet assumes ``model`` (a Keras 3 model on TensorFlow), ``x`` (a float32 NumPy batch of 1), ``tf`` and
``np`` imported, and leaves the prediction in ``y``; files go to the working directory. The tests execute every
snippet of ``TESTED`` on a tiny model (tests/test_report_snippets.py), so a snippet that stops running fails
there. Paths that need another process kind (``KERAS_BACKEND=jax``/``numpy``) have no snippet here: the advice
names them and points to the appendix.
"""
from __future__ import annotations

_LITERT_RUN = ("it.allocate_tensors(); it.set_tensor(it.get_input_details()[0]['index'], x); it.invoke(); "
               "y = it.get_tensor(it.get_output_details()[0]['index'])")
_IMPORT_LITERT = "from ai_edge_litert.interpreter import Interpreter; "

SNIPPETS = {
    "keras.predict": "y = model.predict(x, verbose=0)",
    "keras.predict_on_batch": "y = model.predict_on_batch(x)",
    "keras.call": "y = model(x, training=False)",
    "tf.function": ("f = tf.function(lambda t: model(t, training=False), "
                    "input_signature=[tf.TensorSpec(x.shape, tf.float32)]); y = f(x)"),
    "tf.function.xla": ("f = tf.function(lambda t: model(t, training=False), "
                        "input_signature=[tf.TensorSpec(x.shape, tf.float32)], jit_compile=True); y = f(x)"),
    "tf.savedmodel": "model.export('m_saved', verbose=False); m = tf.saved_model.load('m_saved'); y = m.serve(x)",
    "tf1.session": ("from tensorflow.python.framework.convert_to_constants import "
                    "convert_variables_to_constants_v2 as freeze; "
                    "g = freeze(tf.function(lambda t: model(t, training=False))"
                    ".get_concrete_function(tf.TensorSpec(x.shape, tf.float32))).graph; "
                    "y = tf.compat.v1.Session(graph=g).run(g.outputs[0].name, {g.inputs[0].name: x})"),
    "litert": (_IMPORT_LITERT + "it = Interpreter(model_content="
               "tf.lite.TFLiteConverter.from_keras_model(model).convert()); " + _LITERT_RUN),
    "litert.fp16": (_IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
                    "c.optimizations = [tf.lite.Optimize.DEFAULT]; c.target_spec.supported_types = [tf.float16]; "
                    "it = Interpreter(model_content=c.convert()); " + _LITERT_RUN),
    "litert.dynamic_int8": (_IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
                            "c.optimizations = [tf.lite.Optimize.DEFAULT]; "
                            "it = Interpreter(model_content=c.convert()); " + _LITERT_RUN),
    "litert.int8": (_IMPORT_LITERT + "c = tf.lite.TFLiteConverter.from_keras_model(model); "
                    "c.optimizations = [tf.lite.Optimize.DEFAULT]; "
                    "c.representative_dataset = lambda: ([s[None]] for s in x_calib); "
                    "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]; "
                    "it = Interpreter(model_content=c.convert()); " + _LITERT_RUN),
    "onnxruntime": ("model.export('m.onnx', format='onnx', verbose=False); import onnxruntime as ort; "
                    "s = ort.InferenceSession('m.onnx'); y = s.run(None, {s.get_inputs()[0].name: x})[0]"),
    "openvino": ("model.export('m.onnx', format='onnx', verbose=False); import openvino as ov; "
                 "y = ov.Core().compile_model('m.onnx', 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(x)[0]"),
    "numpy": "import overhead.engine; y = overhead.engine.from_keras(model)(x)  # this repository's engine",
}
NOTES = {"litert.int8": "`x_calib`: a few hundred real inputs (float32, without the batch axis) for calibration"}
TESTED = tuple(SNIPPETS)


def snippet(backend: str) -> str | None:
    return SNIPPETS.get(backend)
