"""The NumPy floor of a model: its arithmetic alone, as NumPy's fastest primitives compute it.

``primitive_floor(net, x)`` returns a function that runs, for every Conv2D, Dense and DepthwiseConv2D op of
the engine's plan for `x`, only the op's multiply-adds on operands already laid out for them, then the op's
activation function (the engine's own, in place: a fused runtime applies it in registers, NumPy must make
its passes over the output):

- Conv2D / Dense: the engine's own GEMM call (``np.dot`` for few rows, ``np.matmul`` in column blocks where
  they are faster, in blocks of rows each activated while in cache where the engine does that) of a contiguous
  (rows, K) operand by the op's (K, N) weights into the op's own output buffer -- no im2col copy, no padding,
  no bias;
- DepthwiseConv2D: one einsum over a stride-1 view of a padded buffer the size of the op's output window,
  into the op's output buffer -- the layer's multiply-adds in the form that ran fastest here (one pass per
  tap over contiguous ``ow*C`` runs), with no phase or padding copy, whatever the layer's stride.

Everything else a model needs (im2col and padding copies, biases, residual adds, pooling, normalisation,
stand-alone activation layers, the Python steps between ops) is left out, so an engine computing these ops
exactly with NumPy cannot be faster than this function on this machine (for depthwise layers we found no NumPy
form faster than the einsum: ufunc multiply-adds per tap, multiply + add.reduce and row blocks were all slower, see
:mod:`overhead.engine.dwconv`): the time it takes, against LiteRT's in the same rounds, says whether a target
ratio is reachable at all. The operands are the plan's buffers after a real call ``net(x)``, holding real
activations (the op's own input, or a later op's that shares its buffer), so no data-dependent speed (denormals)
is dodged. Measured at one thread:
NumPy's einsum runs at its build's baseline SIMD, a BLAS call at its own threads.
"""
from __future__ import annotations

import numpy as np

from overhead.engine.dwconv import _einsum
from overhead.engine.dwdense import dense_matrix, use_dense
from overhead.engine.epilogue import activation
from overhead.engine.gemm import FEW_ROWS_DOT, GEMV_TRANSPOSED_MAX_COLS, matmul_into, regime, rows_per_chunk, split_cols


def _gemm_step(w2, a, out):
    """The engine's fastest form of `a` (rows, K) @ `w2` into `out` (rows, N): for one row a BLAS gemv
    (on the transposed weights when the outputs are few); else np.dot below FEW_ROWS_DOT rows and a matmul
    above, in column blocks where :func:`overhead.engine.gemm.split_cols` says that is faster on this BLAS core."""
    if a.shape[0] == 1:
        a1, o1, dot = a.reshape(-1), out.reshape(-1), np.dot
        if w2.shape[1] <= GEMV_TRANSPOSED_MAX_COLS:
            wt = np.ascontiguousarray(w2.T)
            return lambda: dot(wt, a1, o1)
        return lambda: dot(a1, w2, o1)
    if a.shape[0] < FEW_ROWS_DOT and split_cols(a.shape[0], w2.shape[0], w2.shape[1]) is None:
        dot = np.dot  # the engine's call for few rows: ~0.5 us less than np.matmul
        return lambda: dot(a, w2, out)
    mul = matmul_into(w2, out)
    return lambda: mul(a)


def _operand(plan, val, shape, rng):
    """A contiguous (rows, K) operand: the producing op's buffer when it has exactly that layout (a 1x1
    convolution or Dense reading it), otherwise a copy of random data of that shape."""
    buf = plan.template[val] if val < len(plan.template) else None
    if isinstance(buf, np.ndarray) and buf.size == shape[0] * shape[1] and buf.flags.c_contiguous:
        return buf.reshape(shape)
    return rng.random(shape, dtype=np.float32)


def _depthwise_step(op, in_shape, out, rng):
    """The op's kh*kw*oh*ow*C multiply-adds as one stride-1 einsum over a zero-padded (oh+kh-1, ow+kw-1, C)
    buffer, into the op's (n, oh, ow, C) output buffer; on a map with no more pixels than kernel taps, the
    engine's dense product (:mod:`overhead.engine.dwdense`), which skips the taps on the zero border."""
    n, oh, ow, c = out.shape
    kh, kw = op.p["kh"], op.p["kw"]
    if use_dense(in_shape, op.p, op.p["w"].shape[3]):
        m = dense_matrix(op.p["w"], in_shape, op.p)
        xin = rng.random((n, in_shape[1] * in_shape[2], in_shape[3]), dtype=np.float32)
        o3, ein = out.reshape(n, m.shape[0], c), _einsum
        return (lambda: ein("pqc,nqc->npc", m, xin, out=o3)), n * m.size
    src = np.zeros((n, oh + kh - 1, ow + kw - 1, c), np.float32)
    src[:, kh // 2:kh // 2 + oh, kw // 2:kw // 2 + ow] = out  # the op's own activations as the data
    s_n, s_h, s_w, _ = src.strides
    view = np.lib.stride_tricks.as_strided(src, (kh, kw, n, oh, ow * c), (s_h, s_w, s_n, s_h, 4), writeable=False)
    w = op.p["w"].reshape(kh, kw, c)  # a multiplier > 1 has C = channels * multiplier outputs
    wt = np.ascontiguousarray(np.tile(w, (1, 1, ow)))
    o3 = out.reshape(n, oh, ow * c)
    ein = _einsum
    return (lambda: ein("ijnrx,ijx->nrx", view, wt, out=o3)), kh * kw * out.size


class _Scratch:
    """The activations' temporaries, the same few blocks for every op (as the engine's buffers reuse theirs), so
    they stay in cache as the engine's do: `for_op()` before each activation is built, then ``temp(shape)``."""

    def __init__(self, size):
        self.size, self.blocks, self.used = size, [], 0

    def for_op(self):
        self.used = 0
        return self

    def temp(self, shape):
        if self.used == len(self.blocks):
            self.blocks.append(np.empty(self.size, np.float32))
        self.used += 1
        return self.blocks[self.used - 1][: int(np.prod(shape))].reshape(shape)


def _activated(step, op, out, scratch):
    """`step` followed by the op's activation in place on `out` (a buffer `step` rewrites), or `step` alone
    for a linear op. Each call activates freshly computed values, so repeated calls see the same data."""
    act, _ = activation(op.act, scratch.for_op(), out.shape)
    if act is None:
        return step

    def run():
        step()
        act(out)
    return run


def _chunked_gemm(w2, a, out, op, scratch):
    """A GEMM the engine runs in blocks of rows (:func:`overhead.engine.gemm.regime` "row_blocks"), run the same way:
    np.matmul per block, each block's activation while it is in cache when the activation allows it (else once
    after), so the floor does not pay cache misses the engine avoids."""
    act, local = activation(op.act, scratch.for_op(), out.shape)
    per_block, after = (act, None) if local else (None, act)
    per = rows_per_chunk(a.shape[0], a.shape[1], 1)
    blocks = [(a[r:r + per], out[r:r + per]) for r in range(0, a.shape[0], per)]
    mm = np.matmul

    def run():
        for ab, ob in blocks:
            mm(ab, w2, ob)
            if per_block is not None:
                per_block(ob)
        if after is not None:
            after(out)
    return run


def _gemm_op(op, w2, a, out, scratch):
    """The floor step of a Conv2D or Dense: (rows, K) `a` @ `w2` into the (rows, N) `out`, activated."""
    if regime(a.shape[0], *w2.shape, threads=1) == "row_blocks":
        return _chunked_gemm(w2, a, out, op, scratch)
    return _activated(_gemm_step(w2, a, out), op, out, scratch)


def primitive_steps(net, x) -> list[tuple[str, object, int]]:
    """(op name, step, multiply-adds) for every Conv2D, Dense and DepthwiseConv2D op of `net`'s plan for `x`
    (see the module)."""
    net(x)  # compiles the plan and leaves a real call's activations in its buffers
    plan = net.plan(x.shape[0])
    rng = np.random.default_rng(0)
    scratch = _Scratch(max(plan.template[op.out].size for op in plan.ops))
    steps = []
    for op in plan.ops:
        out = plan.template[op.out]
        if op.kind == "conv":
            ph, pw = op.p.get("pool", (1, 1))
            w2 = op.p["w2"]
            rows = out.size // w2.shape[1] * ph * pw
            a = _operand(plan, op.ins[0], (rows, w2.shape[0]), rng)
            g = out.reshape(rows, w2.shape[1]) if ph * pw == 1 else np.empty((rows, w2.shape[1]), np.float32)
            if ph * pw == 1:
                step = _gemm_op(op, w2, a, g, scratch)
            else:  # the activation runs on the pooled output's size (here in the GEMM's own buffer)
                step = _activated(_gemm_step(w2, a, g), op, g.reshape(-1)[:out.size].reshape(out.shape), scratch)
            steps.append((op.name, step, rows * w2.size))
        elif op.kind == "dense":
            w2 = op.p["w"]
            rows = out.size // w2.shape[1]
            a = _operand(plan, op.ins[0], (rows, w2.shape[0]), rng)
            steps.append((op.name, _gemm_op(op, w2, a, out.reshape(rows, w2.shape[1]), scratch), rows * w2.size))
        elif op.kind == "dwconv":
            step, macs = _depthwise_step(op, plan.shapes[op.ins[0]], out, rng)
            steps.append((op.name, _activated(step, op, out, scratch), macs))
    return steps


def primitive_floor(net, x):
    """`f()`: every primitive step of `net` on `x` once, in the plan's order (None when it has none)."""
    fns = [f for _, f, _ in primitive_steps(net, x)]
    if not fns:
        return None

    def run():
        for f in fns:
            f()
    return run
