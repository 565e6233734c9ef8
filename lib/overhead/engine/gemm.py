"""The one GEMM driver of Conv2D and Dense, and the builders of those two ops.

``gemm(...)`` computes ``A @ W`` into the op's output rows, then bias and activation in place.
The A operand says how its rows are produced: a view of the input (Dense, pointwise Conv2D) or an
im2col copy from a read-only strided view of the (padded) input (Conv2D). Three regimes by size:

- small (< PAR_MIN_FLOPS): one direct call; a single row with few outputs is a gemv on the
  transposed weights (~2x faster);
- few rows (< FEW_ROWS per thread, small late feature maps): A once, then the K dimension is split
  over the threads (one partial product each, then summed: row or column splits would repack B);
- otherwise: chunks of output rows, each doing its A copy + GEMM + fused pool + epilogue while it
  is in cache, pulled by the engine's threads (BLAS held to one thread meanwhile).

Few-row GEMMs above a million multiply-adds are cut into column blocks when NumPy's OpenBLAS runs a
SkylakeX-class core (see :func:`split_cols`).

A max-pool with pool == strides fused by the converter ("taps" = ph*pw) is computed from A rows
ordered pooling-partner-major: ph*pw-1 maxima of contiguous blocks, and the conv outputs the pool
drops are never computed.
"""
from __future__ import annotations

import functools

import numpy as np

from overhead.engine import views as V
from overhead.engine.epilogue import epilogue
from overhead.engine.threadpool import blas_controllers

FEW_ROWS = 256  # GEMMs with fewer rows per thread split K instead
FEW_ROWS_DOT = 64  # direct GEMMs with fewer rows call np.dot (~0.5 us less per call than np.matmul)
GEMV_TRANSPOSED_MAX_COLS = 16  # a one-row GEMM with at most this many outputs runs on the transposed weights
CHUNK_COL_BYTES = 1536 << 10  # A rows per chunk: about this much scratch (fits L2 with the output)
MAX_ROWS = 4096
# im2col K-major (one strided run per (kh, kw, c) tap, a transposed A for BLAS) up to this many input
# channels: row-major rows of c-float runs copy slowly. MobileNet's 3x3/2 stem on 96x96x3: copy 51 -> 27 us.
KMAJOR_MAX_C = 4
# OpenBLAS's SkylakeX-class cores (AVX-512) run sgemm with M*N*K <= SMALL_MNK on a "small matrix" kernel that
# skips packing (kernel/x86_64/sgemm_small_kernel_permit_skylakex.c); above it, a GEMM with few rows packs its
# whole B per call and runs at a third of the rate. Measured on Zen 5 at 1 thread, the SkylakeX core, median
# of rounds: 4x320 @ 320x1280 93 -> 33 us in two column blocks, 9x1152 @ 1152x192 77 -> 35 us, 16x320 @
# 320x1280 121 -> 85 us; 36 rows gain less, and 64 rows lose (more, narrower calls). The Haswell core
# (OPENBLAS_CORETYPE=Haswell, and AVX2-only CPUs) has no such kernel: the split costs it 0-20%, so it is off there.
SMALL_KERNEL_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
SMALL_MNK = 1_000_000
SPLIT_MAX_ROWS = 32
SPLIT_MIN_COLS = 32


class RowsA:
    """A operand that is a (rows, k) view of the input value (Dense, pointwise Conv2D)."""

    def __init__(self, x, rows, k):
        self.pre, self.get = [], V.viewer(x, lambda a: a.reshape(rows, k))
        # the fast cases of a direct call: a fixed buffer's view, or the input value itself when 2-D
        self.fixed = x.arr.reshape(rows, k) if x.arr is not None else None
        self.idx = x.idx if x.arr is None and x.shape == (rows, k) else None

    def whole(self, ctx, kmajor_ok=False):
        return self.get

    def start(self, env):
        return self.get(env)

    def blocks(self, ctx, per_chunk, m):
        return [(r0, min(m, r0 + per_chunk), lambda s, tid, a=r0, b=min(m, r0 + per_chunk): s[a:b])
                for r0 in range(0, m, per_chunk)]


class Im2colA:
    """A operand of a Conv2D: im2col rows (ph, pw, n, PH, PW) x (kh, kw, c) from a strided view."""

    def __init__(self, x, p, ctx):
        kh, kw, sh, sw = p["kh"], p["kw"], p["sh"], p["sw"]
        ph, pw = p.get("pool", (1, 1))
        n, h, w, c = x.shape
        oh, ow, pads, PH, PW = conv_geometry(x.shape, p)
        self.pre = []
        self.src = V.source(x, pads, 0.0, ctx, self.pre)
        s_n, s_h, s_w, s_c = (int(v) * 4 for v in V.cstrides(self.src.shape))
        self.vshape = (ph, pw, n, PH, PW, kh, kw, c)
        self.vstr = (s_h * sh, s_w * sw, s_n, s_h * sh * ph, s_w * sw * pw, s_h, s_w, s_c)
        self.k, self.mc, self.geo = kh * kw * c, ph * pw * n * PH * PW, (n, PH, PW)
        self.get = V.viewer(self.src, lambda a: V.strided(a, self.vshape, self.vstr))

    def whole(self, ctx, kmajor_ok=False):
        """`env -> A` with all rows copied into one scratch buffer."""
        ph, pw, n, PH, PW, kh, kw, c = self.vshape
        if kmajor_ok and c <= KMAJOR_MAX_C and kw < 8:  # tiny rows (RGB, grey): K-major im2col
            tshape = (kh, kw, c, ph, pw, n, PH, PW)
            col = ctx.temp(tshape)
            get = V.viewer(self.src, lambda a: V.strided(a, tshape, self.vstr[5:8] + self.vstr[:5]))
            a2 = col.reshape(self.k, self.mc).T
        else:
            col, get = ctx.temp(self.vshape), self.get
            a2 = col.reshape(self.mc, self.k)
        copyto = np.copyto

        def load(env):
            copyto(col, get(env))
            return a2
        return load

    def start(self, env):
        return self.get(env)

    def blocks(self, ctx, per_chunk, m):
        ph, pw, n, PH, PW, kh, kw, c = self.vshape
        blocks = V.row_blocks(n, PH, PW, max(1, per_chunk))
        max_rows = max((n1 - n0) * (h1 - h0) * PW for n0, n1, h0, h1 in blocks)
        cols = [ctx.temp((ph * pw * max_rows, self.k)) for _ in range(ctx.threads)]
        out = []
        for n0, n1, h0, h1 in blocks:
            rows, r0 = (n1 - n0) * (h1 - h0) * PW, (n0 * PH + h0) * PW
            a2s = [cb[: ph * pw * rows] for cb in cols]
            a8s = [a.reshape(ph, pw, n1 - n0, h1 - h0, PW, kh, kw, c) for a in a2s]

            def load(s, tid, a2s=a2s, a8s=a8s, n0=n0, n1=n1, h0=h0, h1=h1):
                np.copyto(a8s[tid], s[:, :, n0:n1, h0:h1])
                return a2s[tid]
            out.append((r0, r0 + rows, load))
        return out


@functools.cache
def blas_core() -> str:
    """The kernel core of NumPy's OpenBLAS in this process ("skylakex", "haswell", ...; "" for another BLAS).
    Read once: OpenBLAS picks it when it loads (OPENBLAS_CORETYPE overrides)."""
    for c in blas_controllers():
        if c.internal_api == "openblas":
            return str(getattr(c, "architecture", "") or "").lower()
    return ""


def split_cols(m: int, k: int, n: int) -> int | None:
    """Width of the column blocks an m x k @ k x n GEMM is cut into so that each runs on OpenBLAS's
    small-matrix kernel (see SMALL_MNK), or None to run it whole: another core, more than SPLIT_MAX_ROWS
    rows, small enough already, or blocks narrower than SPLIT_MIN_COLS. Blocks are balanced, multiples of 16."""
    if m > SPLIT_MAX_ROWS or m * k * n <= SMALL_MNK or blas_core() not in SMALL_KERNEL_CORES:
        return None
    widest = SMALL_MNK // (m * k) // 16 * 16
    if widest < SPLIT_MIN_COLS:
        return None
    per_block = -(-n // -(-n // widest))  # n over the fewest blocks that fit, then up to a multiple of 16
    return -(-per_block // 16) * 16


def matmul_into(w2, g2):
    """`f(a2)`: a2 @ w2 into g2, in column blocks (:func:`split_cols`) when that is faster here. The
    blocks' weights are contiguous copies made once; each block writes a column slice of g2 (BLAS ldc)."""
    m, n = g2.shape
    nb = split_cols(m, w2.shape[0], n)
    matmul = np.matmul
    if nb is None:
        return lambda a2: matmul(a2, w2, g2)
    parts = [(np.ascontiguousarray(w2[:, j:j + nb]), g2[:, j:j + nb]) for j in range(0, n, nb)]

    def run(a2):
        for wb, ob in parts:
            matmul(a2, wb, ob)
    return run


def conv_geometry(x_shape, p):
    """(oh, ow, pads, PH, PW): conv output size, its TF padding and the fused max-pool's output."""
    n, h, w, c = x_shape
    oh, pt, pb = V.out_size(h, p["kh"], p["sh"], p["padding"])
    ow, pl, pr = V.out_size(w, p["kw"], p["sw"], p["padding"], 1)
    ph, pw = p.get("pool", (1, 1))
    return oh, ow, ((pt, pb), (pl, pr)), oh // ph, ow // pw


def regime(mc: int, k: int, cout: int, threads: int) -> str:
    """How :func:`gemm` runs an mc x k @ k x cout GEMM (see the module docstring): "direct" below PAR_MIN_FLOPS,
    "few_rows" (K split over the threads) under FEW_ROWS rows per thread, else "row_blocks"."""
    if 2.0 * mc * k * cout < V.PAR_MIN_FLOPS:
        return "direct"
    return "few_rows" if mc < FEW_ROWS * threads else "row_blocks"


def gemm(op, ctx, A, w2, out, o2, taps=1):
    """The step computing `A @ w2` into `o2` (the output's (rows, C) view), max over `taps`
    partner blocks, then the op's bias and activation (see the module docstring)."""
    mo, cout = o2.shape
    k, mc = w2.shape[0], taps * mo
    dot = np.matmul  # not np.dot: on tall-skinny GEMMs (2304x8 @ 8x48) np.dot took 2.4x as long here
    threads = ctx.threads
    mode = regime(mc, k, cout, threads)
    if mode == "direct":
        load = A.whole(ctx, kmajor_ok=True)
        fin = epilogue(op.bias, op.act, out, ctx)
        if mc == 1:
            return V.chain(A.pre + [_one_row(A, load, w2, o2, cout, fin)])
        fixed, idx = getattr(A, "fixed", None), getattr(A, "idx", None)
        mul = np.dot if mc < FEW_ROWS_DOT else dot
        g = o2 if taps == 1 else ctx.temp((taps, mo, cout))
        g2 = g.reshape(mc, cout)
        if split_cols(mc, k, cout) is not None:  # column blocks (their own weights and output slices)
            split = matmul_into(w2, g2)
            mul = lambda a, w, o: split(a)
        if fixed is not None:
            mm = lambda env: mul(fixed, w2, g2)
        elif idx is not None:
            mm = lambda env: mul(env[idx], w2, g2)
        else:
            mm = lambda env: mul(load(env), w2, g2)
        pool = _pool_taps(g.reshape(taps, mo, cout), o2, taps)
        if fin is None and pool is None:
            return V.chain(A.pre + [mm])
        if pool is None:
            def step(env):
                mm(env)
                fin()
        else:
            def step(env):
                mm(env)
                pool()
                if fin is not None:
                    fin()
        return V.chain(A.pre + [step])
    ctx.parallel = True
    if mode == "few_rows":
        load = A.whole(ctx)
        g = o2.reshape(1, mo, cout) if taps == 1 else ctx.temp((taps, mo, cout))
        mm = _k_split(ctx, w2, g.reshape(mc, cout))
        pool = _pool_taps(g, o2, taps)
        fin = epilogue(op.bias, op.act, out, ctx)

        def core(env):
            mm(load(env))
            if pool is not None:
                pool()
            if fin is not None:
                fin()
        return V.chain(A.pre + [core])
    per_chunk, post = epilogue(op.bias, op.act, out, ctx, chunked=True)
    blocks = A.blocks(ctx, max(1, rows_per_chunk(mc, k, threads) // taps), mo)
    items = []
    if taps > 1:
        max_rows = max(r1 - r0 for r0, r1, _ in blocks)
        gs = [ctx.temp((taps * max_rows, cout)) for _ in range(threads)]
    for r0, r1, load in blocks:
        ob = o2[r0:r1]
        g2s = [ob] * threads if taps == 1 else [g[: taps * (r1 - r0)] for g in gs]
        items.append((ob, load, g2s, [g.reshape(taps, r1 - r0, cout) for g in g2s]))
    state, par = [None], ctx.par

    def chunk(i, tid):
        ob, load, g2s, g3s = items[i]
        dot(load(state[0], tid), w2, out=g2s[tid])
        if taps > 1:
            g3 = g3s[tid]
            np.maximum(g3[0], g3[1], out=ob)
            for t in range(2, taps):
                np.maximum(ob, g3[t], out=ob)
        per_chunk(ob)

    def core(env):
        state[0] = A.start(env)
        par.run(chunk, len(items))
    return V.chain(A.pre + [core, post])


def _one_row(A, load, w2, o2, cout, fin):
    """The step of a one-row GEMM: a BLAS gemv through np.dot on 1-D operands (np.matmul costs ~0.8 us
    more per call), on the transposed weights when the outputs are few (~2x faster there); one
    closure, no nested calls (each Python call is ~0.06 us of a ~5 us model)."""
    k, dot = w2.shape[0], np.dot
    ov = o2.reshape(cout)
    trans = cout <= GEMV_TRANSPOSED_MAX_COLS
    wm = np.ascontiguousarray(w2.T) if trans else w2
    fixed, idx = getattr(A, "fixed", None), getattr(A, "idx", None)
    av = fixed.reshape(k) if fixed is not None else None

    def step(env):
        if av is not None:
            a = av
        elif idx is not None:
            a = env[idx].reshape(k)
        else:
            a = load(env).reshape(k)
        if trans:
            dot(wm, a, ov)
        else:
            dot(a, wm, ov)
        if fin is not None:
            fin()
    return step


def rows_per_chunk(m, k, threads):
    """GEMM rows per chunk: enough for full BLAS speed (>= FEW_ROWS), about CHUNK_COL_BYTES of A,
    and (with threads) at least 3 chunks per thread so a descheduled core costs one chunk, not half."""
    rows = max(FEW_ROWS, min(MAX_ROWS, CHUNK_COL_BYTES // (4 * k)))
    if threads > 1:
        rows = min(rows, max(FEW_ROWS, m // (3 * threads)))
    return rows


def _k_split(ctx, w2, g2):
    """`f(a2)`: a2 @ w2 -> g2 for few rows, K split over the threads (partial products summed)."""
    threads = ctx.threads
    k = w2.shape[0]
    if threads == 1 or k < 64 * threads:
        return matmul_into(w2, g2)
    step = -(-k // threads)
    step = -(-step // 16) * 16
    spans = [(k0, min(k, k0 + step)) for k0 in range(0, k, step)]
    parts = [g2] + [ctx.temp(g2.shape) for _ in spans[1:]]
    mms = [matmul_into(w2[a:b], part) for (a, b), part in zip(spans, parts)]
    par, cur = ctx.par, [None]

    def chunk(i, tid):
        a, b = spans[i]
        mms[i](cur[0][:, a:b])

    def run(a2):
        cur[0] = a2
        par.run(chunk, len(spans))
        for pb in parts[1:]:
            np.add(g2, pb, out=g2)
    return run


def _pool_taps(g, o2, taps):
    """`f()`: max over the `taps` leading blocks of g into o2 (the fused max-pool), or None."""
    if taps == 1:
        return None

    g0, g1, rest, mx = g[0], g[1], list(g[2:]), np.maximum  # the views made once, not per call

    def pool():
        mx(g0, g1, out=o2)
        for gt in rest:
            mx(o2, gt, out=o2)
    return pool


def build_conv(op, ins, out, ctx):
    """Conv2D (optionally with a fused max-pool) as a GEMM over im2col rows; a 1x1 stride-1 unpadded
    convolution is a GEMM straight over the input's (rows, C) view."""
    x, p = ins[0], op.p
    w2 = p["w2"]
    taps = p.get("pool", (1, 1))[0] * p.get("pool", (1, 1))[1]
    n, h, w, c = x.shape
    oh, ow, pads, PH, PW = conv_geometry(x.shape, p)
    o2 = out.reshape(n * PH * PW, w2.shape[1])
    if taps == 1 and p["kh"] == p["kw"] == 1 and p["sh"] == p["sw"] == 1 and not any(pads[0] + pads[1]):
        return gemm(op, ctx, RowsA(x, n * h * w, c), w2, out, o2)
    return gemm(op, ctx, Im2colA(x, p, ctx), w2, out, o2, taps)


def build_dense(op, ins, out, ctx):
    """Dense on the last axis of any rank: one GEMM over the (rows, features) view."""
    x, w2 = ins[0], op.p["w"]
    rows = int(np.prod(x.shape[:-1]))
    return gemm(op, ctx, RowsA(x, rows, w2.shape[0]), w2, out, out.reshape(rows, w2.shape[1]))
