"""Kernels of the NumPy engine other than the GEMMs (:mod:`overhead.engine.gemm`) and depthwise
convolution (:mod:`overhead.engine.dwconv`).

Each ``build_<kind>(op, ins, out, ctx)`` turns one op into a *step* ``step(env)`` bound to buffers
preallocated for one input shape (see :mod:`overhead.engine.views`): it reads its inputs from
``env`` and writes into its own output buffer ``out`` (NHWC, C-contiguous float32), so a call
allocates nothing large. Bias and activation go through :func:`overhead.engine.epilogue.epilogue`.
Large pools and merges are split into blocks over the engine's threads (``ctx.par``).
"""
from __future__ import annotations

import numpy as np

from overhead.engine import layerops
from overhead.engine import views as V
from overhead.engine.dwconv import build_dwconv
from overhead.engine.epilogue import epilogue
from overhead.engine.gemm import build_conv, build_dense
from overhead.engine.ops import F32

_MAX, _ADD, _MUL = np.maximum, np.add, np.multiply


def _fin(op, out, ctx):
    """The op's bias + activation epilogue as a step (or None)."""
    fin = epilogue(op.bias, op.act, out, ctx)
    return None if fin is None else (lambda env: fin())


def build_scale_shift(op, ins, out, ctx):
    """BatchNormalization on its own (not folded), Rescaling, Normalization, LayerScale and arithmetic
    with constants: x * scale + shift, or x / divide (a factor of 1 or a shift of 0 is skipped: exact)."""
    k = ins[0].idx
    scale, shift, div = op.p["scale"], op.p["shift"], op.p.get("divide")
    first = [(np.divide, div)] if div is not None else []
    if not np.all(scale == 1):
        first.append((_MUL, scale))
    if not np.all(shift == 0):
        first.append((_ADD, shift))
    if not first:
        first = [(_MUL, scale)]  # a copy
    c = out.shape[-1] if out.ndim else 1
    if out.size == c and all(np.ndim(a) <= 1 or a.size in (1, c) and a.shape[-1] == a.size for _, a in first):
        # one row (an SE block's (1, 1, 1, C) gate at batch 1): 1-D operands, no broadcasting set-up
        first = [(f, a.reshape(-1) if np.size(a) == c else np.reshape(a, ())) for f, a in first]
        get, dst = V.viewer(ins[0], lambda a: a.reshape(c)), out.reshape(c)
        (f0, a0), rest = first[0], first[1:]

        def core(env):
            f0(get(env), a0, out=dst)
            for f, a in rest:
                f(dst, a, dst)
        return V.chain([core, _fin(op, out, ctx)])
    (f0, a0), rest = first[0], first[1:]

    def core(env):
        f0(env[k], a0, out)
        for f, a in rest:
            f(out, a, out)
    return V.chain([core, _fin(op, out, ctx)])


def build_act(op, ins, out, ctx):
    """A stand-alone activation layer (its producer's buffer could not take it in place)."""
    k = ins[0].idx
    return V.chain([lambda env: np.copyto(out, env[k]), _fin(op, out, ctx)])


_MERGE = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum,
          "minimum": np.minimum, "average": np.add}


def build_merge(op, ins, out, ctx):
    """Add / Subtract / Multiply / Average / Maximum / Minimum of same-shaped (broadcastable) inputs.
    Large same-shape merges (ResNet's add + ReLU) are split into flat chunks over the threads."""
    fn = _MERGE[op.p["mode"]]
    ks = [v.idx for v in ins]
    k0, k1, rest = ks[0], ks[1], ks[2:]
    scale = F32(1.0 / len(ks)) if op.p["mode"] == "average" else None
    if (ctx.threads > 1 and out.size >= V.PAR_MIN_ELEMS and all(v.arr is not None for v in ins)
            and all(v.shape == out.shape for v in ins)):
        ctx.parallel = True
        c = out.shape[-1]
        per_chunk, post = epilogue(op.bias, op.act, out, ctx, chunked=True)
        flat = [v.arr.reshape(-1, c) for v in ins]
        of = out.reshape(-1, c)
        step = -(-of.shape[0] // (4 * ctx.threads))
        blocks = [([f[a:a + step] for f in flat], of[a:a + step]) for a in range(0, of.shape[0], step)]

        def chunk(i, tid):
            srcs, ob = blocks[i]
            fn(srcs[0], srcs[1], out=ob)
            for sb in srcs[2:]:
                fn(ob, sb, out=ob)
            if scale is not None:
                _MUL(ob, scale, ob)
            per_chunk(ob)
        par = ctx.par
        return V.chain([lambda env: par.run(chunk, len(blocks)), post])
    fin = epilogue(op.bias, op.act, out, ctx)

    def core(env):
        fn(env[k0], env[k1], out=out)
        for kk in rest:
            fn(out, env[kk], out=out)
        if scale is not None:
            _MUL(out, scale, out)
        if fin is not None:
            fin()
    return core


def build_concat(op, ins, out, ctx):
    axis = op.p["axis"] % out.ndim
    parts, start = [], 0
    for v in ins:
        size = v.shape[axis]
        sl = (slice(None),) * axis + (slice(start, start + size),)
        parts.append((v.idx, out[sl]))
        start += size

    def core(env):
        for kk, dst in parts:
            np.copyto(dst, env[kk])
    return V.chain([core, _fin(op, out, ctx)])


def build_zeropad(op, ins, out, ctx):
    """ZeroPadding2D into a buffer of its own whose zero border is written once."""
    (pt, pb), (pl, pr) = op.p["pads"]
    n, h, w, c = ins[0].shape
    out[...] = 0
    interior = out[:, pt:pt + h, pl:pl + w, :]
    k = ins[0].idx
    return lambda env: np.copyto(interior, env[k])


def pool_count(h, w, ph, pw, sh, sw, pads):
    """Cells of each 'same' average-pool window that lie inside the input (TF excludes padding)."""
    (pt, pb), (pl, pr) = pads
    ones = np.zeros((h + pt + pb, w + pl + pr), np.float64)
    ones[pt:pt + h, pl:pl + w] = 1
    oh, _, _ = V.out_size(h, ph, sh, "same")
    ow, _, _ = V.out_size(w, pw, sw, "same")
    cnt = np.zeros((oh, ow))
    for i in range(ph):
        for j in range(pw):
            cnt += ones[i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
    return cnt


def _tap_ranges(size, out, k, s, before):
    """For each window offset i: the output range [lo, hi) whose input index o*s + i - before is in
    range, and that input's first index. Offset `before` covers every output ('same' geometry)."""
    res = []
    for i in range(k):
        lo = max(0, -(-(before - i) // s))
        hi = min(out, (size - 1 - i + before) // s + 1)
        res.append((i, lo, hi, lo * s + i - before) if hi > lo else None)
    return res


def build_pool(op, ins, out, ctx):
    """Max / average pooling, separably and without a padded copy: a pass down the rows into a
    temporary (window offset by offset, each on the output rows it reaches), then the same along the
    columns into the output; average then divides by the in-bounds count (TF excludes the padding).
    A bias and monotone activation moved after the pool by the converter are applied at the end.
    Large pools are split into blocks of output rows over the threads."""
    x = ins[0]
    p = op.p
    ph, pw, sh, sw, mode = p["ph"], p["pw"], p["sh"], p["sw"], p["mode"]
    n, h, w, c = x.shape
    oh, pt, pb = V.out_size(h, ph, sh, p["padding"])
    ow, pl, pr = V.out_size(w, pw, sw, p["padding"])
    fn = _MAX if mode == "max" else _ADD
    rtaps = _tap_ranges(h, oh, ph, sh, pt)
    ctaps = _tap_ranges(w, ow, pw, sw, pl)
    # the offset reaching every output goes first (it initialises the buffer)
    rfirst = next(t for t in rtaps if t is not None and t[1] == 0 and t[2] == oh)
    cfirst = next(t for t in ctaps if t is not None and t[1] == 0 and t[2] == ow)
    rtaps = [rfirst] + [t for t in rtaps if t is not None and t is not rfirst]
    ctaps = [cfirst] + [t for t in ctaps if t is not None and t is not cfirst]
    t_full = ctx.temp((n, oh, w, c)) if ph > 1 else None
    inv = None
    if mode == "avg":
        if pt or pb or pl or pr:
            inv = (1.0 / pool_count(h, w, ph, pw, sh, sw, ((pt, pb), (pl, pr)))).astype(F32)[None, :, :, None]
        else:
            inv = F32(1.0 / (ph * pw))

    def views(a, n0, n1, h0, h1):
        """The (src, dst) pairs of both passes for output rows [h0, h1) of images [n0, n1)."""
        rpass = []
        for i, lo, hi, first in rtaps:
            lo2, hi2 = max(lo, h0), min(hi, h1)
            if hi2 > lo2:
                r0 = first + (lo2 - lo) * sh
                rpass.append((a[n0:n1, r0:r0 + (hi2 - lo2 - 1) * sh + 1:sh], lo2 - h0, hi2 - h0))
        colsrc = t_full[n0:n1, h0:h1] if ph > 1 else rpass[0][0]
        ob = out[n0:n1, h0:h1]
        cpass = [(colsrc[:, :, f:f + (hi - lo - 1) * sw + 1:sw], ob[:, :, lo:hi]) for i, lo, hi, f in ctaps]
        ib = inv[:, h0:h1] if isinstance(inv, np.ndarray) else inv
        return rpass, colsrc if ph > 1 else None, cpass, ob, ib

    def run_block(rpass, tb, cpass, ob, ib):
        if tb is not None and len(rpass) == 1:
            np.copyto(tb, rpass[0][0])
        elif tb is not None:
            v1, lo, hi = rpass[1]
            if lo == 0 and hi == tb.shape[1]:  # two full offsets: no initialising copy
                fn(rpass[0][0], v1, out=tb)
            else:
                np.copyto(tb, rpass[0][0])
                fn(tb[:, lo:hi], v1, out=tb[:, lo:hi])
            for v, lo, hi in rpass[2:]:
                fn(tb[:, lo:hi], v, out=tb[:, lo:hi])
        if len(cpass) == 1:
            np.copyto(ob, cpass[0][0])
        elif cpass[1][1].shape == ob.shape:
            fn(cpass[0][0], cpass[1][0], out=ob)
        else:
            np.copyto(ob, cpass[0][0])
            fn(cpass[1][1], cpass[1][0], out=cpass[1][1])
        for v, dst in cpass[2:]:
            fn(dst, v, out=dst)
        if ib is not None:
            _MUL(ob, ib, ob)

    if ctx.threads > 1 and x.arr is not None and out.size * max(ph, pw) >= V.PAR_MIN_ELEMS:
        ctx.parallel = True
        per_chunk, post = epilogue(op.bias, op.act, out, ctx, chunked=True)
        blocks = [views(x.arr, *b) for b in V.row_blocks(n, oh, ow, max(1, n * oh * ow // (4 * ctx.threads)))]

        def chunk(i, tid):
            run_block(*blocks[i])
            per_chunk(blocks[i][3])
        par = ctx.par
        return V.chain([lambda env: par.run(chunk, len(blocks)), post])
    if x.arr is not None:
        blk = views(x.arr, 0, n, 0, oh)
        core = lambda env: run_block(*blk)
    else:
        k = x.idx
        core = lambda env: run_block(*views(env[k], 0, n, 0, oh))
    return V.chain([core, _fin(op, out, ctx)])


def build_global_pool(op, ins, out, ctx):
    x = ins[0]
    n, h, w, c = x.shape
    red = np.maximum.reduce if op.p["mode"] == "max" else np.add.reduce
    o2 = out.reshape(n, c)
    get = V.viewer(x, lambda a: a.reshape(n, h * w, c))
    inv = F32(1.0 / (h * w))
    if op.p["mode"] == "max":
        core = lambda env: red(get(env), axis=1, out=o2)
    elif n == 1:  # one image: the sum over pixels as a BLAS gemv (a reduction over the strided pixel axis
        # with C-float inner runs took 9.4 us on 24x24x16 here)
        ones, o1, dot = np.ones(h * w, F32), o2.reshape(c), np.dot
        get1 = V.viewer(x, lambda a: a.reshape(h * w, c))

        def core(env):
            dot(ones, get1(env), out=o1)
            _MUL(o1, inv, o1)
    else:
        def core(env):
            red(get(env), axis=1, out=o2)
            _MUL(o2, inv, o2)
    return V.chain([core, _fin(op, out, ctx)])



BUILDERS = {
    "conv": build_conv, "dwconv": build_dwconv, "dense": build_dense, "scale_shift": build_scale_shift,
    "act": build_act, "merge": build_merge, "concat": build_concat, "zeropad": build_zeropad,
    "pool": build_pool, "gpool": build_global_pool, **layerops.BUILDERS,
}
