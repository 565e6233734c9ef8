"""Kernels of the NumPy inference engine (see :mod:`overhead.numpy_cnn`).

Each ``build_<kind>(op, ins, out, ctx)`` turns one op of a converted model into a *step*: a closure
``step(env)`` bound to buffers preallocated for one input shape. ``env`` is the list of the plan's
values; a step reads its inputs from ``env`` and writes into its own output buffer ``out`` (NHWC,
C-contiguous float32), so a call allocates nothing large. Layouts are Keras' own (NHWC, HWIO), so
weights load unchanged; a convolution is a GEMM over an im2col copy made from a read-only strided
view; bias and activation are applied in place with ``out=``.

Threads: a plan is compiled for a thread count. Large GEMMs (and large pools, adds, padded copies)
are cut into chunks - rows of the output, each doing its im2col + GEMM + epilogue while the chunk
is in cache, or, with few rows, slices of K - that the caller and worker threads pull from a shared
counter (:class:`Parallel`), with BLAS itself single-threaded. Measured on the 2-core, shared
machine this study runs on, OpenBLAS' own 2-thread split fell to 1-30 GFLOP/s whenever the other
core was busy, while dynamic chunks degrade gracefully; at one thread the chunks still keep the
im2col scratch in L2.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
import weakref

import numpy as np

F32 = np.float32
_MAX = np.maximum
_ADD = np.add
_MUL = np.multiply


def sigmoid_inplace(v):
    """sigmoid(v) in place as 0.5 tanh(v/2) + 0.5: no overflow warning, within an ulp of tf.sigmoid."""
    _MUL(v, 0.5, out=v)
    np.tanh(v, out=v)
    _MUL(v, 0.5, out=v)
    _ADD(v, 0.5, out=v)
    return v


class Val:
    """A value of the plan for one input shape: `arr` is its fixed buffer (or a view of one), None
    when it is derived from the model input and so only known at call time (then read env[idx])."""
    __slots__ = ("shape", "arr", "idx")

    def __init__(self, shape, arr, idx):
        self.shape, self.arr, self.idx = tuple(shape), arr, idx


def out_size(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """Output length and (before, after) padding of one spatial axis, TensorFlow's rule: 'same'
    pads ceil(size/s) outputs, the odd cell going to the bottom/right."""
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def _strided(a, shape, strides):
    """A read-only strided view of the C-contiguous array `a` (faster than as_strided)."""
    try:
        return np.ndarray(shape, F32, a, 0, strides)
    except TypeError:  # no buffer protocol (should not happen for our contiguous arrays)
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)


def viewer(val: Val, make):
    """`env -> make(array)`: computed once for a fixed buffer, per call for an input-derived value."""
    if val.arr is not None:
        view = make(val.arr)
        return lambda env: view
    k = val.idx
    return lambda env: make(env[k])


def source(val: Val, pads, fill, ctx, pre):
    """The array a window op reads: the input itself, or a padded copy of it in a persistent buffer
    whose border holds `fill` (shared between ops of the same geometry). Appends the copy to `pre`."""
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return val
    n, h, w, c = val.shape
    shape = (n, h + pt + pb, w + pl + pr, c)
    buf = ctx.persistent(("pad", shape, pt, pl, fill), shape, fill)
    interior = buf[:, pt:pt + h, pl:pl + w, :]
    k = val.idx
    size = n * h * w * c
    if ctx.threads > 1 and size >= 4 * PAR_MIN_ELEMS:  # big copies: blocks of rows over the threads
        ctx.parallel = True
        blocks = _row_blocks(n, h, w, max(1, n * h * w // (4 * ctx.threads)))
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


def _chain(fns):
    fns = [f for f in fns if f is not None]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda env: (a(env), b(env))
    return lambda env: [f(env) for f in fns]


# --------------------------------------------------------------------------- activations

def is_monotone(spec) -> bool:
    """Non-decreasing activations commute with max-pooling (and with adding a per-channel bias)."""
    if spec is None or spec[0] in ("linear", "sigmoid", "tanh"):
        return True
    if spec[0] == "relu":
        _, slope, max_value, threshold = spec
        return threshold == 0 and slope >= 0 and (max_value is None or max_value >= 0)
    return False


def activation(spec, buf: np.ndarray, ctx):
    """In-place activation on the fixed buffer `buf`, as `f(env)`; None for linear."""
    if spec is None or spec[0] == "linear":
        return None
    kind = spec[0]
    if kind == "relu":
        return _relu(spec, buf, ctx)
    if kind == "tanh":
        return lambda env: np.tanh(buf, out=buf)
    if kind == "sigmoid":
        return lambda env: sigmoid_inplace(buf)
    if kind == "silu":
        t = ctx.temp(buf.shape)

        def silu(env):
            _MUL(buf, 0.5, out=t)
            np.tanh(t, out=t)
            _MUL(t, 0.5, out=t)
            _ADD(t, 0.5, out=t)
            _MUL(buf, t, out=buf)
        return silu
    if kind == "elu":
        alpha = F32(spec[1])
        t = ctx.temp(buf.shape)

        def elu(env):
            np.minimum(buf, 0, out=t)
            np.expm1(t, out=t)
            _MUL(t, alpha, out=t)
            _MAX(buf, 0, out=buf)
            _ADD(buf, t, out=buf)
        return elu
    if kind == "softmax":
        axis = spec[1]
        red = np.empty(np.max(buf, axis=axis, keepdims=True).shape, F32)
        mx, sm = np.maximum.reduce, np.add.reduce

        def softmax(env):
            mx(buf, axis=axis, keepdims=True, out=red)
            np.subtract(buf, red, out=buf)
            np.exp(buf, out=buf)
            sm(buf, axis=axis, keepdims=True, out=red)
            np.divide(buf, red, out=buf)
        return softmax
    raise AssertionError(f"unknown activation {spec!r}")  # the converter only emits the above


def _relu(spec, buf, ctx):
    """Keras' relu(x, negative_slope, max_value, threshold), same case split as keras.activations."""
    _, slope, max_value, threshold = spec
    if slope == 0 and threshold == 0:
        if max_value is None:
            return lambda env: _MAX(buf, 0, out=buf)
        lo, hi = F32(0), F32(max_value)
        return lambda env: np.clip(buf, lo, hi, out=buf)
    if max_value is None and threshold == 0:  # leaky relu: x if x > 0 else slope * x
        t = ctx.temp(buf.shape)
        a = F32(slope)
        if 0 <= slope <= 1:
            def leaky(env):
                _MUL(buf, a, out=t)
                _MAX(buf, t, out=buf)
            return leaky

        def leaky_any(env):
            _MUL(buf, a, out=t)
            np.copyto(buf, t, where=buf <= 0)
        return leaky_any
    thr = F32(threshold)

    def relu_general(env):  # rare: temporaries allowed
        x = buf.copy()
        if threshold != 0:
            y = np.where(x > thr, x, F32(0))
        elif max_value == 6:
            y = np.clip(x, F32(0), F32(6))
        else:
            y = np.maximum(x, F32(0))
        if max_value is not None and not (threshold == 0 and max_value == 6):
            y = np.clip(y, F32(0), F32(max_value))
        if slope != 0:
            neg = np.maximum(thr - x, F32(0)) if threshold != 0 else np.maximum(-x, F32(0))
            y = y - F32(slope) * neg
        np.copyto(buf, y)
    return relu_general


def epilogue(bias, act, out: np.ndarray, ctx):
    """Bias add then activation, in place on `out` (the last axis carries the bias)."""
    add = None
    if bias is not None:
        b = bias
        add = lambda env: _ADD(out, b, out=out)
    return _chain([add, activation(act, out, ctx)])


# --------------------------------------------------------------------------- parallel chunks

class Parallel:
    """Runs ``fn(i, tid)`` for i in range(n) on ``threads`` threads: the caller plus daemon workers
    pulling indices from a shared counter. Dynamic load balancing means a descheduled core (this is
    a shared machine) delays the step by at most one chunk, where a BLAS split in equal halves waits
    for its slowest half. NumPy's copy, ufunc and matmul loops release the GIL, so chunks overlap;
    BLAS runs single-threaded inside chunks (the caller sets that)."""

    def __init__(self):
        self.threads = 1
        self._workers: list = []
        self._native: list = []  # OS thread ids of the workers (for their CPU affinity)
        self._task = None
        self._stop = False
        self._cpu = None  # the caller's CPU the workers were last kept off
        _ALL_PARALLEL.add(self)

    def _after_fork(self):
        self._workers, self._native, self._task, self._cpu = [], [], None, None  # no workers in the child

    def _place(self):
        """Keep the workers off the CPU the caller runs on (see PIN_THREADS)."""
        cpu = _getcpu()
        if cpu == self._cpu or cpu < 0:
            return
        others = [c for c in _ALLOWED if c != cpu]
        if not others:
            return
        self._cpu = cpu
        for tid in list(self._native):
            try:
                os.sched_setaffinity(tid, others)
            except OSError:
                pass

    def run(self, fn, n):
        t = min(self.threads, n)
        if t <= 1:
            for i in range(n):
                fn(i, 0)
            return
        while len(self._workers) < t - 1:
            self._start(len(self._workers) + 1)
        if PIN_THREADS:
            self._place()
        task = _Task(fn, n, t)
        self._task = task
        for ev, _ in self._workers[: t - 1]:
            ev.set()
        it = task.it
        try:
            while True:
                i = next(it)
                if i >= n:
                    break
                fn(i, 0)
        finally:
            with task.lock:
                task.closed = True
            while task.active:  # a worker is finishing a chunk: poll (GIL released), do not sleep
                _pause()
        if task.error is not None:
            raise task.error

    def _start(self, tid):
        ev = threading.Event()
        th = threading.Thread(target=self._loop, args=(ev, tid), name=f"numpy_cnn-{tid}", daemon=True)
        self._workers.append((ev, th))
        th.start()

    def _loop(self, ev, tid):
        self._native.append(threading.get_native_id())
        last, spin_until, clock = None, 0.0, time.perf_counter
        while True:
            task = self._task
            if self._stop:
                return
            if task is None or task is last or tid >= task.threads:
                if clock() < spin_until:  # recently busy: poll for the next region
                    _pause()
                    continue
                ev.wait()
                ev.clear()
                continue
            last = task
            with task.lock:
                if task.closed:
                    continue
                task.active += 1
            try:
                it, n, fn = task.it, task.n, task.fn
                while True:
                    i = next(it)
                    if i >= n:
                        break
                    fn(i, tid)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                task.error = e
            finally:
                with task.lock:
                    task.active -= 1
            spin_until = clock() + SPIN_S

    def stop(self):
        self._stop = True
        for ev, _ in self._workers:
            ev.set()


# Keep the worker threads off the caller's CPU: before each parallel region the caller's CPU is
# read (sched_getcpu, ~0.1 us) and, when it changed, the workers' affinity is set to the other
# allowed CPUs (the caller itself is never pinned). Measured: a worker woken by the caller was
# often placed on the caller's vCPU and the two time-shared it until the scheduler migrated one -
# with 1-3 ms parallel regions that often never happened, so a 2-thread step ran at 1-thread speed
# (a 3136x576x64 GEMM split in two: 2.0-2.2 ms median unpinned, 1.06-1.15 ms kept apart, 1.25 ms
# for the whole GEMM on one thread). Pinning the caller too was worse under load (it cannot leave
# a CPU another process is using). OVERHEAD_NUMPY_PIN=0 turns it off.
def _make_getcpu():
    try:
        import ctypes
        fn = ctypes.CDLL(None).sched_getcpu
        fn.restype = ctypes.c_int
        fn()
        return fn
    except (OSError, AttributeError, TypeError):
        return None


_getcpu = _make_getcpu()
try:
    _ALLOWED = sorted(os.sched_getaffinity(0))
except (AttributeError, OSError):
    _ALLOWED = []
PIN_THREADS = (os.environ.get("OVERHEAD_NUMPY_PIN", "1") != "0" and _getcpu is not None
               and len(_ALLOWED) > 1)


_ALL_PARALLEL: "weakref.WeakSet[Parallel]" = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: [p._after_fork() for p in list(_ALL_PARALLEL)])


class _Task:
    __slots__ = ("fn", "n", "threads", "it", "lock", "active", "closed", "error")

    def __init__(self, fn, n, threads):
        self.fn, self.n, self.threads = fn, n, threads
        self.it = itertools.count()
        self.lock = threading.Lock()
        self.active, self.closed, self.error = 0, False, None


# Waking a sleeping thread on this VM costs ~70-90 us (measured: worker's first chunk started
# 67-90 us after the caller's Event.set), about a tenth of a typical parallel step. So, like
# OpenMP and OpenBLAS, threads poll before sleeping: a worker polls for SPIN_S after its last
# chunk (back-to-back steps and calls find it awake), the caller polls while a worker finishes.
# Polling sleeps ~20 us per round in libc's usleep through ctypes, which releases the GIL.
SPIN_S = float(os.environ.get("OVERHEAD_NUMPY_SPIN_S", "0.002"))


def _make_pause():
    try:
        import ctypes
        usleep = ctypes.CDLL(None).usleep
        usleep.argtypes = [ctypes.c_uint]
        return lambda: usleep(20)
    except (OSError, AttributeError, TypeError):
        return lambda: time.sleep(0)


_pause = _make_pause()


# GEMM steps larger than this are cut into chunks run through Parallel; smaller ones are one direct
# call. Measured: a parallel region costs ~0.1 ms here (thread wake-up, the last chunk's wait), so
# ResNet's 12.8 MFLOP 1x1 shortcut convolutions ran slower on 2 threads (0.14-0.20 ms -> 0.23-0.26).
PAR_MIN_FLOPS = 16e6
CHUNK_COL_BYTES = 1536 << 10  # im2col rows per chunk: about this much scratch (fits L2 with the output)
MAX_ROWS = 4096


def chunk_act(spec):
    """`f(view)` applying an element-wise activation in place on a chunk, or None if not local."""
    if spec is None:
        return lambda v: None
    if spec[0] == "relu":
        _, slope, max_value, threshold = spec
        if slope == 0 and threshold == 0:
            if max_value is None:
                return lambda v: _MAX(v, 0, out=v)
            lo, hi = F32(0), F32(max_value)
            return lambda v: np.clip(v, lo, hi, out=v)
        return None
    if spec[0] == "tanh":
        return lambda v: np.tanh(v, out=v)
    if spec[0] == "sigmoid":
        return sigmoid_inplace
    return None


def _row_blocks(n, oh, ow, rows):
    """Output-row blocks (n0, n1, h0, h1) of about `rows` rows: parts of one image, or whole images."""
    per_img = oh * ow
    total = n * per_img
    nb = max(-(-total // rows), 1)
    rows = -(-total // nb)
    if rows < per_img:  # split images into groups of output rows
        hr = max(1, rows // ow)
        per = -(-oh // hr)
        hr = -(-oh // per)
        return [(i, i + 1, h0, min(oh, h0 + hr)) for i in range(n) for h0 in range(0, oh, hr)]
    g = max(1, rows // per_img)
    per = -(-n // g)
    g = -(-n // per)
    return [(i, min(n, i + g), 0, oh) for i in range(0, n, g)]


def _tiled_bias(o2, bias):
    """(view, bias) for adding a per-channel bias to the contiguous (rows, C) array o2: with few
    channels the rows are grouped so NumPy's inner loop runs over r*C elements instead of C."""
    m, c = o2.shape
    if c >= 128 or m == 1:
        return o2, bias
    r = min(m, max(1, 1024 // c))
    while m % r:
        r -= 1
    return o2.reshape(m // r, r * c), np.tile(bias, r)


def finisher(bias, spec, out, o2, ctx):
    """One closure doing bias add then activation in place on `out` (o2: its (rows, C) view), or None."""
    ba = bb = None
    if bias is not None:
        ba, bb = _tiled_bias(o2, bias)
    code, fn, red = 0, None, None
    if spec is None or spec[0] == "linear":
        code = 0
    elif spec[0] == "relu" and spec[1:] == (0.0, None, 0.0):
        code = 1
    elif spec[0] == "softmax" and spec[1] in (-1, out.ndim - 1):
        code, red = 2, np.empty((o2.shape[0], 1), F32)
    else:
        code, fn = 3, activation(spec, out, ctx)
    if ba is None and code == 0:
        return None
    mx, sm = np.maximum.reduce, np.add.reduce
    sub, exp, div = np.subtract, np.exp, np.divide

    def fin():
        if ba is not None:
            _ADD(ba, bb, out=ba)
        if code == 1:
            _MAX(o2, 0, out=o2)
        elif code == 2:
            mx(o2, axis=1, keepdims=True, out=red)
            sub(o2, red, out=o2)
            exp(o2, out=o2)
            sm(o2, axis=1, keepdims=True, out=red)
            div(o2, red, out=o2)
        elif code == 3:
            fn(None)
    return fin


def _chunk_epilogue(op, out, ctx):
    """(act_on_chunk, post): the activation per chunk if element-wise, else once after all chunks."""
    act = chunk_act(op.act)
    if act is not None:
        return act, None
    return (lambda v: None), activation(op.act, out, ctx)


# --------------------------------------------------------------------------- convolutions

def conv_geometry(x_shape, p):
    """(oh, ow, pads, PH, PW): conv output size, its TF padding and the fused max-pool's output."""
    n, h, w, c = x_shape
    oh, pt, pb = out_size(h, p["kh"], p["sh"], p["padding"])
    ow, pl, pr = out_size(w, p["kw"], p["sw"], p["padding"])
    ph, pw = p.get("pool", (1, 1))
    return oh, ow, ((pt, pb), (pl, pr)), oh // ph, ow // pw


def build_conv(op, ins, out, ctx):
    """Conv2D as GEMM: an im2col copy from a read-only strided view of the (padded) input, then
    (rows, kh*kw*Cin) @ (kh*kw*Cin, Cout) straight into the NHWC output; bias and activation in
    place. A max-pool with pool == strides fused by the converter is computed from the im2col rows
    ordered pooling-partner-major, so it is ph*pw-1 maxima of contiguous blocks (and conv outputs the
    pool drops are never computed). Large convolutions run in chunks of output rows (im2col + GEMM +
    pool + epilogue per chunk, so it stays in cache) spread over the engine's threads; with few rows
    (small late feature maps) the im2col is done once and K is split over the threads instead."""
    x = ins[0]
    p = op.p
    kh, kw, sh, sw = p["kh"], p["kw"], p["sh"], p["sw"]
    ph, pw = p.get("pool", (1, 1))
    taps = ph * pw
    w2 = p["w2"]
    n, h, w, c = x.shape
    oh, ow, pads, PH, PW = conv_geometry(x.shape, p)
    mo, k, cout = n * PH * PW, kh * kw * c, w2.shape[1]
    mc = taps * mo  # GEMM rows
    o2 = out.reshape(mo, cout)
    if taps == 1 and kh == kw == 1 and sh == sw == 1 and not any(pads[0] + pads[1]):
        return _gemm(op, ctx, x, lambda a: a.reshape(mo, c), w2, out, o2)
    pre: list = []
    src = source(x, pads, 0.0, ctx, pre)
    s_n, s_h, s_w, s_c = (int(v) * 4 for v in _cstrides(src.shape))
    vshape = (ph, pw, n, PH, PW, kh, kw, c)
    vstr = (s_h * sh, s_w * sw, s_n, s_h * sh * ph, s_w * sw * pw, s_h, s_w, s_c)
    matmul = np.matmul
    pad = pre[0] if pre else None
    if 2.0 * mc * k * cout < PAR_MIN_FLOPS:  # one direct step
        if c == 1 and kw < 8:  # tiny rows: K-major im2col, whose rows are contiguous runs
            tshape = (kh, kw, ph, pw, n, PH, PW)
            colt = ctx.temp(tshape)
            get = viewer(src, lambda a: _strided(a, tshape, (s_h, s_w) + vstr[:5]))
            a2, col = colt.reshape(k, mc).T, colt
        else:
            col = ctx.temp(vshape)
            get = viewer(src, lambda a: _strided(a, vshape, vstr))
            a2 = col.reshape(mc, k)
        g = o2 if taps == 1 else ctx.temp((taps, mo, cout))
        g2 = g.reshape(mc, cout)
        fin = finisher(op.bias, op.act, out, o2, ctx)
        copyto, dot = np.copyto, np.dot

        def step(env):
            if pad is not None:
                pad(env)
            copyto(col, get(env))
            dot(a2, w2, out=g2)
            if taps > 1:
                _MAX(g[0], g[1], out=o2)
                for t in range(2, taps):
                    _MAX(o2, g[t], out=o2)
            if fin is not None:
                fin()
        return step
    ctx.parallel = True
    get = viewer(src, lambda a: _strided(a, vshape, vstr))
    threads = ctx.threads
    g = o2.reshape(1, mo, cout) if taps == 1 else None
    if threads > 1 and mc < FEW_ROWS * threads or threads == 1 and mc < FEW_ROWS:
        # few rows (small late feature maps): im2col once, then split K over the threads
        col = ctx.temp(vshape)
        c2 = col.reshape(mc, k)
        if g is None:
            g = ctx.temp((taps, mo, cout))
        gemm = _k_split(ctx, w2, g.reshape(mc, cout))
        pool = _pool_taps(g, o2, taps)
        fin = finisher(op.bias, op.act, out, o2, ctx)

        def core(env):
            np.copyto(col, get(env))
            gemm(c2)
            if pool is not None:
                pool()
            if fin is not None:
                fin()
        return _chain(pre + [core])
    act, post = _chunk_epilogue(op, out, ctx)
    bias = op.bias
    par = ctx.par
    per_chunk = _rows_per_chunk(mc, k, threads) // taps
    blocks = _row_blocks(n, PH, PW, max(1, per_chunk))
    max_rows = max((n1 - n0) * (h1 - h0) * PW for n0, n1, h0, h1 in blocks)
    cols = [ctx.temp((taps * max_rows, k)) for _ in range(threads)]
    gs = [ctx.temp((taps * max_rows, cout)) for _ in range(threads)] if taps > 1 else None
    items = []
    for n0, n1, h0, h1 in blocks:
        rows = (n1 - n0) * (h1 - h0) * PW
        r0 = (n0 * PH + h0) * PW
        per_thread = []
        for t in range(threads):
            cb = cols[t][: taps * rows]
            gb = o2[r0:r0 + rows] if taps == 1 else gs[t][: taps * rows]
            per_thread.append((cb, cb.reshape(ph, pw, n1 - n0, h1 - h0, PW, kh, kw, c), gb,
                               gb.reshape(taps, rows, cout)))
        items.append((n0, n1, h0, h1, o2[r0:r0 + rows], per_thread))
    state = [None]
    nitems = len(items)

    def chunk(i, tid):
        n0, n1, h0, h1, ob, per_thread = items[i]
        a2, a8, gb, g3 = per_thread[tid]
        np.copyto(a8, state[0][:, :, n0:n1, h0:h1])
        np.dot(a2, w2, out=gb)
        if taps > 1:
            _MAX(g3[0], g3[1], out=ob)
            for t in range(2, taps):
                _MAX(ob, g3[t], out=ob)
        if bias is not None:
            _ADD(ob, bias, out=ob)
        act(ob)

    def core(env):
        state[0] = get(env)
        par.run(chunk, nitems)
    return _chain(pre + [core, post])


FEW_ROWS = 256  # GEMMs with fewer rows per thread split K instead (row chunks would repack B)


def _rows_per_chunk(m, k, threads):
    """GEMM rows per chunk: enough for full BLAS speed (>= 256), about CHUNK_COL_BYTES of A, and
    (with threads) at least 3 chunks per thread so a descheduled core costs one chunk, not half."""
    rows = max(FEW_ROWS, min(MAX_ROWS, CHUNK_COL_BYTES // (4 * k)))
    if threads > 1:
        rows = min(rows, max(FEW_ROWS, m // (3 * threads)))
    return rows


def _k_split(ctx, w2, g2):
    """`f(a2)`: a2 @ w2 -> g2 for few rows. With threads, K is split (one partial product per
    thread, then summed): as fast as one GEMM, where splitting rows or columns repacks operands."""
    threads, matmul = ctx.threads, np.matmul
    k = w2.shape[0]
    if threads == 1 or k < 64 * threads:
        return lambda a2: matmul(a2, w2, out=g2)
    step = -(-k // threads)
    step = -(-step // 16) * 16
    spans = [(k0, min(k, k0 + step)) for k0 in range(0, k, step)]
    parts = [g2] + [ctx.temp(g2.shape) for _ in spans[1:]]
    wbs = [w2[a:b] for a, b in spans]
    par = ctx.par
    cur = [None]

    def chunk(i, tid):
        a, b = spans[i]
        matmul(cur[0][:, a:b], wbs[i], out=parts[i])

    def run(a2):
        cur[0] = a2
        par.run(chunk, len(spans))
        for pb in parts[1:]:
            _ADD(g2, pb, out=g2)
    return run


def _pool_taps(g, o2, taps):
    """Max over the `taps` leading blocks of g into o2 (the fused max-pool), or None."""
    if taps == 1:
        return None

    def pool():
        _MAX(g[0], g[1], out=o2)
        for t in range(2, taps):
            _MAX(o2, g[t], out=o2)
    return pool


def _gemm(op, ctx, x, to2d, w2, out, o2):
    """`to2d(x) @ w2 -> o2` (Dense, pointwise Conv2D): one call when small, else row chunks (or
    output-channel chunks when there are few rows), each with its bias and activation."""
    m, k = o2.shape[0], w2.shape[0]
    cout = w2.shape[1]
    matmul = np.matmul
    if 2.0 * m * k * cout < PAR_MIN_FLOPS:
        fin = finisher(op.bias, op.act, out, o2, ctx)
        dot = np.dot
        if m == 1 and cout <= 16:  # one row, few outputs: gemv on the transposed weights is ~2x faster
            wt = np.ascontiguousarray(w2.T)
            ov = o2[0]
            if x.arr is not None:
                av = to2d(x.arr)[0]
                core = lambda env: dot(wt, av, out=ov)
            else:
                kk = x.idx
                core = lambda env: dot(wt, to2d(env[kk])[0], out=ov)
        elif x.arr is not None:
            a = to2d(x.arr)
            core = lambda env: dot(a, w2, out=o2)
        elif len(x.shape) == 2:
            kk = x.idx
            core = lambda env: dot(env[kk], w2, out=o2)
        else:
            kk = x.idx
            core = lambda env: dot(to2d(env[kk]), w2, out=o2)
        if fin is None:
            return core

        def step(env):
            core(env)
            fin()
        return step
    ctx.parallel = True
    get = viewer(x, to2d)
    threads = ctx.threads
    if threads > 1 and m < FEW_ROWS * threads or threads == 1 and m < FEW_ROWS:
        gemm = _k_split(ctx, w2, o2)
        fin = finisher(op.bias, op.act, out, o2, ctx)

        def core(env):
            gemm(get(env))
            if fin is not None:
                fin()
        return core
    act, post = _chunk_epilogue(op, out, ctx)
    bias = op.bias
    par = ctx.par
    state = [None]
    rows = _rows_per_chunk(m, 4 * k, threads)
    blocks = [(r, min(m, r + rows), o2[r:r + rows]) for r in range(0, m, rows)]

    def chunk(i, tid):
        r0, r1, ob = blocks[i]
        matmul(state[0][r0:r1], w2, out=ob)
        if bias is not None:
            _ADD(ob, bias, out=ob)
        act(ob)

    def core(env):
        state[0] = get(env)
        par.run(chunk, len(blocks))
    return _chain([core, post])


def build_dwconv(op, ins, out, ctx):
    """DepthwiseConv2D as kh*kw shifted multiply-accumulates over strided views (channel c, multiplier
    j lands on output channel c*mult + j, like TensorFlow)."""
    x = ins[0]
    p = op.p
    kh, kw, sh, sw, wt = p["kh"], p["kw"], p["sh"], p["sw"], p["w"]  # wt: (kh, kw, C, mult)
    n, h, w, c = x.shape
    mult = wt.shape[3]
    oh, pt, pb = out_size(h, kh, sh, p["padding"])
    ow, pl, pr = out_size(w, kw, sw, p["padding"])
    pre: list = []
    src = source(x, ((pt, pb), (pl, pr)), 0.0, ctx, pre)
    acc = out.reshape(n, oh, ow, c, mult)
    tmp = ctx.temp(acc.shape)
    taps = []
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(i, i + (oh - 1) * sh + 1, sh), slice(j, j + (ow - 1) * sw + 1, sw),
                  slice(None), None)
            taps.append((viewer(src, lambda a, sl=sl: a[sl]), np.ascontiguousarray(wt[i, j])))

    def core(env):
        g, wij = taps[0]
        _MUL(g(env), wij, out=acc)
        for g, wij in taps[1:]:
            _MUL(g(env), wij, out=tmp)
            _ADD(acc, tmp, out=acc)
    return _chain(pre + [core, epilogue(op.bias, op.act, out, ctx)])


def build_dense(op, ins, out, ctx):
    """Dense on the last axis of any rank: one GEMM over the (rows, features) view."""
    x = ins[0]
    w2 = op.p["w"]
    rows = int(np.prod(x.shape[:-1]))
    o2 = out.reshape(rows, w2.shape[1])
    return _gemm(op, ctx, x, lambda a: a.reshape(rows, w2.shape[0]), w2, out, o2)


# --------------------------------------------------------------------------- element-wise

def build_scale_shift(op, ins, out, ctx):
    """BatchNormalization on its own (not folded) and Rescaling: x * scale + shift."""
    k = ins[0].idx
    scale, shift = op.p["scale"], op.p["shift"]

    def core(env):
        _MUL(env[k], scale, out=out)
        _ADD(out, shift, out=out)
    return _chain([core, epilogue(op.bias, op.act, out, ctx)])


def build_act(op, ins, out, ctx):
    """A stand-alone activation layer (its producer's buffer could not take it in place)."""
    k = ins[0].idx
    spec = op.act
    if spec is not None and spec[0] == "relu" and spec[1:] == (0.0, None, 0.0):
        return lambda env: _MAX(env[k], 0, out=out)
    copy = lambda env: np.copyto(out, env[k])
    return _chain([copy, activation(spec, out, ctx)])


_MERGE = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "maximum": np.maximum,
          "minimum": np.minimum, "average": np.add}


PAR_MIN_ELEMS = 1 << 20  # element-wise and pooling steps larger than this are split over threads


def build_merge(op, ins, out, ctx):
    """Add / Subtract / Multiply / Average / Maximum / Minimum of same-shaped (broadcastable) inputs.
    Large same-shape merges (ResNet's add + ReLU) are split into flat chunks over the threads."""
    fn = _MERGE[op.p["mode"]]
    ks = [v.idx for v in ins]
    k0, k1, rest = ks[0], ks[1], ks[2:]
    scale = F32(1.0 / len(ks)) if op.p["mode"] == "average" else None
    if (ctx.threads > 1 and out.size >= PAR_MIN_ELEMS and all(v.arr is not None for v in ins)
            and all(v.shape == out.shape for v in ins)):
        ctx.parallel = True
        act, post = _chunk_epilogue(op, out, ctx)
        flat = [v.arr.reshape(-1) for v in ins]
        of = out.reshape(-1)
        step = -(-out.size // (4 * ctx.threads))
        step = -(-step // 1024) * 1024
        blocks = [([f[a:a + step] for f in flat], of[a:a + step]) for a in range(0, out.size, step)]
        bias = op.bias

        def chunk(i, tid):
            srcs, ob = blocks[i]
            fn(srcs[0], srcs[1], out=ob)
            for sb in srcs[2:]:
                fn(ob, sb, out=ob)
            if scale is not None:
                _MUL(ob, scale, out=ob)
            if bias is not None:
                _ADD(ob.reshape(-1, bias.shape[0]), bias, out=ob.reshape(-1, bias.shape[0]))
            act(ob)
        par = ctx.par
        return _chain([lambda env: par.run(chunk, len(blocks)), post])
    fin = finisher(op.bias, op.act, out, out.reshape(-1, out.shape[-1]), ctx)

    def core(env):
        fn(env[k0], env[k1], out=out)
        for kk in rest:
            fn(out, env[kk], out=out)
        if scale is not None:
            _MUL(out, scale, out=out)
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
    return _chain([core, epilogue(op.bias, op.act, out, ctx)])


def build_zeropad(op, ins, out, ctx):
    """ZeroPadding2D into a buffer of its own whose zero border is written once."""
    (pt, pb), (pl, pr) = op.p["pads"]
    n, h, w, c = ins[0].shape
    out[...] = 0
    interior = out[:, pt:pt + h, pl:pl + w, :]
    k = ins[0].idx
    return lambda env: np.copyto(interior, env[k])


# --------------------------------------------------------------------------- pooling

def pool_count(h, w, ph, pw, sh, sw, pads):
    """Cells of each 'same' average-pool window that lie inside the input (TF excludes padding)."""
    (pt, pb), (pl, pr) = pads
    ones = np.zeros((h + pt + pb, w + pl + pr), np.float64)
    ones[pt:pt + h, pl:pl + w] = 1
    oh, _, _ = out_size(h, ph, sh, "same")
    ow, _, _ = out_size(w, pw, sw, "same")
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
    oh, pt, pb = out_size(h, ph, sh, p["padding"])
    ow, pl, pr = out_size(w, pw, sw, p["padding"])
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
            _MUL(ob, ib, out=ob)

    if ctx.threads > 1 and x.arr is not None and out.size * max(ph, pw) >= PAR_MIN_ELEMS:
        ctx.parallel = True
        act, post = _chunk_epilogue(op, out, ctx)
        bias = op.bias
        blocks = [views(x.arr, *b) for b in _row_blocks(n, oh, ow, max(1, n * oh * ow // (4 * ctx.threads)))]

        def chunk(i, tid):
            blk = blocks[i]
            run_block(*blk)
            ob = blk[3]
            if bias is not None:
                _ADD(ob, bias, out=ob)
            act(ob)
        par = ctx.par
        return _chain([lambda env: par.run(chunk, len(blocks)), post])
    fin = finisher(op.bias, op.act, out, out.reshape(-1, c), ctx)
    if x.arr is not None:
        blk = views(x.arr, 0, n, 0, oh)
        core = lambda env: run_block(*blk)
    else:
        k = x.idx
        core = lambda env: run_block(*views(env[k], 0, n, 0, oh))
    return _chain([core, (lambda env: fin()) if fin is not None else None])


def build_global_pool(op, ins, out, ctx):
    x = ins[0]
    n, h, w, c = x.shape
    red = np.maximum.reduce if op.p["mode"] == "max" else np.add.reduce
    o2 = out.reshape(n, c)
    get = viewer(x, lambda a: a.reshape(n, h * w, c))
    inv = F32(1.0 / (h * w))
    if op.p["mode"] == "max":
        core = lambda env: red(get(env), axis=1, out=o2)
    else:
        def core(env):
            red(get(env), axis=1, out=o2)
            _MUL(o2, inv, out=o2)
    return _chain([core, epilogue(op.bias, op.act, out, ctx)])


def _cstrides(shape):
    """Element strides of a C-contiguous array of `shape`."""
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= d
    return tuple(reversed(st))


BUILDERS = {
    "conv": build_conv, "dwconv": build_dwconv, "dense": build_dense, "scale_shift": build_scale_shift,
    "act": build_act, "merge": build_merge, "concat": build_concat, "zeropad": build_zeropad,
    "pool": build_pool, "gpool": build_global_pool,
}
