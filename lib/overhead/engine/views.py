"""Shapes, strided views and padded sources shared by the kernels, and the size thresholds.

A *step* is a closure ``step(env)`` bound to buffers preallocated for one input shape; ``env`` is
the plan's list of values. A value is a :class:`~overhead.engine.ops.Val`: a fixed buffer, or
(derived from the model input) read from ``env`` at call time.
"""
from __future__ import annotations

import numpy as np

from overhead.engine.ops import F32, Val

# Steps larger than these are cut into chunks run on the engine's threads; smaller ones are one
# direct call. Measured: a parallel region costs ~0.1 ms here (thread wake-up, the last chunk's
# wait), so ResNet's 12.8 MFLOP 1x1 shortcut convolutions ran slower on 2 threads (0.14-0.20 ms ->
# 0.23-0.26 ms). Tests lower them to exercise the chunked paths on small layers.
PAR_MIN_FLOPS = 16e6   # GEMMs (conv, dense)
PAR_MIN_ELEMS = 1 << 20  # element-wise steps, pooling, padded copies


def out_size(size: int, k: int, s: int, padding, axis: int = 0) -> tuple[int, int, int]:
    """Output length and (before, after) padding of spatial axis `axis` (0: height, 1: width), TensorFlow's
    rule: 'same' pads ceil(size/s) outputs, the odd cell going to the bottom/right; explicit padding
    ((top, bottom), (left, right)) is a ZeroPadding2D folded into a 'valid' convolution."""
    if not isinstance(padding, str):
        before, after = padding[axis]
        return (size + before + after - k) // s + 1, before, after
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def strided(a, shape, strides):
    """A read-only strided view (byte strides) of the C-contiguous float32 array `a`."""
    return np.ndarray(shape, F32, a, 0, strides)


def cstrides(shape):
    """Element strides of a C-contiguous array of `shape`."""
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= d
    return tuple(reversed(st))


def viewer(val: Val, make):
    """`env -> make(array)`: computed once for a fixed buffer, per call for an input-derived value."""
    if val.arr is not None:
        view = make(val.arr)
        return lambda env: view
    k = val.idx
    return lambda env: make(env[k])


def chain(fns):
    """One step running the given steps (None entries skipped) in order, or None."""
    fns = [f for f in fns if f is not None]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda env: (a(env), b(env))
    return lambda env: [f(env) for f in fns]


def row_blocks(n, oh, ow, rows):
    """Output-row blocks (n0, n1, h0, h1) of about `rows` rows: parts of one image, or whole images."""
    per_img = oh * ow
    nb = max(-(-(n * per_img) // rows), 1)
    rows = -(-(n * per_img) // nb)
    if rows < per_img:  # split images into groups of output rows
        hr = max(1, rows // ow)
        hr = -(-oh // -(-oh // hr))
        return [(i, i + 1, h0, min(oh, h0 + hr)) for i in range(n) for h0 in range(0, oh, hr)]
    g = max(1, rows // per_img)
    g = -(-n // -(-n // g))
    return [(i, min(n, i + g), 0, oh) for i in range(0, n, g)]


def source(val: Val, pads, fill, ctx, pre):
    """The array a window op reads: the input itself, or a padded copy of it in a persistent buffer
    whose border holds `fill` (shared between ops of the same geometry). Appends the copy to `pre`;
    large copies are split into blocks of rows over the threads."""
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return val
    n, h, w, c = val.shape
    shape = (n, h + pt + pb, w + pl + pr, c)
    buf = ctx.persistent(("pad", shape, pt, pl, fill), shape, fill)
    interior = buf[:, pt:pt + h, pl:pl + w, :]
    k = val.idx
    if ctx.threads > 1 and n * h * w * c >= 4 * PAR_MIN_ELEMS:
        ctx.parallel = True
        blocks = row_blocks(n, h, w, max(1, n * h * w // (4 * ctx.threads)))
        dsts = [interior[n0:n1, h0:h1] for n0, n1, h0, h1 in blocks]
        par, cur = ctx.par, [None]

        def chunk(i, tid):
            n0, n1, h0, h1 = blocks[i]
            np.copyto(dsts[i], cur[0][n0:n1, h0:h1])

        def copy(env):
            cur[0] = env[k]
            par.run(chunk, len(blocks))
        pre.append(copy)
    else:
        pre.append(lambda env: np.copyto(interior, env[k]))
    return Val(shape, buf, None)
