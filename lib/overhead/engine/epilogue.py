"""The one activation helper and the one bias + activation epilogue of every kernel.

An activation spec is a tuple made by the converter: ("relu", negative_slope, max_value,
threshold), ("elu", alpha), ("sigmoid",), ("tanh",), ("silu",), ("softmax", axis), ("linear",),
("hard_sigmoid",), ("hard_silu",) (relu6(x + 3) / 6 and x times it, as TensorFlow computes them),
("gelu", approximate) (the erf form through A&S 7.1.26: NumPy has no erf).
Everything runs in place on preallocated float32 buffers (``out=``), so a call allocates nothing.

Per-call cost matters as much as the loops on small models (measured on the AVX2 Zen 3 VM, NumPy 2):
``np.maximum(v, 0)`` against a scalar runs an unvectorised loop (11 us on 36,864 floats, where
``clip(v, 0, inf)`` with 0-d float32 bounds takes 2.8 us), a Python scalar costs ~0.25 us of
conversion per call, and broadcasting a (C,) bias over a (1, C) row ~0.4 us of iterator set-up: so
bounds are 0-d float32 arrays (:func:`const`), ReLU is a clip, and single rows are added as 1-D.
"""
from __future__ import annotations

import math

import numpy as np

from overhead.engine.ops import F32

_MAX, _ADD, _MUL = np.maximum, np.add, np.multiply
try:  # the clip ufunc np.clip wraps: the same loop without ~2 us of Python argument handling per call
    from numpy._core.umath import clip as _CLIP
except ImportError:  # NumPy 1.x
    try:
        from numpy.core.umath import clip as _CLIP
    except ImportError:
        _CLIP = np.clip


# The one-row softmax first tries exp(x) / sum exp(x) without subtracting the maximum (three calls fewer: the
# argmax, its read and the subtraction; interleaved A/B on Zen 5, 1 thread: mlp_tiny 0.83-0.92x the time, cnn_seed
# 0.90-0.96x); it keeps that result only when the sum is finite (no exp overflowed, no NaN) and at least
# SOFTMAX_MIN_SUM, so an entry whose exp underflowed (x < -87) has a probability below exp(-87) / 1e-30 ~ 1.6e-8;
# otherwise it computes TensorFlow's exp(x - max) / sum from the logits, which the first try left untouched.
SOFTMAX_MIN_SUM = 1e-30


def const(value) -> np.ndarray:
    """A read-only 0-d float32 array: the cheapest scalar operand of a ufunc (no conversion per call)."""
    a = np.full((), value, F32)
    a.flags.writeable = False
    return a


_ZERO, _ONE, _HALF, _INF, _NINF = const(0.0), const(1.0), const(0.5), const(np.inf), const(-np.inf)


def relu_inplace(v):
    """max(v, 0) in place (as a clip: NumPy's maximum against a scalar is not vectorised)."""
    _CLIP(v, _ZERO, _INF, v)


def sigmoid_inplace(v):
    """sigmoid(v) in place as 0.5 tanh(v/2) + 0.5: no overflow warning, within an ulp of tf.sigmoid."""
    _MUL(v, _HALF, v)
    np.tanh(v, v)
    _MUL(v, _HALF, v)
    _ADD(v, _HALF, v)
    return v


# SIGN_NOTE: NumPy 2.4's np.sign into its own input takes a branchy scalar loop, which mispredicts on mixed
# signs: 465 us on 98,304 random floats where the SIMD loop (into another array) takes 39 us, measured on Zen 5.
# Timing one input over and over hides it below ~16k floats (the branch predictor learns the signs).
# Abramowitz & Stegun 7.1.26: erf(x) = 1 - t (a1 + t (a2 + ... a5)) exp(-x^2), t = 1 / (1 + p x), x >= 0;
# absolute error <= 1.5e-7 (float32 rounding of erf itself is 6e-8): gelu within ~1e-7 relative of tf.nn.gelu
_ERF_P = F32(0.3275911)
_ERF_A = tuple(F32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))


def _gelu(ctx, shape, approximate):
    t, u, w = ctx.temp(shape), ctx.temp(shape), ctx.temp(shape)
    if approximate:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tf.nn.gelu(approximate=True)
        c, k = const(np.sqrt(2 / np.pi)), const(0.044715)

        def gelu_tanh(v):
            np.multiply(v, v, t)
            np.multiply(t, k, t)
            np.add(t, _ONE, t)
            np.multiply(t, v, t)
            np.multiply(t, c, t)
            np.tanh(t, t)
            np.add(t, _ONE, t)
            np.multiply(t, _HALF, t)
            np.multiply(v, t, v)
        return gelu_tanh
    inv_sqrt2, erf_p = const(1 / np.sqrt(2)), const(_ERF_P)
    a1, a2, a3, a4, a5 = (const(a) for a in _ERF_A[::-1])

    def gelu_erf(v):  # 0.5 x (1 + erf(x / sqrt 2))
        np.multiply(v, inv_sqrt2, w)          # w = z
        np.abs(w, t)
        np.sign(w, u)                         # u = sign(z): never in place, see SIGN_NOTE
        np.multiply(t, t, w)
        np.negative(w, w)
        np.exp(w, w)                          # w = exp(-z^2)
        np.multiply(u, w, u)                  # u = sign(z) exp(-z^2)
        np.multiply(t, erf_p, t)
        np.add(t, _ONE, t)
        np.reciprocal(t, t)                   # t = 1 / (1 + p|z|)
        np.multiply(t, a5, w)                 # Horner: w = t (a1 + t (a2 + t (a3 + t (a4 + t a5))))
        for a in (a4, a3, a2, a1):
            np.add(w, a, w)
            np.multiply(w, t, w)
        np.multiply(w, u, w)                  # w = sign(z) (1 - erf|z|) ... erf(z) = sign(z) - w
        np.multiply(v, _HALF, t)                # t = x / 2
        np.sign(v, u)
        np.subtract(u, w, u)                  # u = erf(z)
        np.add(u, _ONE, u)
        np.multiply(t, u, v)
    return gelu_erf


def _hard(kind, ctx, shape):
    """TensorFlow's hard_sigmoid = relu6(x + 3) / 6, hard_silu = x * hard_sigmoid(x)."""
    lo, hi, three, six = _ZERO, const(6.0), const(3.0), const(6.0)
    if kind == "hard_sigmoid":
        def hard_sigmoid(v):
            np.add(v, three, v)
            _CLIP(v, lo, hi, v)
            np.divide(v, six, v)
        return hard_sigmoid, True
    t = ctx.temp(shape)

    def hard_silu(v):
        np.add(v, three, t)
        _CLIP(t, lo, hi, t)
        np.divide(t, six, t)
        np.multiply(v, t, v)
    return hard_silu, False


def activation(spec, ctx, shape):
    """(f, local): `f(v)` applies the activation in place to a buffer `v` of `shape` (None for
    linear). `local` means it needs no scratch, so `f` may also run on any block of rows of it
    (concurrently, from the engine's threads); otherwise call it once on the whole buffer."""
    kind = None if spec is None else spec[0]
    if kind is None or kind == "linear":
        return None, True
    if kind == "tanh":
        return (lambda v: np.tanh(v, v)), True
    if kind == "sigmoid":
        return sigmoid_inplace, True
    if kind == "softmax":
        axis = spec[1]
        red = np.empty(tuple(1 if i == axis % len(shape) else d for i, d in enumerate(shape)), F32)
        mx, sm = np.maximum.reduce, np.add.reduce
        if red.size == 1:  # one row (batch 1): 1-D; the maximum read at argmax (0.2 us, where the
            # maximum.reduce took 0.6 us; NaN first like it), the sum as a BLAS dot (~0.3 us less)
            n = int(np.prod(shape))
            r0, ones, e, dot, isfinite = red.reshape(()), np.ones(n, F32), np.empty(n, F32), np.dot, math.isfinite

            def softmax_row(v):
                v1 = v.reshape(-1)
                np.exp(v1, e)  # first exp(x) / sum exp(x), kept when the sum is finite and not tiny (SOFTMAX_MIN_SUM)
                dot(e, ones, out=r0)
                s = float(r0)
                if s >= SOFTMAX_MIN_SUM and isfinite(s):
                    np.divide(e, r0, v1)
                    return
                r0[...] = v1[v1.argmax()]
                np.subtract(v1, r0, v1)
                np.exp(v1, v1)
                dot(v1, ones, out=r0)
                np.divide(v1, r0, v1)
            return softmax_row, False

        def softmax(v):
            mx(v, axis=axis, keepdims=True, out=red)
            np.subtract(v, red, v)
            np.exp(v, v)
            sm(v, axis=axis, keepdims=True, out=red)
            np.divide(v, red, v)
        return softmax, False
    if kind in ("silu", "elu"):
        t = ctx.temp(shape)
        if kind == "silu":
            def silu(v):
                np.copyto(t, v)
                _MUL(v, sigmoid_inplace(t), out=v)
            return silu, False
        alpha = const(spec[1])

        def elu(v):  # x if x > 0 else alpha * (exp(x) - 1)
            _CLIP(v, _NINF, _ZERO, t)
            np.expm1(t, t)
            _MUL(t, alpha, t)
            relu_inplace(v)
            _ADD(v, t, v)
        return elu, False
    if kind in ("hard_sigmoid", "hard_silu"):
        return _hard(kind, ctx, shape)
    if kind == "gelu":
        return _gelu(ctx, shape, bool(spec[1])), False
    if kind != "relu":
        raise ValueError(f"unknown activation {spec!r}")
    _, slope, max_value, threshold = spec  # Keras' relu, same case split as keras.activations
    if slope == 0 and threshold == 0:
        if max_value is None:
            return relu_inplace, True
        hi = const(max_value)
        return (lambda v: _CLIP(v, _ZERO, hi, v)), True
    t = ctx.temp(shape)
    if max_value is None and threshold == 0 and 0 <= slope <= 1:
        a = const(slope)

        def leaky(v):  # x if x > 0 else slope * x  ==  max(x, slope * x)
            _MUL(v, a, t)
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


BIAS_RUN = 8192  # floats per inner run of a bias add (the bias tiled to it: 32 KB per op at most)


def tiled_bias(o2, bias):
    """(view, bias) for adding a per-channel bias to the contiguous (rows, C) array o2: the rows are
    grouped so NumPy's inner loop runs over about BIAS_RUN elements instead of C (measured on a
    2304x48 map: 18.7 us with C-float runs, 11.9 us with 864, 7.6 us with 6144, 6.0 us flat)."""
    m, c = o2.shape
    if m == 1:  # a single row: 1-D (broadcasting (C,) over (1, C) costs ~0.4 us per call)
        return o2.reshape(c), bias
    if c >= BIAS_RUN // 2:
        return o2, bias
    r = min(m, max(1, BIAS_RUN // c))
    while m % r:
        r -= 1
    if r == m:
        return o2.reshape(m * c), np.tile(bias, r)
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
                _ADD(ob, bias, ob)
            if act is not None:
                act(ob)
        return per_chunk, post
    if bias is None:
        return None if act is None else (lambda: act(out))
    ba, bb = tiled_bias(out.reshape(-1, out.shape[-1]), bias)
    if act is None:
        return lambda: _ADD(ba, bb, ba)
    if spec == ("relu", 0.0, None, 0.0):  # the common case, inlined: a call is ~5% of a tiny model
        def fin_relu():
            _ADD(ba, bb, ba)
            _CLIP(ba, _ZERO, _INF, ba)
        return fin_relu

    def fin():
        _ADD(ba, bb, ba)
        act(out)
    return fin
