"""Fake backends for the tests: crash, raise, disagree, sleep.

Loaded only through the package's one hook: ``OVERHEAD_EXTRA_BACKENDS=<this file>:register`` (``HOOK``),
which worker processes inherit with the environment.
"""
import os
import signal
import time
from pathlib import Path

HOOK = f"{Path(__file__).resolve()}:register"
NAMES = ["test.crash", "test.crash_timing", "test.raise", "test.wrong", "test.slow"]


def register() -> None:
    from overhead.backends import Backend
    from overhead.backends import register as add
    from overhead.backends.numpy_paths import _prep_numpy

    def crash_prepare(path, batch, threads, artifacts):
        os.kill(os.getpid(), signal.SIGSEGV)

    def crash_timing(path, batch, threads, artifacts):  # passes parity, then segfaults while timed
        fn, info = _prep_numpy(path, batch, threads, artifacts)
        calls = {"n": 0}
        limit = int(os.environ.get("OVERHEAD_TEST_CRASH_AFTER", "400"))

        def run(x):
            calls["n"] += 1
            if calls["n"] > limit:
                os.kill(os.getpid(), signal.SIGSEGV)
            return fn(x)
        return run, info

    def raise_prepare(path, batch, threads, artifacts):
        raise RuntimeError("deliberate failure of the test backend")

    def wrong(path, batch, threads, artifacts):
        fn, info = _prep_numpy(path, batch, threads, artifacts)
        return (lambda x: fn(x)[:, ::-1].copy()), info

    def slow(path, batch, threads, artifacts):
        fn, info = _prep_numpy(path, batch, threads, artifacts)
        delay = float(os.environ.get("OVERHEAD_TEST_SLOW_S", "0.002"))

        def run(x):
            time.sleep(delay)
            return fn(x)
        return run, info

    for name, prep, desc in zip(NAMES, [crash_prepare, crash_timing, raise_prepare, wrong, slow],
                                ["segfaults while preparing", "segfaults after N calls", "raises while preparing",
                                 "returns reversed class scores", "numpy engine plus a sleep per call"]):
        add(Backend(name, "test", desc, prep, needs=("numpy",)))
