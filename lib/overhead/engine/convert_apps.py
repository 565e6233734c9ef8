"""Converter handlers for the layers the Keras Applications families add to the core set.

MobileNetV3 (hard_sigmoid as ``ReLU(6)(x + 3) * (1/6)``: Keras *operations* with a constant),
EfficientNet (Normalization, Rescaling by a vector), ConvNeXt (Normalization, LayerNormalization,
grouped = depthwise Conv2D, LayerScale, StochasticDepth, ``inputs + x``), Xception and NASNet
(SeparableConv2D, Cropping2D). Each handler takes the :class:`~overhead.engine.convert._Converter`
and emits core ops (scale_shift, dwconv, conv, merge) or the new ``layernorm`` / ``crop`` ops.
Keras is imported only inside the functions (``import overhead.engine`` stays TF-free).
"""
from __future__ import annotations

import numpy as np

from overhead.engine.ops import F32, UnsupportedLayerError

# Keras operations (keras.ops.*, what `x + 3.0` on a KerasTensor records) the engine runs
ARITH_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Divide": "divide",
             "TrueDivide": "divide"}


def _np(v) -> np.ndarray:
    import keras
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)


def handlers(conv) -> dict:
    """{layer class: handler(layer, ins)} for the converter's table."""
    import keras
    L = keras.layers
    table = {L.Normalization: lambda layer, ins: normalization(conv, layer, ins),
             L.LayerNormalization: lambda layer, ins: layer_norm(conv, layer, ins),
             L.SeparableConv2D: lambda layer, ins: separable(conv, layer, ins),
             L.Cropping2D: lambda layer, ins: cropping(conv, layer, ins)}
    try:  # ConvNeXt's own layers (keras.src: no public name)
        from keras.src.applications import convnext
        table[convnext.LayerScale] = lambda layer, ins: conv._emit(
            "scale_shift", layer, ins, {"scale": _np(layer.gamma).astype(F32), "shift": np.zeros((), F32)})
        table[convnext.StochasticDepth] = lambda layer, ins: conv._emit("identity", layer, ins)
    except ImportError:  # another Keras layout: those layers are refused by name
        pass
    return table


def _last_axis(layer, axis, rank, what):
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    axes = tuple(int(a) % rank for a in axes)
    if axes != (rank - 1,):
        raise UnsupportedLayerError(layer, f"{what} over axes {axis} (only the last, channels axis)")


def normalization(conv, layer, ins):
    """(x - mean) / max(sqrt(var), epsilon) as x * scale + shift (per channel)."""
    import keras
    if layer.invert:
        raise UnsupportedLayerError(layer, "invert=True (the inverse normalization)")
    if layer.mean is None:
        raise UnsupportedLayerError(layer, "not built (no mean and variance)")
    mean, var = _np(layer.mean), _np(layer.variance)
    rank = len(layer._build_input_shape) if getattr(layer, "_build_input_shape", None) else mean.ndim
    if mean.ndim == rank:
        mean, var = mean[0], var[0]  # drop the batch axis: (1, ..., C) -> (..., C)
    scale = 1.0 / np.maximum(np.sqrt(var), keras.backend.epsilon())
    return conv._emit("scale_shift", layer, ins, {"scale": scale.astype(F32), "shift": (-mean * scale).astype(F32)})


def layer_norm(conv, layer, ins):
    """LayerNormalization over the channels axis (ConvNeXt's); rms_scaling is refused by name."""
    if getattr(layer, "rms_scaling", False):
        raise UnsupportedLayerError(layer, "rms_scaling=True")
    rank = len(layer.input.shape) if hasattr(layer, "input") else 4
    _last_axis(layer, layer.axis, rank, "normalization")
    c = int(layer.input.shape[-1])
    gamma = _np(layer.gamma) if layer.scale else np.ones(c)
    beta = _np(layer.beta) if layer.center else np.zeros(c)
    return conv._emit("layernorm", layer, ins, {"gamma": gamma.astype(F32), "beta": beta.astype(F32),
                                                "epsilon": float(layer.epsilon)})


def separable(conv, layer, ins):
    """SeparableConv2D = DepthwiseConv2D (no bias) then a 1x1 Conv2D with the bias and activation."""
    if tuple(layer.dilation_rate) != (1, 1):
        raise UnsupportedLayerError(layer, f"dilation_rate={tuple(layer.dilation_rate)} (dilated convolution)")
    dk, pk = _np(layer.depthwise_kernel), _np(layer.pointwise_kernel)  # (kh, kw, cin, mult), (1, 1, cin*mult, cout)
    sh, sw = layer.strides
    mid = conv._emit("dwconv", layer, ins, {"kernel": dk, "kh": dk.shape[0], "kw": dk.shape[1], "sh": sh, "sw": sw,
                                            "padding": conv._padding(layer)})
    return conv._emit("conv", layer, [mid], {"kernel": pk, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "padding": "valid"},
                      conv._bias(layer), conv.act_spec(layer.activation, layer))


def cropping(conv, layer, ins):
    (t, b), (l, r) = layer.cropping
    return conv._emit("crop", layer, ins, {"crops": ((int(t), int(b)), (int(l), int(r)))})


def grouped_kernel(layer, kernel):
    """A grouped Conv2D's kernel (kh, kw, cin/groups, cout) as ("dwconv", (kh, kw, cin, mult)) when every
    group is one channel (ConvNeXt's depthwise 7x7), else ("conv", the block-diagonal full kernel):
    the zeros add exact zeros, so the result is the grouped convolution's."""
    g = int(layer.groups)
    kh, kw, cg, cout = kernel.shape
    if cg == 1:
        return "dwconv", kernel.reshape(kh, kw, g, cout // g)
    full = np.zeros((kh, kw, cg * g, cout))
    og = cout // g
    for i in range(g):
        full[:, :, i * cg:(i + 1) * cg, i * og:(i + 1) * og] = kernel[:, :, :, i * og:(i + 1) * og]
    return "conv", full


def keras_op(conv, op, node, ins):
    """A Keras operation node of a functional graph: +, -, *, / of two tensors (a merge) or of a tensor
    and a constant (x * scale + shift). Anything else is refused by name."""
    import keras
    kind = ARITH_OPS.get(type(op).__name__)
    module = type(op).__module__
    if kind is None or not module.startswith("keras.src.ops"):
        raise UnsupportedLayerError(op, f"Keras operation {type(op).__name__} (only +, -, *, / in a graph)")
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if kwargs or len(args) != 2:
        raise UnsupportedLayerError(op, "an operation called with other than two arguments")
    kt = keras.KerasTensor
    is_t = [isinstance(a, kt) for a in args]
    if all(is_t):
        if kind == "divide":
            raise UnsupportedLayerError(op, "division of two tensors")
        return conv._emit("merge", op, ins, {"mode": kind})
    pos = is_t.index(True)
    tensor, const = args[pos], np.asarray(_np(args[1 - pos]), np.float64)
    rank = len(tensor.shape)
    if const.ndim > rank or any(c not in (1, d) for c, d in zip(const.shape[::-1], tensor.shape[::-1])):
        raise UnsupportedLayerError(op, f"a constant of shape {const.shape} that changes the shape {tensor.shape}")
    if const.ndim == rank:
        if const.shape[0] != 1:
            raise UnsupportedLayerError(op, "a constant with a batch axis")
        const = const[0]
    one, zero = np.ones_like(const), np.zeros_like(const)
    if kind == "add":
        scale, shift = one, const
    elif kind == "multiply":
        scale, shift = const, zero
    elif kind == "subtract":
        scale, shift = (one, -const) if pos == 0 else (-one, const)
    elif pos == 0 and np.all(const != 0):  # x / c: exact only as a division, so keep it one
        return conv._emit("scale_shift", op, ins, {"divide": const.astype(F32), "scale": one.astype(F32),
                                                   "shift": zero.astype(F32)})
    else:
        raise UnsupportedLayerError(op, "a constant divided by a tensor (or by zero)")
    return conv._emit("scale_shift", op, ins, {"scale": scale.astype(F32), "shift": shift.astype(F32)})
