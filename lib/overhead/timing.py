"""Latency measurement (pyperf / asv style), statistics, and atomic result files.

One sample is one call timed with ``perf_counter_ns``, so the arrays are real per-call latency
distributions. Warm-up calls are discarded, the garbage collector is off while sampling, and
``interleaved`` rotates the order of competing functions each round so slow drift of a shared,
noisy machine is spread over all of them instead of biasing whichever ran last.
"""
from __future__ import annotations

import gc
import math
import os
import tempfile
import time
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

# Module-level so tests can substitute a deterministic clock; read through the global each call.
_clock = time.perf_counter_ns

UNSTABLE_CV = 0.10  # std >= 10 % of the mean marks a measurement as unstable
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_MAX_N = 5000  # larger samples use an m-out-of-n bootstrap (see _bootstrap_median_ci)
BOOTSTRAP_SEED = 12345


# --------------------------------------------------------------------------- sampling

@contextmanager
def gc_disabled() -> Iterator[None]:
    """Collect once, then keep the GC off; the previous state is restored even on exceptions."""
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
    """Per-call latencies of `fn()` in ns (int64), warm-up discarded, GC off while timing.

    Sampling stops once `budget_s` is spent and at least `min_samples` were taken, or at
    `max_samples`, whichever comes first.
    """
    _check_bounds(min_samples, max_samples)
    _warm_up(fn, warmup_calls, warmup_s)
    with gc_disabled():
        samples = _sample(fn, budget_s, min_samples, max_samples)
    return np.asarray(samples, dtype=np.int64)


def interleaved(fns: Mapping[str, Callable[[], object]], *, budget_s: float, rounds: int = 5,
                min_samples: int = 10, max_samples: int = 100_000, warmup_calls: int = 5,
                warmup_s: float = 0.2, round_warmup_calls: int = 1) -> dict[str, np.ndarray]:
    """Measure several functions in `rounds` rounds, rotating their order every round.

    `budget_s`, `min_samples` and `max_samples` are per function (split evenly over the rounds).
    Every function is warmed up once before the first round; `round_warmup_calls` extra calls
    are discarded each time a function gets its turn, since the previous one evicted its caches.
    """
    _check_bounds(min_samples, max_samples)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(fns)
    per_round_min = math.ceil(min_samples / rounds)
    per_round_max = max(per_round_min, max_samples // rounds)
    per_round_budget = budget_s / rounds
    for name in names:
        _warm_up(fns[name], warmup_calls, warmup_s)
    collected: dict[str, list[int]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            _warm_up(fn, round_warmup_calls, 0.0)
            with gc_disabled():
                collected[name] += _sample(fn, per_round_budget, per_round_min, per_round_max)
    return {name: np.asarray(s, dtype=np.int64) for name, s in collected.items()}


def cv_of(samples_ns) -> float:
    """Coefficient of variation std(ddof=1)/mean; 0 for fewer than two samples."""
    x = np.asarray(samples_ns, dtype=np.float64)
    if x.size < 2 or x.mean() == 0:
        return 0.0
    return float(x.std(ddof=1) / x.mean())


def measure_stable(fn: Callable[[], object], *, max_remeasures: int = 2,
                   **measure_kwargs) -> tuple[np.ndarray, int]:
    """`measure`, repeated while the result is unstable (cv >= UNSTABLE_CV), up to max_remeasures.

    Returns (samples of the attempt with the lowest cv, number of re-measures done).
    """
    best = measure(fn, **measure_kwargs)
    best_cv = cv_of(best)
    done = 0
    while best_cv >= UNSTABLE_CV and done < max_remeasures:
        done += 1
        attempt = measure(fn, **measure_kwargs)
        attempt_cv = cv_of(attempt)
        if attempt_cv < best_cv:
            best, best_cv = attempt, attempt_cv
    return best, done


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


# --------------------------------------------------------------------------- statistics

def _bootstrap_median_ci(x: np.ndarray, resamples: int, seed: int,
                         max_n: int = BOOTSTRAP_MAX_N) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the median.

    For n > max_n this is an m-out-of-n bootstrap (m = max_n): medians of size-m resamples
    spread sqrt(n/m) times wider than size-n ones, so their deviations from the sample median
    are scaled by sqrt(m/n). That caps the cost at resamples * max_n draws.
    """
    n = x.size
    median = float(np.median(x))
    if n < 2:
        return median, median
    m = min(n, max_n)
    rng = np.random.default_rng(seed)
    medians = np.empty(resamples)
    chunk = max(1, 2_000_000 // m)  # bound memory to ~16 MB of indices per chunk
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, m))
        medians[start:stop] = np.median(x[idx], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    scale = math.sqrt(m / n)
    return median + (lo - median) * scale, median + (hi - median) * scale


def summarize(samples_ns, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Statistics of per-call samples (ns in, microseconds out).

    `mad_us` is the unscaled median absolute deviation, median(|x - median(x)|) (no 1.4826 factor).
    `ci_lo_us`/`ci_hi_us` bound a seeded bootstrap 95 % CI of the median; `cv` = std/mean with
    std of ddof=1; `unstable` is std >= 10 % of the mean.
    """
    x = np.asarray(samples_ns, dtype=np.float64).ravel() / 1000.0
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    median = float(np.median(x))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    ci_lo, ci_hi = _bootstrap_median_ci(x, resamples, seed)
    p90, p99 = np.percentile(x, [90, 99])
    cv = std / mean if mean > 0 else 0.0
    return {
        "n": int(x.size),
        "median_us": median,
        "p90_us": float(p90),
        "p99_us": float(p99),
        "min_us": float(x.min()),
        "mean_us": mean,
        "std_us": std,
        "mad_us": float(np.median(np.abs(x - median))),
        "ci_lo_us": float(ci_lo),
        "ci_hi_us": float(ci_hi),
        "cv": float(cv),
        "unstable": bool(cv >= UNSTABLE_CV),
    }


# --------------------------------------------------------------------------- atomic files

class UnwritableDirectoryError(OSError):
    """The folder meant to hold a result file cannot be created or written."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; results should get the usual permissions of a new file.
_FILE_MODE = 0o666 & ~_umask()


def _prepare_dir(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableDirectoryError(
            f"cannot write {path}: folder {path.parent} cannot be created ({exc.strerror or exc})") from exc


@contextmanager
def atomic_open(path, mode: str = "w", **open_kwargs):
    """Open a temp file beside `path`; on success it replaces `path`, on any error it is removed.

    Readers therefore see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    _prepare_dir(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UnwritableDirectoryError(
            f"cannot write {path}: folder {path.parent} is not writable ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_csv(df, path, **to_csv_kwargs) -> Path:
    """Write a DataFrame as CSV atomically (index=False unless given)."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, **to_csv_kwargs)
    return Path(path)


def save_samples(path, samples: Mapping[str, np.ndarray]) -> Path:
    """Save named raw sample arrays to a compressed .npz, atomically (the path is used as given)."""
    arrays = {str(name): np.asarray(values) for name, values in samples.items()}
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def load_samples(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
