"""The ONNX file of a Keras model, working around three upstream faults that the Keras Applications hit.

1. Keras 3's ``model.export(format="onnx")`` (tf2onnx 1.17 on the traced function) leaves tensors the
   model *captures* as graph inputs instead of constants: EfficientNet's and ConvNeXt's
   ``Normalization`` mean/variance become ``.../normalization/Sub/y:0`` inputs that ONNX Runtime
   reports as "Required inputs ... are missing" and OpenVINO as extra inputs. A SavedModel freezes
   them, so the fallback is ``tf2onnx --saved-model`` on the model's own SavedModel export.
2. Keras 3 on TensorFlow runs a grouped ``Conv2D`` (ConvNeXt's depthwise 7x7, ``groups=channels``)
   inside an XLA-compiled ``tf.function``; tf2onnx (every opset tried: 13, 15, 17) leaves that call as a
   ``StatefulPartitionedCall`` node, an INVALID_GRAPH for ONNX Runtime and OpenVINO. Such a layer is
   exported as the ``DepthwiseConv2D`` it is (same weights reshaped, the same arithmetic), in a copy of
   the model that shares every other layer.
3. TensorFlow writes gelu with Erfc, which has no ONNX operator (tf2onnx: "No Op registered for Erfc"):
   ``Activation("gelu")`` is exported as 0.5 x (1 + erf(x / sqrt 2)) (Erf has one).

:func:`build` writes the file and returns what it did, recorded beside the artifact.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def _depthwise_twin(layer):
    """The DepthwiseConv2D computing the grouped Conv2D `layer` (groups == input channels), or None."""
    import keras
    groups, kernel = int(getattr(layer, "groups", 1)), layer.kernel
    if groups == 1 or kernel.shape[2] != 1 or tuple(layer.dilation_rate) != (1, 1):
        return None
    kh, kw, _, cout = kernel.shape
    twin = keras.layers.DepthwiseConv2D(
        (kh, kw), strides=layer.strides, padding=layer.padding, depth_multiplier=cout // groups,
        use_bias=layer.use_bias, activation=layer.activation, name=f"{layer.name}_as_depthwise")
    twin.build(layer.input.shape)
    weights = [np.asarray(kernel).reshape(kh, kw, groups, cout // groups)]
    if layer.use_bias:
        weights.append(np.asarray(layer.bias))
    twin.set_weights(weights)
    return twin


def gelu_erf(x):
    """gelu as 0.5 x (1 + erf(x / sqrt 2)): TensorFlow's own gelu is written with Erfc, which has no
    ONNX operator (tf2onnx 1.17: "No Op registered for Erfc"); Erf has one."""
    import keras
    return 0.5 * x * (1.0 + keras.ops.erf(x * np.float32(1 / np.sqrt(2))))


def _gelu_twin(layer):
    import keras
    if type(layer) is not keras.layers.Activation or layer.activation is not keras.activations.gelu:
        return None
    return keras.layers.Activation(gelu_erf, name=f"{layer.name}_erf")


def exportable(model):
    """(model to export, [what was rewritten]): `model` itself, or a copy whose grouped depthwise
    Conv2D layers are DepthwiseConv2D (every other layer shared, so its weights are the model's)."""
    import keras
    twins = {}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D) and type(layer) is keras.layers.Conv2D:
            twin = _depthwise_twin(layer)
            if twin is not None:
                twins[id(layer)] = twin
        twin = _gelu_twin(layer)
        if twin is not None:
            twins[id(layer)] = twin
    if not twins:
        return model, []
    clone = keras.models.clone_model(model, clone_function=lambda layer: twins.get(id(layer), layer),
                                     recursive=True)  # into ConvNeXt's nested Sequential stem too
    clone([np.zeros((1, *(int(d) for d in t.shape[1:])), np.float32) for t in model.inputs][0]
          if len(model.inputs) == 1 else
          [np.zeros((1, *(int(d) for d in t.shape[1:])), np.float32) for t in model.inputs])  # export wants a call
    n_gelu = sum(t.name.endswith("_erf") for t in twins.values())
    done = [f"{len(twins) - n_gelu} grouped Conv2D exported as DepthwiseConv2D" if len(twins) > n_gelu else "",
            f"{n_gelu} gelu exported with Erf (not Erfc)" if n_gelu else ""]
    return clone, [d for d in done if d]


def dangling_inputs(onnx_path, n_inputs: int) -> list[str]:
    """Graph inputs beyond the model's own (captured constants left as inputs), by name."""
    import onnx
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in init]
    return names[n_inputs:]


def tf2onnx_savedmodel(sm_dir, out: Path, extra=()) -> None:
    """``python -m tf2onnx.convert --saved-model`` in a child (its graph rewrites stay out of ours)."""
    proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(sm_dir), "--output",
                           str(out), "--signature_def", "serving_default", *extra], capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"tf2onnx could not convert the SavedModel: {lines[-1] if lines else proc.returncode}")


def build(model, out: Path) -> dict:
    """Write the ONNX file of `model` to `out`; returns {"route": ..., "rewrites": [...]}."""
    exp, rewrites = exportable(model)
    n_inputs = len(model.inputs)
    exp.export(str(out), format="onnx", verbose=False)
    extra = dangling_inputs(out, n_inputs)
    if not extra:
        return {"route": "keras model.export(format='onnx')", "rewrites": rewrites}
    out.unlink()
    sm = out.with_name(out.stem + ".savedmodel")
    exp.export(str(sm), format="tf_saved_model", verbose=False)
    tf2onnx_savedmodel(sm, out)
    left = dangling_inputs(out, n_inputs)
    if left:
        raise RuntimeError(f"the ONNX export leaves captured constants as inputs ({', '.join(left[:3])}) even "
                           "from the SavedModel (tf2onnx 1.17); no ONNX file for this model")
    return {"route": "tf2onnx --saved-model (Keras' ONNX export left captured constants as inputs: "
                     f"{', '.join(extra[:2])})", "rewrites": rewrites}
