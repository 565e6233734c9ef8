"""DepthwiseConv2D: one einsum over a strided view of the (padded, column-phased) input.

NumPy has no depthwise convolution, and the obvious form -- kh*kw multiply-adds of shifted NHWC
views by a per-channel weight -- runs at 1-2 GFLOP/s: broadcasting a (C,) weight over the width
cuts NumPy's inner loop to C elements (16-96 in MobileNet's early blocks), two ufunc calls per
tap and two passes over the accumulator each. Here the weights of each tap are tiled along the
output width, so a tap multiplies two contiguous runs of ``ow*C`` floats, and all taps run in one
``einsum('ivbnrx,ivbx->nrx')`` that accumulates into the output buffer (one pass per tap, no
temporary): 3-5x faster than the tap loop on 3-48 px maps, indicative, on the AVX2 Zen 3 VM.

A row of output reads padded rows ``r*sh + i`` (a plain row stride); a column reads padded columns
``x*sw + j``, which are contiguous only for ``sw == 1``. For ``sw > 1`` the padded input is kept as
``sw`` column phases (phase b holds columns b, b+sw, ...; tap ``j = v*sw + b`` reads phase b at
column ``x + v``), written by one strided copy per phase each call into a persistent buffer whose
zero border is written once. Taps past the kernel (``v*sw + b >= kw``, when sw does not divide kw)
get zero weights: exact for finite inputs (an inf read there would give nan where TF gives inf).

A strided layer with few output columns (``ow <= DIRECT_MAX_OW``, the late blocks) skips the phases: one
einsum reads a strided view of the padded input with the channels innermost (:func:`build_dwconv_direct`).
Its inner loop is only C floats long, but it makes one padded copy and one einsum call, where the phases
make ``sw`` copies and two einsums plus an add. Measured on Zen 5 at 1 thread: the direct einsum + copy
took 10.8 us on 12x12x96 stride 2 and 5.0 us on 6x6x192, where a per-layer profile gave the whole phase step
(with its epilogue) 17.7 and 13.6 us; on 24x24x144 (ow 12) the phases' copies + einsums win, 38.7 against
48.2 us. Whole models, interleaved A/B: EfficientNetB0 0.957x the time, MobileNetV3Small 0.974x, MobileNetV2
0.98-1.0x.

A depth multiplier > 1 (output channel c*mult + m, like TensorFlow) keeps the tap loop over
broadcast views (:func:`build_dwconv_taps`): rare (grouped convolutions) and not on the hot path.
"""
from __future__ import annotations

import numpy as np

from overhead.engine import views as V
from overhead.engine.dwdense import build_dwconv_dense, use_dense
from overhead.engine.epilogue import epilogue
from overhead.engine.ops import F32, Val

try:  # the C function np.einsum calls when optimize=False: skips ~1 us of Python per call
    from numpy._core.multiarray import c_einsum as _einsum
except ImportError:  # NumPy 1.x
    try:
        from numpy.core.multiarray import c_einsum as _einsum
    except ImportError:
        _einsum = np.einsum

_MUL, _ADD = np.multiply, np.add
SUBSCRIPTS = "ivbnrx,ivbx->nrx"
DIRECT_MAX_OW = 6


def _fin(op, out, ctx):
    fin = epilogue(op.bias, op.act, out, ctx)
    return None if fin is None else (lambda env: fin())


def phase_geometry(shape, p):
    """(oh, ow, pads, hp, wq, taps_per_phase): output size, TF padding, padded height, phase width
    and column taps per phase for input `shape` (n, h, w, c) and the op's parameters `p`."""
    n, h, w, c = shape
    kh, kw, sh, sw = p["kh"], p["kw"], p["sh"], p["sw"]
    oh, pt, pb = V.out_size(h, kh, sh, p["padding"])
    ow, pl, pr = V.out_size(w, kw, sw, p["padding"], 1)
    vt = -(-kw // sw)
    wq = max(-(-(w + pl + pr) // sw), ow + vt - 1)
    return oh, ow, ((pt, pb), (pl, pr)), h + pt + pb, wq, vt


def tiled_weights(wt, sw, vt, ow):
    """(kh, vt, sw, ow*C) float32: tap (i, v*sw + b)'s weights repeated ow times (zero past kw)."""
    kh, kw, c = wt.shape[:3]
    res = np.zeros((kh, vt, sw, ow * c), F32)
    for i in range(kh):
        for v in range(vt):
            for b in range(sw):
                if v * sw + b < kw:
                    res[i, v, b] = np.tile(wt[i, v * sw + b, :, 0], ow)
    return res


def _phases(x: Val, geo, sw, ctx, pre):
    """The source the taps read: the input itself (stride 1, no padding) or persistent column-phase
    buffers (sw, n, hp, wq, c) refreshed by one strided copy per phase (appended to `pre`)."""
    n, h, w, c = x.shape
    oh, ow, ((pt, pb), (pl, pr)), hp, wq, vt = geo
    if sw == 1 and not (pt or pb or pl or pr):
        return x, (0, h * w * c, w * c)
    shape = (sw, n, hp, wq, c)
    buf = ctx.persistent(("dwphase", x.shape, pt, pb, pl, pr, sw, wq), shape, 0.0)
    pairs = []
    for b in range(sw):
        x0 = (b - pl) % sw  # first input column landing in phase b
        cnt = len(range(x0, w, sw))
        if cnt:
            q0 = (x0 + pl) // sw
            pairs.append((buf[b, :, pt:pt + h, q0:q0 + cnt, :], (slice(None), slice(None), slice(x0, None, sw))))
    k, copyto = x.idx, np.copyto
    if len(pairs) == 1:
        (dst, sl), = pairs
        pre.append(lambda env: copyto(dst, env[k][sl]))
    else:
        def copy(env):
            a = env[k]
            for dst, sl in pairs:
                copyto(dst, a[sl])
        pre.append(copy)
    return Val(shape, buf, None), (n * hp * wq * c, hp * wq * c, wq * c)


def build_dwconv(op, ins, out, ctx):
    """DepthwiseConv2D into `out` (see the module docstring); a multiplier > 1 takes the tap loop."""
    x, p = ins[0], op.p
    wt = p["w"]  # (kh, kw, C, mult)
    if wt.shape[3] != 1:
        return build_dwconv_taps(op, ins, out, ctx)
    kh, sh, sw = p["kh"], p["sh"], p["sw"]
    n, h, w, c = x.shape
    geo = phase_geometry(x.shape, p)
    oh, ow, _, _, _, vt = geo
    par_split = ctx.threads > 1 and out.size * kh * vt * sw >= V.PAR_MIN_ELEMS
    if not par_split and use_dense(x.shape, p, 1):  # tiny maps: one dense product, no padding
        return build_dwconv_dense(op, ins, out, ctx)
    if not par_split and sw > 1 and ow <= DIRECT_MAX_OW:
        return build_dwconv_direct(op, ins, out, ctx)
    pre: list = []
    src, (s_b, s_n, s_row) = _phases(x, geo, sw, ctx, pre)
    vshape = (kh, vt, sw, n, oh, ow * c)
    vstr = tuple(4 * s for s in (s_row, c, s_b, s_n, sh * s_row, 1))
    wq = tiled_weights(wt, sw, vt, ow)
    if sw == 1 and n == 1 and not par_split:  # fewer axes: less einsum set-up
        vshape, vstr, wq = vshape[:2] + vshape[4:], vstr[:2] + vstr[4:], wq[:, :, 0]
        subs, o3 = "ijrx,ijx->rx", out.reshape(oh, ow * c)
    else:
        subs, o3 = SUBSCRIPTS, out.reshape(n, oh, ow * c)
    get = V.viewer(src, lambda a: V.strided(a, vshape, vstr))
    ein = _einsum
    if par_split:
        ctx.parallel = True
        per_chunk, post = epilogue(op.bias, op.act, out, ctx, chunked=True)
        blocks = V.row_blocks(n, oh, ow, max(1, n * oh * ow // (4 * ctx.threads)))
        obs = [(o3[n0:n1, h0:h1], out[n0:n1, h0:h1]) for n0, n1, h0, h1 in blocks]
        par, cur = ctx.par, [None]

        def chunk(i, tid):
            n0, n1, h0, h1 = blocks[i]
            ob3, ob4 = obs[i]
            ein(SUBSCRIPTS, cur[0][:, :, :, n0:n1, h0:h1], wq, out=ob3)
            per_chunk(ob4)

        def core_par(env):
            cur[0] = get(env)
            par.run(chunk, len(blocks))
        return V.chain(pre + [core_par, post])
    bf = p["kw"] - (vt - 1) * sw  # phases b < bf use all vt column taps, the others vt - 1
    if sw > 1 and bf < sw and src.arr is not None:
        return V.chain(pre + [_split_phases(src.arr, vshape, vstr, wq, bf, vt, o3, ctx), _fin(op, out, ctx)])
    return V.chain(pre + [lambda env: ein(subs, get(env), wq, out=o3), _fin(op, out, ctx)])


def build_dwconv_direct(op, ins, out, ctx):
    """A strided DepthwiseConv2D as one einsum over a (kh, kw, n, oh, ow, c) view of the padded input."""
    x, p = ins[0], op.p
    kh, kw, sh, sw = p["kh"], p["kw"], p["sh"], p["sw"]
    n, h, w, c = x.shape
    oh, pt, pb = V.out_size(h, kh, sh, p["padding"])
    ow, pl, pr = V.out_size(w, kw, sw, p["padding"], 1)
    pre: list = []
    src = V.source(x, ((pt, pb), (pl, pr)), 0.0, ctx, pre)
    s_n, s_h, s_w, s_c = (4 * s for s in V.cstrides(src.shape))
    vshape, vstr = (kh, kw, n, oh, ow, c), (s_h, s_w, s_n, sh * s_h, sw * s_w, s_c)
    get = V.viewer(src, lambda a: V.strided(a, vshape, vstr))
    wt = np.ascontiguousarray(p["w"][:, :, :, 0])
    ein = _einsum
    return V.chain(pre + [lambda env: ein("ijnrxc,ijc->nrxc", get(env), wt, out=out), _fin(op, out, ctx)])


def _split_phases(buf, vshape, vstr, wq, bf, vt, o3, ctx):
    """The step of a strided depthwise convolution without its zero-weight taps (sw not dividing kw:
    a 3x3 stride-2 kernel has 9 of 12 slots, 5x5 15 of 18... per row): one einsum over the phases
    with every column tap into the output, one over the others into a temporary, then their sum."""
    view = V.strided(buf, vshape, vstr)
    va, wa = view[:, :, :bf], wq[:, :, :bf]
    vb, wb = view[:, : vt - 1, bf:], wq[:, : vt - 1, bf:]
    ein, add = _einsum, _ADD
    if vt == 1:  # a 1-wide kernel: the other phases hold no taps at all
        return lambda env: ein(SUBSCRIPTS, va, wa, out=o3)
    tmp = ctx.temp(o3.shape)

    def step(env):
        ein(SUBSCRIPTS, va, wa, out=o3)
        ein(SUBSCRIPTS, vb, wb, out=tmp)
        add(o3, tmp, o3)
    return step


def build_dwconv_taps(op, ins, out, ctx):
    """DepthwiseConv2D as kh*kw shifted multiply-accumulates over strided views (channel c, multiplier
    m lands on output channel c*mult + m, like TensorFlow)."""
    x = ins[0]
    p = op.p
    kh, kw, sh, sw, wt = p["kh"], p["kw"], p["sh"], p["sw"], p["w"]  # wt: (kh, kw, C, mult)
    n, h, w, c = x.shape
    mult = wt.shape[3]
    oh, pt, pb = V.out_size(h, kh, sh, p["padding"])
    ow, pl, pr = V.out_size(w, kw, sw, p["padding"], 1)
    pre: list = []
    src = V.source(x, ((pt, pb), (pl, pr)), 0.0, ctx, pre)
    acc = out.reshape(n, oh, ow, c, mult)
    tmp = ctx.temp(acc.shape)
    taps = []
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(i, i + (oh - 1) * sh + 1, sh), slice(j, j + (ow - 1) * sw + 1, sw),
                  slice(None), None)
            taps.append((V.viewer(src, lambda a, sl=sl: a[sl]), np.ascontiguousarray(wt[i, j])))

    def core(env):
        g, wij = taps[0]
        _MUL(g(env), wij, out=acc)
        for g, wij in taps[1:]:
            _MUL(g(env), wij, out=tmp)
            _ADD(acc, tmp, acc)
    return V.chain(pre + [core, _fin(op, out, ctx)])
