"""The engine's thread pool: chunks run on several threads, and idle workers block (never spin)."""
import os
import time

import numpy as np
import pytest

from overhead.engine.threadpool import Parallel


def _cpu_ticks(native_id):
    """utime + stime of one thread of this process, in clock ticks (Linux)."""
    with open(f"/proc/self/task/{native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _wait_blocked(par, timeout=5.0):
    end = time.monotonic() + timeout
    while not par.idle_workers_blocked():
        assert time.monotonic() < end, "workers never went back to blocking"
        time.sleep(0.001)


def test_chunks_run_on_several_threads_and_results_are_complete():
    par = Parallel()
    par.threads = 3
    seen, out = set(), np.zeros(64)

    def chunk(i, tid):
        seen.add(tid)
        out[i] = i * i
        time.sleep(0.002)  # long enough that the workers get chunks too
    with par.session():
        par.run(chunk, 64)
    np.testing.assert_array_equal(out, np.arange(64) ** 2)
    assert len(seen) >= 2 and seen <= {0, 1, 2}
    par.stop()


def test_errors_in_chunks_reach_the_caller():
    par = Parallel()
    par.threads = 2

    def chunk(i, tid):
        if i == 5:
            raise ZeroDivisionError("chunk 5")
    with pytest.raises(ZeroDivisionError, match="chunk 5"):
        par.run(chunk, 20)
    par.stop()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_idle_workers_block_after_a_call_and_use_no_cpu():
    """After the session (a model call) ends, the workers block on their Event: no CPU while idle."""
    par = Parallel()
    par.threads = 2
    with par.session():
        for _ in range(5):
            par.run(lambda i, tid: sum(range(2000)), 16)
    _wait_blocked(par)
    ids = list(par._native)
    assert ids, "a worker thread was started"
    before = [_cpu_ticks(t) for t in ids]
    time.sleep(0.3)
    assert [_cpu_ticks(t) for t in ids] == before  # 0.3 s idle: not one 10 ms tick used
    assert par.idle_workers_blocked()
    par.stop()


def test_workers_poll_only_inside_a_session(monkeypatch):
    """Inside a call the workers stay awake between regions (up to SPIN_S); after it they block."""
    from overhead.engine import threadpool
    monkeypatch.setattr(threadpool, "SPIN_S", 60.0)  # so that "awake" cannot time out during the test
    par = Parallel()
    par.threads = 2
    with par.session():
        par.run(lambda i, tid: time.sleep(0.001), 8)
        time.sleep(0.02)
        assert not par.idle_workers_blocked()
    _wait_blocked(par)
    par.stop()


def test_engine_call_leaves_workers_blocked(monkeypatch):
    """A real model call with split steps: afterwards the engine's workers are blocked."""
    keras = pytest.importorskip("keras")
    from overhead import engine
    from overhead.engine import views
    monkeypatch.setattr(views, "PAR_MIN_FLOPS", 1e5)
    model = keras.Sequential([keras.Input((16, 16, 8)), keras.layers.Conv2D(16, 3, padding="same")])
    net = engine.from_keras(model, threads=2)
    x = np.random.default_rng(0).random((2, 16, 16, 8), dtype=np.float32)
    np.testing.assert_allclose(net(x), np.asarray(model(x)), atol=1e-4)
    assert net.plan(2).parallel and net._par._workers
    _wait_blocked(net._par)
