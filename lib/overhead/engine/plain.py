"""numpy.plain: the NumPy a reader would write, one obvious expression per layer.

No fusion, no folding, no buffers reused, no threads of its own (NumPy's BLAS does what it does).
The layer list comes from the engine's converter (one op per Keras layer, weights as Keras holds
them); the arithmetic is below, readable top to bottom. Activations: x is NHWC, kernels HWIO.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from overhead.engine.convert import convert
from overhead.engine.ops import UnsupportedLayerError

SUPPORTED = ("Conv2D, DepthwiseConv2D, Dense, BatchNormalization, ReLU-family activations (relu, relu6, "
             "leaky relu), sigmoid, silu (swish), softmax, MaxPooling2D / AveragePooling2D, "
             "GlobalAverage/MaxPooling2D, Flatten, Reshape, ZeroPadding2D, Rescaling, Normalization, Add, "
             "Multiply, Dropout-like identities")


def pad(x, kh, kw, sh, sw, padding, value=0.0):
    """TensorFlow's 'same' padding: enough for ceil(size / stride) outputs, odd cell bottom/right."""
    if padding == "valid":
        return x
    def amount(size, k, s):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        return total // 2, total - total // 2
    ph, pw = amount(x.shape[1], kh, sh), amount(x.shape[2], kw, sw)
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def windows(x, kh, kw, sh, sw):
    """(n, oh, ow, c, kh, kw): every kh x kw window of x, `stride` apart (a view, no copy)."""
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]


def conv2d(x, kernel, bias, strides, padding):
    kh, kw, cin, cout = kernel.shape
    win = windows(pad(x, kh, kw, *strides, padding), kh, kw, *strides)
    n, oh, ow = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * cin)  # im2col: one row per output
    y = (cols @ kernel.reshape(kh * kw * cin, cout)).reshape(n, oh, ow, cout)
    return y if bias is None else y + bias


def depthwise_conv2d(x, kernel, bias, strides, padding):
    kh, kw, c, mult = kernel.shape
    win = windows(pad(x, kh, kw, *strides, padding), kh, kw, *strides)
    y = np.einsum("nhwcij,ijcm->nhwcm", win, kernel).reshape(*win.shape[:3], c * mult)
    return y if bias is None else y + bias


def dense(x, kernel, bias):
    y = x @ kernel
    return y if bias is None else y + bias


def batch_norm(x, scale, shift):
    """gamma * (x - mean) / sqrt(var + eps) + beta, with scale = gamma / sqrt(var + eps)."""
    return x * scale + shift


def max_pool(x, size, strides, padding):
    (ph, pw), (sh, sw) = size, strides
    n, h, w, c = x.shape
    if (ph, pw) == (sh, sw) and padding == "valid":  # the common case: reshape, then max
        oh, ow = h // ph, w // pw
        return x[:, :oh * ph, :ow * pw].reshape(n, oh, ph, ow, pw, c).max(axis=(2, 4))
    return windows(pad(x, ph, pw, sh, sw, padding, -np.inf), ph, pw, sh, sw).max(axis=(4, 5))


def avg_pool(x, size, strides, padding):
    """Mean over each window; with 'same' padding only the cells inside the input count (as TF)."""
    (ph, pw), (sh, sw) = size, strides
    total = windows(pad(x, ph, pw, sh, sw, padding), ph, pw, sh, sw).sum(axis=(4, 5))
    ones = pad(np.ones((1,) + x.shape[1:3] + (1,), x.dtype), ph, pw, sh, sw, padding)
    return total / windows(ones, ph, pw, sh, sw).sum(axis=(4, 5))


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    y = np.where(x > threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.minimum(y, max_value)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without exp overflowing for large -x


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def activation(x, spec):
    """The converter's activation spec: ("relu", slope, max_value, threshold), ("softmax", axis)."""
    if spec is None or spec[0] == "linear":
        return x
    if spec[0] == "relu":
        return relu(x, *spec[1:])
    if spec[0] == "sigmoid":
        return sigmoid(x)
    if spec[0] == "silu":
        return x * sigmoid(x)
    return softmax(x, spec[1])


def multiply(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def layer(op):
    """`f(inputs) -> output` for one converted layer, using the functions above."""
    p, k, f32 = op.p, op.kind, (lambda a: None if a is None else np.asarray(a, np.float32))
    if k == "conv":
        w, b = f32(p["kernel"]), f32(op.bias)
        return lambda xs: conv2d(xs[0], w, b, (p["sh"], p["sw"]), p["padding"])
    if k == "dwconv":
        w, b = f32(p["kernel"]), f32(op.bias)
        return lambda xs: depthwise_conv2d(xs[0], w, b, (p["sh"], p["sw"]), p["padding"])
    if k == "dense":
        w, b = f32(p["kernel"]), f32(op.bias)
        return lambda xs: dense(xs[0], w, b)
    if k == "bn" and p["axis"] == p["rank"] - 1:
        scale, shift = f32(p["scale"]), f32(p["shift"])
        return lambda xs: batch_norm(xs[0], scale, shift)
    if k == "pool":
        fn = max_pool if p["mode"] == "max" else avg_pool
        return lambda xs: fn(xs[0], (p["ph"], p["pw"]), (p["sh"], p["sw"]), p["padding"])
    if k == "gpool":
        axes_fn = np.max if p["mode"] == "max" else np.mean
        return lambda xs: axes_fn(xs[0], axis=(1, 2), keepdims=p["keepdims"])
    if k == "reshape":
        return lambda xs: xs[0].reshape((len(xs[0]),) + tuple(p["target"]))
    if k == "identity" or k == "act":
        return lambda xs: xs[0]
    if k == "merge" and p["mode"] == "add":
        return lambda xs: sum(xs[1:], xs[0])
    if k == "merge" and p["mode"] == "multiply":  # squeeze-and-excitation: (n, h, w, c) * (n, 1, 1, c)
        return multiply
    if k == "zeropad":
        (t, b), (left, r) = p["pads"]
        return lambda xs: np.pad(xs[0], ((0, 0), (t, b), (left, r), (0, 0)))
    if k == "scale_shift" and "divide" not in p:  # Rescaling, Normalization: x * scale + shift per channel
        scale, shift = f32(p["scale"]), f32(p["shift"])
        return lambda xs: xs[0] * scale + shift
    raise UnsupportedLayerError(None, supported=SUPPORTED, who="numpy.plain", cls=op.cls, name=op.name)


def check_activation(op):
    spec = op.act
    if spec is not None and spec[0] not in ("linear", "relu", "sigmoid", "silu", "softmax"):
        raise UnsupportedLayerError(None, f"activation {spec[0]!r}", supported=SUPPORTED, who="numpy.plain",
                                    cls=op.cls, name=op.name)


class PlainModel:
    """``net(x)``: the layers one after the other, each value kept in a dict by its number."""

    def __init__(self, program):
        for op in program.ops:
            check_activation(op)
        self.steps = [(layer(op), op.ins, op.out, op.act) for op in program.ops]
        self.in_val, self.out_val = program.in_val, program.out_vals[-1]
        self.name, self.input_shape = program.name, program.input_shape
        if len(program.out_vals) != 1:
            raise UnsupportedLayerError(None, "models with several outputs", supported=SUPPORTED,
                                        who="numpy.plain", cls="Model", name=program.name)

    def __call__(self, x):
        values = {self.in_val: x}
        for fn, ins, out, act in self.steps:
            values[out] = activation(fn([values[i] for i in ins]), act)
        return values[self.out_val]


def from_keras(model_or_path) -> PlainModel:
    """numpy.plain for a Keras model or .keras path (imports Keras to read it)."""
    return PlainModel(convert(model_or_path))
