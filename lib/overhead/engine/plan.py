"""The execution plan: the program compiled for one input shape (and thread count).

Shapes are inferred op by op; every value gets a preallocated float32 buffer, reused across ops by
liveness (best fit), so a call allocates nothing but its result. Reshape/identity ops are views.
"""
from __future__ import annotations

import numpy as np

from overhead.engine import views as V
from overhead.engine.kernels import BUILDERS
from overhead.engine.ops import ALIAS_KINDS, F32, Val


def out_shape(op, shapes):
    """Output shape of `op` for input shapes `shapes` (batch included); ValueError if impossible."""
    s = shapes[0]
    k, p = op.kind, op.p
    if k in ("conv", "dwconv", "pool"):
        if len(s) != 4:
            raise ValueError(f"{op.cls} {op.name!r} needs a 4-D NHWC input, got shape {s}")
        kh, kw = (p["kh"], p["kw"]) if k != "pool" else (p["ph"], p["pw"])
        oh = V.out_size(s[1], kh, p["sh"], p["padding"])[0]
        ow = V.out_size(s[2], kw, p["sw"], p["padding"], 1)[0]
        if k == "conv" and "pool" in p:
            oh, ow = oh // p["pool"][0], ow // p["pool"][1]
        if oh < 1 or ow < 1:
            raise ValueError(f"{op.cls} {op.name!r}: input {s} is smaller than its window")
        if k == "conv":
            if s[3] != p["cin"]:
                raise ValueError(f"{op.cls} {op.name!r} expects {p['cin']} channels, got {s[3]}")
            c = p["w2"].shape[1]
        elif k == "dwconv":
            if s[3] != p["w"].shape[2]:
                raise ValueError(f"{op.cls} {op.name!r} expects {p['w'].shape[2]} channels, got {s[3]}")
            c = s[3] * p["w"].shape[3]
        else:
            c = s[3]
        return (s[0], oh, ow, c)
    if k == "dense":
        if s[-1] != p["w"].shape[0]:
            raise ValueError(f"{op.cls} {op.name!r} expects {p['w'].shape[0]} features, got {s[-1]}")
        return s[:-1] + (p["w"].shape[1],)
    if k in ("scale_shift", "act", "identity", "layernorm"):
        return s
    if k == "crop":
        (ct, cb), (cl, cr) = p["crops"]
        if len(s) != 4 or s[1] - ct - cb < 1 or s[2] - cl - cr < 1:
            raise ValueError(f"{op.cls} {op.name!r} cannot crop {p['crops']} from shape {s}")
        return (s[0], s[1] - ct - cb, s[2] - cl - cr, s[3])
    if k == "gpool":
        if len(s) != 4:
            raise ValueError(f"{op.cls} {op.name!r} needs a 4-D NHWC input, got shape {s}")
        return (s[0], 1, 1, s[3]) if p["keepdims"] else (s[0], s[3])
    if k == "reshape":
        size = int(np.prod(s[1:]))
        t = p["target"]
        known = int(np.prod([d for d in t if d != -1]))
        if -1 in t:
            if known == 0 or size % known:
                raise ValueError(f"{op.cls} {op.name!r} cannot reshape {s} to {t}")
            t = tuple(size // known if d == -1 else d for d in t)
        if int(np.prod(t)) != size:
            raise ValueError(f"{op.cls} {op.name!r} cannot reshape {s} to {t}")
        return (s[0],) + tuple(t)
    if k == "zeropad":
        (pt, pb), (pl, pr) = p["pads"]
        return (s[0], s[1] + pt + pb, s[2] + pl + pr, s[3])
    if k == "merge":
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"{op.cls} {op.name!r}: incompatible input shapes {shapes}") from None
    if k == "concat":
        ax = p["axis"] % len(s)
        if ax == 0 or any(len(t) != len(s) or t[:ax] + t[ax + 1:] != s[:ax] + s[ax + 1:] for t in shapes):
            raise ValueError(f"{op.cls} {op.name!r}: cannot concatenate {shapes} on axis {p['axis']}")
        return s[:ax] + (sum(t[ax] for t in shapes),) + s[ax + 1:]
    raise AssertionError(k)


class Buffers:
    """Buffers for one plan: best-fit reuse of flat float32 blocks by liveness, plus persistent
    padded buffers (border fixed once) keyed by geometry."""

    def __init__(self):
        self.free: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []
        self.persist: dict = {}
        self.temps: list[np.ndarray] = []

    def take(self, shape) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, int(np.prod(shape)))
        fits = [b for b in self.free if b.size >= n]
        if fits:
            block = min(fits, key=lambda b: b.size)
            self.free = [b for b in self.free if b is not block]
        else:
            block = np.empty(n, F32)
            self.blocks.append(block)
        return block, block[: int(np.prod(shape))].reshape(shape)

    def give(self, block):
        self.free.append(block)

    # the interface the kernels see
    def temp(self, shape) -> np.ndarray:
        block, arr = self.take(shape)
        self.temps.append(block)
        return arr

    def persistent(self, key, shape, fill) -> np.ndarray:
        buf = self.persist.get(key)
        if buf is None:
            buf = self.persist[key] = np.full(shape, fill, F32)
        return buf

    def end_op(self):
        for b in self.temps:
            self.give(b)
        self.temps = []

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks) + sum(b.nbytes for b in self.persist.values())


class Plan:
    """The program compiled for one input shape: steps over an env of values."""

    def __init__(self, ops, in_val, out_vals, in_shape, par, threads):
        """Compile `ops` for `in_shape` at `threads` engine threads (`par` runs their chunks)."""
        self.in_shape = in_shape
        self.in_strides = np.empty(in_shape, F32).strides
        n_ops = len(ops)
        nv = 1 + max([in_val] + [op.out for op in ops])
        shapes = {in_val: tuple(in_shape)}
        base = {in_val: in_val}
        for op in ops:  # shapes and the buffer that owns each value
            shapes[op.out] = out_shape(op, [shapes[v] for v in op.ins])
            base[op.out] = base[op.ins[0]] if op.kind in ALIAS_KINDS else op.out
        last = {}
        for i, op in enumerate(ops):
            for v in op.ins:
                last[base[v]] = i
        for v in out_vals:
            last[base[v]] = n_ops
        pool = Buffers()
        pool.par, pool.threads, pool.parallel = par, threads, False
        template: list = [None] * nv
        vals = {in_val: Val(shapes[in_val], None, in_val)}
        owner: dict[int, np.ndarray] = {}
        dying: dict[int, list[int]] = {}
        for b, i in last.items():
            dying.setdefault(i, []).append(b)
        steps, names, dynamic = [], [], []
        for i, op in enumerate(ops):
            ins = [vals[v] for v in op.ins]
            shape = shapes[op.out]
            if op.kind in ALIAS_KINDS:
                src = ins[0]
                if src.arr is not None:
                    arr = src.arr.reshape(shape)
                    vals[op.out] = Val(shape, arr, op.out)
                    template[op.out] = arr
                else:  # a view of the call's input, made per call
                    vals[op.out] = Val(shape, None, op.out)
                    step = _alias_step(src.idx, op.out, shape)
                    steps.append(step)
                    names.append(op)
                    dynamic.append(step)
            else:
                if op.kind == "zeropad":  # its border must stay zero: a buffer of its own
                    out = np.zeros(shape, F32)
                    pool.blocks.append(out)
                else:
                    owner[op.out], out = pool.take(shape)
                vals[op.out] = Val(shape, out, op.out)
                template[op.out] = out
                steps.append(BUILDERS[op.kind](op, ins, out, pool))
                names.append(op)
                pool.end_op()
            for b in dying.get(i, ()):
                if b in owner:
                    pool.give(owner.pop(b))
        self.steps, self.ops, self.template = steps, names, template
        self.shapes = shapes
        self.in_val, self.out_vals = in_val, list(out_vals)
        self.out_shapes = [shapes[v] for v in out_vals]
        self.nbytes = pool.nbytes()
        # steps split over threads (then the plan is for `threads` only; else it serves every count)
        self.parallel = pool.parallel
        self.threads = threads
        self._single = self.out_vals[0] if len(self.out_vals) == 1 else None

    def run(self, x):
        env = self.template.copy()
        env[self.in_val] = x
        for step in self.steps:
            step(env)
        if self._single is not None:
            return env[self._single].copy()
        return [env[v].copy() for v in self.out_vals]


def _alias_step(src, dst, shape):
    def alias(env):
        env[dst] = env[src].reshape(shape)
    return alias
