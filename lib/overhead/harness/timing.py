"""Latency measurement (pyperf / asv style).

One sample is one call timed with ``perf_counter_ns``, so the arrays are real per-call latency
distributions. Warm-up calls are discarded; the garbage collector stays ON while sampling (as users
run), with ``gc.collect()`` before every turn so no turn inherits another's garbage; ``interleaved``
rotates the order of competing functions each round so slow drift of a shared, noisy machine is
spread over all of them instead of biasing whichever ran last. Statistics live in
:mod:`overhead.harness.stats`.
"""
from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Mapping

import numpy as np

# Module-level so tests can substitute a deterministic clock; read through the global each call.
_clock = time.perf_counter_ns

# --------------------------------------------------------------------------- sampling

@contextmanager
def gc_disabled() -> Iterator[None]:
    """Collect once, then keep the GC off; the previous state is restored even on exceptions.

    Not used for the latency samples (those run with the GC on); kept for the stack-sampling
    breakdown, whose sampler must not be interrupted.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _warm_up(fn: Callable[[], object], calls: int, seconds: float) -> int:
    """Call fn until at least `calls` calls AND `seconds` have passed; return the number of calls."""
    clock = _clock
    deadline = clock() + int(seconds * 1e9)
    done = 0
    while done < calls or clock() < deadline:
        fn()
        done += 1
    return done


def _sample(fn: Callable[[], object], budget_s: float, min_samples: int, max_samples: int) -> list[int]:
    """Time single calls until the budget is spent (and min_samples reached) or max_samples."""
    clock = _clock
    samples: list[int] = []
    append = samples.append
    deadline = clock() + int(budget_s * 1e9)
    while len(samples) < max_samples:
        t0 = clock()
        fn()
        t1 = clock()
        append(t1 - t0)
        if t1 >= deadline and len(samples) >= min_samples:
            break
    return samples


def _check_bounds(min_samples: int, max_samples: int) -> None:
    if min_samples < 1 or max_samples < min_samples:
        raise ValueError(f"need 1 <= min_samples <= max_samples, got {min_samples}, {max_samples}")


def measure(fn: Callable[[], object], *, budget_s: float = 1.0, min_samples: int = 10,
            max_samples: int = 100_000, warmup_calls: int = 5, warmup_s: float = 0.2) -> np.ndarray:
    """Per-call latencies of `fn()` in ns (int64), warm-up discarded, GC on (collected first).

    Sampling stops once `budget_s` is spent and at least `min_samples` were taken, or at
    `max_samples`, whichever comes first.
    """
    _check_bounds(min_samples, max_samples)
    _warm_up(fn, warmup_calls, warmup_s)
    gc.collect()
    samples = _sample(fn, budget_s, min_samples, max_samples)
    return np.asarray(samples, dtype=np.int64)


def interleaved(fns: Mapping[str, Callable[[], object]], *, budget_s: float, rounds: int = 5,
                min_samples: int | Mapping[str, int] = 10, max_samples: int = 100_000, warmup_calls: int = 5,
                warmup_s: float = 0.2, round_warmup_calls: int = 1) -> dict[str, np.ndarray]:
    """Measure several functions in `rounds` rounds, rotating their order every round.

    `budget_s`, `min_samples` and `max_samples` are per function (split evenly over the rounds);
    `min_samples` may be a mapping name -> floor, so fast and slow functions interleave with
    floors of their own. Every function is warmed up once before the first round;
    `round_warmup_calls` extra calls are discarded each time a function gets its turn, since the
    previous one evicted its caches. The GC stays on; ``gc.collect()`` runs before every turn.
    """
    names = list(fns)
    floors = ({nm: int(min_samples[nm]) for nm in names} if isinstance(min_samples, Mapping)
              else {nm: int(min_samples) for nm in names})
    for nm in names:
        _check_bounds(floors[nm], max(max_samples, floors[nm]))
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    per_round_min = {nm: math.ceil(floors[nm] / rounds) for nm in names}
    per_round_max = {nm: max(per_round_min[nm], max_samples // rounds) for nm in names}
    per_round_budget = budget_s / rounds
    for name in names:
        _warm_up(fns[name], warmup_calls, warmup_s)
    collected: dict[str, list[int]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            _warm_up(fn, round_warmup_calls, 0.0)
            gc.collect()
            collected[name] += _sample(fn, per_round_budget, per_round_min[name], per_round_max[name])
    return {name: np.asarray(s, dtype=np.int64) for name, s in collected.items()}


def _noop() -> None:
    return None


def timer_overhead_ns(budget_s: float = 0.2) -> float:
    """Median cost (ns) of the timing loop around an empty call: a floor on every sample."""
    samples = measure(_noop, budget_s=budget_s, min_samples=1000, warmup_calls=100, warmup_s=0.02)
    return float(np.median(samples))


def gemm_gflops(n: int = 2048, threads: int | None = None, repeats: int = 5) -> float:
    """float32 `np.matmul` rate of an n x n product in GFLOP/s (2 n^3 flops, median of repeats)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    if threads is None:
        limit = nullcontext()
    else:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=threads, user_api="blas")
    with limit:
        np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults of `out`
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter_ns() - t0)
    return 2.0 * n**3 / float(np.median(times))  # flops per ns == GFLOP/s


