"""The one activation helper and the one bias + activation epilogue of every kernel.

An activation spec is a tuple made by the converter: ("relu", negative_slope, max_value,
threshold), ("elu", alpha), ("sigmoid",), ("tanh",), ("silu",), ("softmax", axis), ("linear",).
Everything runs in place on preallocated float32 buffers (``out=``), so a call allocates nothing.
"""
from __future__ import annotations

import numpy as np

from overhead.engine.ops import F32

_MAX, _ADD, _MUL = np.maximum, np.add, np.multiply


def sigmoid_inplace(v):
    """sigmoid(v) in place as 0.5 tanh(v/2) + 0.5: no overflow warning, within an ulp of tf.sigmoid."""
    _MUL(v, 0.5, out=v)
    np.tanh(v, out=v)
    _MUL(v, 0.5, out=v)
    _ADD(v, 0.5, out=v)
    return v


def activation(spec, ctx, shape):
    """(f, local): `f(v)` applies the activation in place to a buffer `v` of `shape` (None for
    linear). `local` means it needs no scratch, so `f` may also run on any block of rows of it
    (concurrently, from the engine's threads); otherwise call it once on the whole buffer."""
    kind = None if spec is None else spec[0]
    if kind is None or kind == "linear":
        return None, True
    if kind == "tanh":
        return (lambda v: np.tanh(v, out=v)), True
    if kind == "sigmoid":
        return sigmoid_inplace, True
    if kind == "softmax":
        axis = spec[1]
        red = np.empty(tuple(1 if i == axis % len(shape) else d for i, d in enumerate(shape)), F32)
        mx, sm = np.maximum.reduce, np.add.reduce

        def softmax(v):
            mx(v, axis=axis, keepdims=True, out=red)
            np.subtract(v, red, out=v)
            np.exp(v, out=v)
            sm(v, axis=axis, keepdims=True, out=red)
            np.divide(v, red, out=v)
        return softmax, False
    if kind in ("silu", "elu"):
        t = ctx.temp(shape)
        if kind == "silu":
            def silu(v):
                np.copyto(t, v)
                _MUL(v, sigmoid_inplace(t), out=v)
            return silu, False
        alpha = F32(spec[1])

        def elu(v):  # x if x > 0 else alpha * (exp(x) - 1)
            np.minimum(v, 0, out=t)
            np.expm1(t, out=t)
            _MUL(t, alpha, out=t)
            _MAX(v, 0, out=v)
            _ADD(v, t, out=v)
        return elu, False
    if kind != "relu":
        raise ValueError(f"unknown activation {spec!r}")
    _, slope, max_value, threshold = spec  # Keras' relu, same case split as keras.activations
    if slope == 0 and threshold == 0:
        if max_value is None:
            return (lambda v: _MAX(v, 0, out=v)), True
        lo, hi = F32(0), F32(max_value)
        return (lambda v: np.clip(v, lo, hi, out=v)), True
    t = ctx.temp(shape)
    if max_value is None and threshold == 0 and 0 <= slope <= 1:
        a = F32(slope)

        def leaky(v):  # x if x > 0 else slope * x  ==  max(x, slope * x)
            _MUL(v, a, out=t)
            _MAX(v, t, out=v)
        return leaky, False
    thr = F32(threshold)

    def relu_general(v):  # rare: temporaries allowed
        y = np.where(v > thr, v, F32(0)) if threshold != 0 else np.maximum(v, F32(0))
        if max_value is not None:
            y = np.clip(y, F32(0), F32(max_value))
        if slope != 0:
            y = y - F32(slope) * np.maximum(thr - v, F32(0))
        np.copyto(v, y)
    return relu_general, False


def tiled_bias(o2, bias):
    """(view, bias) for adding a per-channel bias to the contiguous (rows, C) array o2: with few
    channels the rows are grouped so NumPy's inner loop runs over r*C elements instead of C."""
    m, c = o2.shape
    if c >= 128 or m == 1:
        return o2, bias
    r = min(m, max(1, 1024 // c))
    while m % r:
        r -= 1
    return o2.reshape(m // r, r * c), np.tile(bias, r)


def epilogue(bias, spec, out, ctx, chunked=False):
    """Bias add (on the last axis) then activation, in place on `out`.

    chunked=False: one closure ``fin()`` for the whole buffer, or None when there is nothing to do.
    chunked=True: ``(per_chunk(ob), post)`` for ops computed in blocks of rows: the bias and a local
    activation run per block while it is in cache; any other activation runs once, as the step
    ``post(env)`` (None when not needed)."""
    act, local = activation(spec, ctx, out.shape)
    if chunked:
        post = None
        if not local:
            post, act = (lambda env, f=act: f(out)), None

        def per_chunk(ob):
            if bias is not None:
                _ADD(ob, bias, out=ob)
            if act is not None:
                act(ob)
        return per_chunk, post
    if bias is None:
        return None if act is None else (lambda: act(out))
    ba, bb = tiled_bias(out.reshape(-1, out.shape[-1]), bias)
    if act is None:
        return lambda: _ADD(ba, bb, out=ba)
    if spec == ("relu", 0.0, None, 0.0):  # the common case, inlined: a call is ~5% of a tiny model
        def fin_relu():
            _ADD(ba, bb, out=ba)
            _MAX(out, 0, out=out)
        return fin_relu

    def fin():
        _ADD(ba, bb, out=ba)
        act(out)
    return fin
