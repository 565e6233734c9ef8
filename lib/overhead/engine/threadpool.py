"""The engine's own thread pool: chunks of one step spread over the caller and worker threads.

``Parallel.run(fn, n)`` runs ``fn(i, tid)`` for i in range(n); the caller and daemon workers pull
indices from a shared counter. Dynamic load balancing means a descheduled core (this is a shared
machine) delays a step by at most one chunk, where a BLAS split in equal halves waits for its
slowest half. NumPy's copy, ufunc and matmul loops release the GIL, so chunks overlap; BLAS runs
single-threaded inside chunks (the model sets that around a call).

No spinning while idle: between calls the workers block on an Event. Only *inside* a call (while
``session()`` is open) does a worker poll for the next parallel region, for at most SPIN_S after its
last chunk, sleeping ~20 us per poll in libc's usleep (GIL released), because waking a blocked
thread costs ~70-90 us on this VM, about a tenth of a typical parallel step. When the call returns
(plus GRACE_S, 0 by default) the workers block, so they never compete with the next backend timed.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from contextlib import contextmanager


class Parallel:
    """Runs ``fn(i, tid)`` for i in range(n) on ``threads`` threads (the caller is tid 0)."""

    def __init__(self):
        self.threads = 1
        self._workers: list = []   # (Event, Thread)
        self._native: list = []    # OS thread ids of the workers (for their CPU affinity)
        self._task = None
        self._stop = False
        self._awake_until = 0.0    # idle workers poll (not block) until then: inf inside a call
        self.grace_s = GRACE_S     # ...and for this long after it (back-to-back calls find them awake)
        self._cpu = None           # the caller's CPU the workers were last kept off
        _ALL.add(self)

    @contextmanager
    def session(self):
        """Workers stay awake between the parallel regions of one call, and block after it."""
        self._awake_until = float("inf")
        try:
            yield
        finally:
            self._awake_until = time.perf_counter() + self.grace_s

    def idle_workers_blocked(self) -> bool:
        """True when every worker is waiting on its Event (none polling): for tests."""
        return all(not th.is_alive() or getattr(th, "blocked", False) for _, th in self._workers)

    def _after_fork(self):
        self._workers, self._native, self._task, self._cpu = [], [], None, None

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
            while task.active:  # a worker is finishing its last chunk of this step
                _pause()
        if task.error is not None:
            raise task.error

    def _start(self, tid):
        ev = threading.Event()
        th = threading.Thread(target=self._loop, args=(ev, tid), name=f"overhead-engine-{tid}", daemon=True)
        th.blocked = False
        self._workers.append((ev, th))
        th.start()

    def _loop(self, ev, tid):
        self._native.append(threading.get_native_id())
        me = threading.current_thread()
        clock, last, spin_until = time.perf_counter, None, 0.0
        while True:
            task = self._task
            if self._stop:
                return
            if task is None or task is last or tid >= task.threads:
                now = clock()
                if now < spin_until and now < self._awake_until:  # next region is microseconds away
                    _pause()
                    continue
                me.blocked = True
                ev.wait()
                me.blocked = False
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


class _Task:
    __slots__ = ("fn", "n", "threads", "it", "lock", "active", "closed", "error")

    def __init__(self, fn, n, threads):
        self.fn, self.n, self.threads = fn, n, threads
        self.it = itertools.count()
        self.lock = threading.Lock()
        self.active, self.closed, self.error = 0, False, None


# Keep the worker threads off the caller's CPU: before each parallel region the caller's CPU is
# read (sched_getcpu, ~0.1 us) and, when it changed, the workers' affinity is set to the other
# allowed CPUs (the caller itself is never pinned). Measured: a worker woken by the caller was
# often placed on the caller's vCPU and the two time-shared it until the scheduler migrated one -
# with 1-3 ms parallel regions that often never happened, so a 2-thread step ran at 1-thread speed
# (a 3136x576x64 GEMM split in two: 2.0-2.2 ms median unpinned, 1.06-1.15 ms kept apart, 1.25 ms
# for the whole GEMM on one thread). OVERHEAD_NUMPY_PIN=0 turns it off.
def _make_getcpu():
    try:
        import ctypes
        fn = ctypes.CDLL(None).sched_getcpu
        fn.restype = ctypes.c_int
        fn()
        return fn
    except (OSError, AttributeError, TypeError):
        return None


def _make_pause():
    try:
        import ctypes
        usleep = ctypes.CDLL(None).usleep
        usleep.argtypes = [ctypes.c_uint]
        return lambda: usleep(20)
    except (OSError, AttributeError, TypeError):
        return lambda: time.sleep(0)


# After a call the workers poll this long before blocking, so that a caller timing the engine
# back to back does not pay a thread wake-up per call; short enough not to disturb a backend timed
# after the engine (see overhead.experiments.distortion).
GRACE_S = float(os.environ.get("OVERHEAD_NUMPY_GRACE_S", "0"))
# Inside a call a worker polls at most this long after its last chunk, then blocks: a thread that
# polls for a whole call loses its scheduler credit on a busy machine (measured: ResNet-18 224 at 2
# threads and load ~10 ran 12-20 % slower with workers polling through the whole call).
SPIN_S = float(os.environ.get("OVERHEAD_NUMPY_SPIN_S", "0.002"))

_getcpu = _make_getcpu()
_pause = _make_pause()
try:
    _ALLOWED = sorted(os.sched_getaffinity(0))
except (AttributeError, OSError):
    _ALLOWED = []
PIN_THREADS = (os.environ.get("OVERHEAD_NUMPY_PIN", "1") != "0" and _getcpu is not None
               and len(_ALLOWED) > 1)

_ALL: "weakref.WeakSet[Parallel]" = weakref.WeakSet()
if hasattr(os, "register_at_fork"):  # no workers in a forked child: it runs single-threaded
    os.register_at_fork(after_in_child=lambda: [p._after_fork() for p in list(_ALL)])


def blas_controllers():
    """threadpoolctl handles of the BLAS NumPy uses (all BLAS libraries if it cannot tell)."""
    from threadpoolctl import ThreadpoolController
    libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    mine = [c for c in libs if os.path.basename(os.path.dirname(c.filepath)).startswith("numpy")]
    return mine or libs
