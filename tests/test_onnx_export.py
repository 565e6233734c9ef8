"""The ONNX file of the layers Keras Applications add: ONNX Runtime and OpenVINO agree with Keras.

A model with what broke the upstream export -- a Normalization (constants left as inputs), a grouped
depthwise Conv2D (an XLA call tf2onnx cannot convert) and gelu (Erfc has no ONNX operator) -- goes
through ``converters.onnx`` and is run by both runtimes.
"""
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
L = keras.layers

from overhead.backends import converters, onnx_export  # noqa: E402


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = L.Normalization(mean=[100.0, 110.0, 120.0], variance=[900.0, 1000.0, 1100.0])(inp)
    x = L.Conv2D(6, 1)(x)
    x = L.Conv2D(6, 3, padding="same", groups=6)(x)
    x = L.LayerNormalization(epsilon=1e-6)(x)
    x = L.Activation("gelu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(4)(x))


@pytest.mark.slow  # two exports and a tf2onnx child process
def test_onnx_of_normalization_grouped_conv_and_gelu(tmp_path):
    model = _model()
    path = tmp_path / "apps_layers.keras"
    model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    ref = np.asarray(model(x))
    onnx_path, info = converters.onnx(path, tmp_path / "artifacts")
    assert onnx_export.dangling_inputs(onnx_path, 1) == []
    record = json.loads(onnx_path.with_name("model.onnx.json").read_text())
    assert "SavedModel" in record["route"] or "saved-model" in record["route"]
    assert any("DepthwiseConv2D" in r for r in record["rewrites"]) and any("Erf" in r for r in record["rewrites"])
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    ov = pytest.importorskip("openvino")
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled({0: x})[compiled.output(0)], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_a_plain_model_is_exported_as_it_is():
    inp = keras.Input((4,))
    model = keras.Model(inp, L.Dense(3, activation="relu")(inp))
    assert onnx_export.exportable(model) == (model, [])
