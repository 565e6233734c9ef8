"""The wall-clock stack sampler of the per-call decomposition (:mod:`overhead.experiments.breakdown`).

A periodic ``SIGALRM`` (``setitimer``, every :data:`INTERVAL_S`, not a multiple of any call period) runs a
handler that records the main thread's whole Python stack. Each timer expiration is one sample worth one
interval; expirations that queued while the thread sat in a long C call all count there. The handler's own
time is taken out of the calls' time, and so is the slowdown a sample causes its call afterwards (signal
delivery), measured as the difference of the median sampled and unsampled call (:func:`central_calls`).
"""
from __future__ import annotations

import linecache
import math
import signal
import sys
import time

from overhead.harness import timing

INTERVAL_S = 3.1e-3


def _checkpoint():
    return None


class Sampler:
    """Periodic SIGALRM stack sampler of the main thread over calls of `fn` (see the module docstring).

    Successive :meth:`run` calls accumulate: ``samples`` [(call, stack keys, line, expirations)],
    ``walls`` and ``handler_s`` (seconds per call), call indices continuing across runs."""

    def __init__(self, interval_s: float = INTERVAL_S):
        self.dt = float(interval_s)
        self.samples, self.walls, self.handler_s = [], [], []
        self.inside, self.call, self.busy = False, -1, False

    def _handler(self, signum, frame):
        # Python may run the next SIGALRM's handler inside this one (at any bytecode boundary); its time would
        # then count twice in handler_s, so a nested expiry is dropped like any other during the handler
        if self.busy:
            return
        self.busy = True
        try:
            self._sample(frame)
        finally:
            self.busy = False

    def _sample(self, frame):
        t = time.perf_counter()
        # grid points passed since the last handler; a signal can arrive tens of us after its grid
        # point, so no cut at the call's start (the harness between calls is ~1 % of the time)
        count = math.floor((t - self.t0) / self.dt) - self.done
        if self.inside and count > 0 and frame is not None and frame is not self.stop:
            stack, f = [], frame
            while f is not None and f is not self.stop:
                stack.append((f.f_code.co_filename, f.f_code.co_firstlineno, f.f_code.co_name))
                f = f.f_back
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno) if frame.f_lineno else ""
            self.samples.append((self.call, tuple(reversed(stack)), line, count))
        end = time.perf_counter()
        self.done = math.floor((end - self.t0) / self.dt)  # expirations during the handler are dropped
        if self.inside:
            self.handler_s[-1] += end - t

    def run(self, fn, calls: int) -> None:
        """Call `fn` `calls` times while sampling (GC off)."""

        self.done, self.stop = 0, sys._getframe()
        old = signal.signal(signal.SIGALRM, self._handler)
        signal.siginterrupt(signal.SIGALRM, False)  # restart system calls other threads make
        try:
            with timing.gc_disabled():
                self.t0 = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, self.dt, self.dt)
                for _ in range(calls):
                    self.call += 1
                    self.handler_s.append(0.0)
                    self.call_start = time.perf_counter()
                    self.inside = True
                    fn()
                    _checkpoint()  # a function entry: a signal pending since fn's last C call is handled now
                    self.inside = False
                    self.walls.append(time.perf_counter() - self.call_start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, old)


def central_calls(net_s, sampled_calls, typical_s: float, factor: float = 2.5) -> tuple[set, float]:
    """The calls that count, and the slowdown one sample causes (s).

    A sampled call weighs a whole interval, so any rule that keeps sampled and unsampled calls at
    different rates biases the sum; hence only gross outliers are dropped (calls slower than
    `factor` x `typical_s`, the plain median: preempted on a shared machine), after taking out of
    each sampled call the slowdown its samples caused (signal delivery, ~0.1-0.3 ms on a VM),
    estimated as the difference of the median sampled and unsampled call."""
    import numpy as np

    net = np.asarray(net_s, dtype=float)
    k = np.bincount(np.asarray(list(sampled_calls), dtype=int), minlength=len(net))[: len(net)]
    perturb = 0.0
    if (k > 0).any() and (k == 0).sum() >= 10:
        perturb = max(0.0, float(np.median(net[k > 0]) - np.median(net[k == 0])))
    return set(np.flatnonzero(net - perturb * k <= factor * typical_s).tolist()), perturb
