"""Fake paths for the LoadGen tests, on top of tests/fake_backends.py (``HOOK`` registers both).

- ``test.fixed``: the NumPy engine padded to a known service time per call (``OVERHEAD_TEST_SERVICE_S``,
  default 2 ms) by sleeping, so the GIL is free as in TF or ORT: right answers, a known capacity of
  1 / service time queries per second for one worker;
- ``test.single_thread``: the NumPy engine, listed by the SUT as unable to run under threads;
- ``test.slow_probe``: ``test.fixed`` whose first :data:`PROBE_CALLS` calls take ``OVERHEAD_TEST_PROBE_S``
  (default 50 ms): the SUT's service-time probe sees a slow path, LoadGen a fast one -- a maximum that
  breaks the capacity bound.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_backends  # noqa: E402  (loaded by file path through the hook: its folder goes on sys.path first)

HOOK = f"{Path(__file__).resolve()}:register"
NAMES = ["test.fixed", "test.single_thread", "test.slow_probe"]
PROBE_CALLS = 21  # the probe: its warm-up call and its 20 timed calls (loadgen_core.service_time_s)


def register() -> None:
    fake_backends.register()
    from overhead.backends import Backend, register as add
    from overhead.backends.numpy_paths import _prep_numpy

    def fixed(path, batch, threads, artifacts, slow_probe=False):
        fn, info = _prep_numpy(path, batch, threads, artifacts)
        service = float(os.environ.get("OVERHEAD_TEST_SERVICE_S", "0.002"))
        slow = float(os.environ.get("OVERHEAD_TEST_PROBE_S", "0.05")) if slow_probe else None
        calls = [0]

        def run(x):
            calls[0] += 1
            end = time.perf_counter() + (slow if slow and calls[0] <= PROBE_CALLS else service)
            out = fn(x)
            left = end - time.perf_counter()
            if left > 1e-4:
                time.sleep(left - 1e-4)  # sleep overshoots by tens of microseconds: spin the last 0.1 ms
            while time.perf_counter() < end:
                pass
            return out
        return run, info

    add(Backend("test.fixed", "test", "numpy engine padded to a fixed service time", fixed, needs=("numpy",)))
    add(Backend("test.slow_probe", "test", "test.fixed, slow for its first calls only",
                lambda *a: fixed(*a, slow_probe=True), needs=("numpy",)))
    add(Backend("test.single_thread", "test", "numpy engine that may not run under threads", _prep_numpy,
                needs=("numpy",)))
