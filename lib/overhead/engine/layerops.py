"""Kernels of the layers the Keras Applications families add: LayerNormalization and Cropping2D.

Same step contract as :mod:`overhead.engine.kernels`: ``build_<kind>(op, ins, out, ctx)`` returns
``step(env)`` writing into the preallocated ``out``; scratch comes from ``ctx.temp``.
"""
from __future__ import annotations

import numpy as np

from overhead.engine import views as V
from overhead.engine.epilogue import epilogue
from overhead.engine.ops import F32


def _fin(op, out, ctx):
    fin = epilogue(op.bias, op.act, out, ctx)
    return None if fin is None else (lambda env: fin())


def build_layernorm(op, ins, out, ctx):
    """(x - mean) / sqrt(var + eps) * gamma + beta over the last axis, like keras.ops.layer_normalization
    (mean and variance of each row in float32, the variance as the mean of squared deviations)."""
    x = ins[0]
    c = x.shape[-1]
    rows = int(np.prod(x.shape[:-1]))
    o2 = out.reshape(rows, c)
    get = V.viewer(x, lambda a: a.reshape(rows, c))
    mean, var, sq = ctx.temp((rows, 1)), ctx.temp((rows, 1)), ctx.temp((rows, c))
    gamma, beta, eps, inv_c = op.p["gamma"], op.p["beta"], F32(op.p["epsilon"]), F32(1.0 / c)
    add_reduce = np.add.reduce

    def core(env):
        a = get(env)
        add_reduce(a, axis=1, keepdims=True, out=mean)
        np.multiply(mean, inv_c, out=mean)
        np.subtract(a, mean, out=o2)
        np.multiply(o2, o2, out=sq)
        add_reduce(sq, axis=1, keepdims=True, out=var)
        np.multiply(var, inv_c, out=var)
        np.add(var, eps, out=var)
        np.sqrt(var, out=var)
        np.divide(o2, var, out=o2)
        np.multiply(o2, gamma, out=o2)
        np.add(o2, beta, out=o2)
    return V.chain([core, _fin(op, out, ctx)])


def build_crop(op, ins, out, ctx):
    """Cropping2D: a copy of the kept window."""
    (t, b), (l, r) = op.p["crops"]
    n, h, w, c = ins[0].shape
    get = V.viewer(ins[0], lambda a: a[:, t:h - b, l:w - r, :])
    return V.chain([lambda env: np.copyto(out, get(env)), _fin(op, out, ctx)])


BUILDERS = {"layernorm": build_layernorm, "crop": build_crop}
