"""NumpyModel: a converted program run with NumPy alone (no TensorFlow, Keras or pickle needed)."""
from __future__ import annotations

import os
import threading
import time
import weakref

import numpy as np

from overhead.engine.format import save
from overhead.engine.ops import F32
from overhead.engine.plan import Plan
from overhead.engine.threadpool import Parallel, blas_controllers as _blas_controllers

_PLAN_CACHE = 8  # input shapes whose plans (and buffers) are kept; the oldest is dropped
_F32_DTYPE = np.dtype(np.float32)


class NumpyModel:
    """A converted model: ``net(x)`` == ``model(x, training=False)``, computed with NumPy only.

    `x` must be a float32 array shaped like the model input (any batch size). The result is a fresh
    array (never a buffer reused by the next call). Thread-safe: the buffers are per object, so calls
    on one object from several threads are serialised by a lock (use one object per thread to run
    them concurrently).

    Threads: ``threads`` (None: the BLAS thread count in force, so threadpoolctl limits are
    honoured) is the number of threads one call may use. Steps too large for one direct call are
    split into chunks run by the caller and threads-1 engine workers, with OpenBLAS held to one
    thread during the call (two ctypes calls, ~1 us; plans without such steps skip this entirely).
    """

    def __init__(self, ops, in_val, out_vals, input_shape, name="model", threads=None,
                 output_names=None):
        self._ops, self._in_val, self._out_vals = ops, in_val, list(out_vals)
        self.input_shape = tuple(input_shape)  # (None, ...) like Keras
        self.name = name
        self.output_names = output_names
        self._plans: dict = {}  # input shape -> Plan (a parallel plan holds its thread count)
        self._lock = threading.Lock()
        self._blas = None
        self._par = Parallel()
        weakref.finalize(self, self._par.stop)
        self.threads = threads

    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, threads):
        if threads is not None:
            threads = int(threads)
            if threads < 1:
                raise ValueError(f"threads must be a positive integer or None, got {threads}")
        self._threads = threads

    # ---- calls
    def __call__(self, x):
        if type(x) is not np.ndarray:
            x = np.asarray(x)
        plan = self._plans.get(x.shape)
        if plan is None:
            self._check_shape(x)
            if x.shape[0] == 0:
                return self._empty(x.shape)
            plan = self._compile(x.shape, self._threads or 1)  # recompiled per thread count if split
        elif x.dtype is not _F32_DTYPE and x.dtype != _F32_DTYPE:  # `is`: the fast, usual case
            raise ValueError(f"{self.name}: input dtype must be float32, got {x.dtype}")
        if x.strides != plan.in_strides:  # not C-contiguous
            x = np.ascontiguousarray(x)
        lock = self._lock
        lock.acquire()  # not `with`: ~0.06 us less per call (a call on a tiny MLP is ~5 us)
        try:
            if not plan.parallel:  # nothing split over threads: BLAS runs these GEMMs on one thread
                return plan.run(x)
            plan, restore = self._enter_threads(plan)
            try:
                with self._par.session():
                    return plan.run(x)
            finally:
                restore()
        finally:
            lock.release()

    def _threads_now(self):
        """(engine threads for a call, BLAS controllers with their current thread counts)."""
        blas = self._blas
        if blas is None:
            blas = self._blas = _blas_controllers()
        prev = [c.get_num_threads() for c in blas]
        return self._threads or (max(prev) if prev else (os.cpu_count() or 1)), list(zip(blas, prev))

    def _enter_threads(self, plan):
        """The plan recompiled for the thread count in force if needed, BLAS held to one thread
        meanwhile. Returns (plan, restore) where restore() puts BLAS back."""
        t, blas = self._threads_now()
        if plan.threads != t:
            plan = self._compile(plan.in_shape, t)
        self._par.threads = t
        changed = [(c, p) for c, p in blas if p != 1]
        for c, _ in changed:
            c.set_num_threads(1)

        def restore():
            for c, p in changed:
                c.set_num_threads(p)
        return plan, restore

    def _check_shape(self, x):
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], x.shape[1:])):
            exp = "(batch, " + ", ".join("?" if d is None else str(d) for d in want[1:]) + ")"
            raise ValueError(f"{self.name}: input shape must be {exp}, got {x.shape}")
        if x.dtype != np.float32:
            raise ValueError(f"{self.name}: input dtype must be float32, got {x.dtype}")

    def _compile(self, shape, threads):
        plan = Plan(self._ops, self._in_val, self._out_vals, shape, self._par, threads)
        self._plans.pop(shape, None)
        self._plans[shape] = plan
        while len(self._plans) > _PLAN_CACHE:
            del self._plans[next(iter(self._plans))]
        return plan

    def _empty(self, shape):
        plan = self.plan(1)
        outs = [np.empty((0,) + s[1:], F32) for s in plan.out_shapes]
        return outs[0] if len(outs) == 1 else outs

    # ---- saving (see overhead.engine.format)
    def save(self, path):
        """Write the model to one .npz engine file (versioned JSON plan + float32 weights), loadable
        with :func:`overhead.engine.load` in a process without TensorFlow. Written atomically."""
        save(self, path)

    # ---- introspection
    def plan(self, batch=1):
        """The plan for `batch` rows of the model's input shape at the current thread setting."""
        shape = (batch,) + tuple(d if d is not None else 1 for d in self.input_shape[1:])
        plan = self._plans.get(shape) or self._compile(shape, self._threads or 1)
        if plan.parallel:
            plan, restore = self._enter_threads(plan)
            restore()
        return plan

    def summary(self) -> str:
        lines = [f"NumpyModel {self.name!r}: input {self.input_shape}, {len(self._ops)} ops"]
        lines += [f"  {op!r}" for op in self._ops]
        return "\n".join(lines)

    def profile(self, x, repeats: int = 20) -> list[dict]:
        """Median time of every step of the plan for `x` (one row per op), for finding the hot spots."""
        self(x)
        with self._lock:
            plan, restore = self._plans[x.shape], (lambda: None)
            if plan.parallel:
                plan, restore = self._enter_threads(plan)
            env = plan.template.copy()
            env[plan.in_val] = np.ascontiguousarray(x)
            times = np.zeros((repeats, len(plan.steps)))
            try:
                with self._par.session():
                    for r in range(repeats):
                        for i, step in enumerate(plan.steps):
                            t0 = time.perf_counter_ns()
                            step(env)
                            times[r, i] = time.perf_counter_ns() - t0
            finally:
                restore()
        med, low = np.median(times, axis=0) / 1e3, times.min(axis=0) / 1e3
        return [{"op": op.name, "kind": op.kind, "class": op.cls, "us": float(t), "min_us": float(lo),
                 "flops": _op_flops(op, plan.shapes[op.out])}
                for op, t, lo in zip(plan.ops, med, low)]

    def __repr__(self):
        return f"NumpyModel({self.name!r}, input={self.input_shape}, ops={len(self._ops)}, threads={self._threads})"


def _op_flops(op, out_shape) -> int:
    """2 x multiply-adds of a Conv2D / DepthwiseConv2D / Dense op for its output shape (0 otherwise)."""
    rows = int(np.prod(out_shape[:-1]))
    if op.kind == "conv":
        ph, pw = op.p.get("pool", (1, 1))
        return 2 * rows * ph * pw * op.p["w2"].shape[0] * op.p["w2"].shape[1]
    if op.kind == "dense":
        return 2 * rows * op.p["w"].shape[0] * op.p["w"].shape[1]
    if op.kind == "dwconv":
        return 2 * rows * out_shape[-1] * op.p["kh"] * op.p["kw"]
    return 0
