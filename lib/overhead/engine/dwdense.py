"""DepthwiseConv2D on tiny maps as one dense per-channel matrix product (no padded copy).

On a map with fewer pixels than the kernel has taps (MobileNetV3's 5x5 kernels on 3x3 maps, a 3x3
kernel on 3x3 or 2x2), most of the taps the padded einsum of :mod:`overhead.engine.dwconv` computes
read the zero border: on 3x3 with a 5x5 kernel, 144 of 225 multiply-adds per channel. Here each
output pixel p is written as a sum over every input pixel q with a per-channel coefficient
``M[p, q, c]`` (the kernel tap joining them, or 0), built once for the input shape, and the op is one
``einsum('pqc,nqc->npc')``: P*Q multiply-adds per channel instead of kh*kw*P, and no padding copy.
It is taken only when Q <= kh*kw (never more work than the padded einsum). Measured on the AVX2
Zen 3 VM, copy + einsum against it: 3x3x576, 5x5: 16.8 -> 6.4 us; 3x3x336, 3x3: 5.4 -> 4.2 us;
6x6x240, 5x5 (Q = 36 > 25, not taken): 26.5 -> 39.1 us.

Finite inputs give TensorFlow's result; a coefficient of 0 times an inf or nan input pixel outside
an output's window gives nan there (like the zero-weight phase taps of the padded path).
"""
from __future__ import annotations

import numpy as np

from overhead.engine import views as V
from overhead.engine.epilogue import epilogue
from overhead.engine.ops import F32

try:  # the C function behind np.einsum (optimize=False), ~1 us of Python less per call
    from numpy._core.multiarray import c_einsum as _einsum
except ImportError:  # NumPy 1.x
    try:
        from numpy.core.multiarray import c_einsum as _einsum
    except ImportError:
        _einsum = np.einsum


MAX_DENSE_BYTES = 8 << 20  # the coefficients of one op at most (a 7x7 kernel on 7x7x1024: 9.8 MB)


def use_dense(shape, p, mult) -> bool:
    """Whether a depthwise op on input `shape` (n, h, w, c) takes the dense product: a multiplier of 1,
    no more input pixels than kernel taps, and coefficients of at most MAX_DENSE_BYTES."""
    q = shape[1] * shape[2]
    oh = V.out_size(shape[1], p["kh"], p["sh"], p["padding"])[0]
    ow = V.out_size(shape[2], p["kw"], p["sw"], p["padding"], 1)[0]
    return mult == 1 and q <= p["kh"] * p["kw"] and 4 * oh * ow * q * shape[3] <= MAX_DENSE_BYTES


def dense_matrix(wt, shape, p) -> np.ndarray:
    """(P, Q, C) float32: output pixel p's coefficient on input pixel q for channel c (TF geometry:
    output (r, x) reads input (r*sh + i - top, x*sw + j - left) with tap (i, j))."""
    n, h, w, c = shape
    kh, kw, sh, sw = p["kh"], p["kw"], p["sh"], p["sw"]
    oh, pt, _ = V.out_size(h, kh, sh, p["padding"])
    ow, pl, _ = V.out_size(w, kw, sw, p["padding"], 1)
    m = np.zeros((oh, ow, h, w, c), F32)
    for r in range(oh):
        for x in range(ow):
            for i in range(kh):
                a = r * sh + i - pt
                if not 0 <= a < h:
                    continue
                for j in range(kw):
                    b = x * sw + j - pl
                    if 0 <= b < w:
                        m[r, x, a, b] = wt[i, j, :, 0]  # each (p, q) pair is one tap at most
    return m.reshape(oh * ow, h * w, c)


def build_dwconv_dense(op, ins, out, ctx):
    """The step: one einsum of the (P, Q, C) coefficients with the (n, Q, C) input into the (n, P, C)
    output, then the op's bias and activation."""
    x = ins[0]
    n, h, w, c = x.shape
    m = dense_matrix(op.p["w"], x.shape, op.p)
    o3 = out.reshape(n, m.shape[0], c)
    get = V.viewer(x, lambda a: a.reshape(n, h * w, c))
    fin = epilogue(op.bias, op.act, out, ctx)
    ein = _einsum
    if fin is None:
        return lambda env: ein("pqc,nqc->npc", m, get(env), out=o3)

    def step(env):
        ein("pqc,nqc->npc", m, get(env), out=o3)
        fin()
    return step
