"""Latency measurement (pyperf / asv style), statistics, and atomic result files.

One sample is one call timed with ``perf_counter_ns``, so the arrays are real per-call latency
distributions. Warm-up calls are discarded; the garbage collector stays ON while sampling (as users
run), with ``gc.collect()`` before every turn so no turn inherits another's garbage; ``interleaved``
rotates the order of competing functions each round so slow drift of a shared, noisy machine is
spread over all of them instead of biasing whichever ran last.

Statistics (:func:`summarize`): the median with its run-level 95 % interval and the between-runs
stability rule (:mod:`overhead.runstats`: :func:`~overhead.runstats.median_ci`,
:func:`~overhead.runstats.disagreement`), per-call jitter (p90/p99 over the median), and pyperf's
checks kept beside them as ``unstable_pyperf`` (:func:`stability_reasons`). The remedy for an
unstable row is more runs (fresh processes), never keeping the calmer attempt: see :mod:`overhead.sweep`.
"""
from __future__ import annotations

import gc
import math
import os
import tempfile
import time
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from overhead import runstats

# Module-level so tests can substitute a deterministic clock; read through the global each call.
_clock = time.perf_counter_ns

CI_METHOD = runstats.CI_METHOD  # the one interval of the median: overhead.runstats.median_ci
# pyperf's stability checks (`pyperf check`): std >= 10 % of the mean, min or max >= 50 % away from the
# mean, on "values" lasting >= 1 ms (pyperf warns about raw values shorter than 1 ms); plus our floor
# on runs and values per run.
UNSTABLE_CV = 0.10
OUTLIER_FRACTION = 0.50
VALUE_MIN_NS = 1_000_000
MIN_RUNS = 3
MIN_VALUES = 20  # per run, slow paths
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


def cv_of(samples_ns) -> float:
    """Coefficient of variation std(ddof=1)/mean; 0 for fewer than two samples."""
    x = np.asarray(samples_ns, dtype=np.float64)
    if x.size < 2 or x.mean() == 0:
        return 0.0
    return float(x.std(ddof=1) / x.mean())


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

def check_values(samples, run_lengths: Sequence[int] | None = None,
                 min_value_ns: float = VALUE_MIN_NS) -> np.ndarray:
    """pyperf-style "values": means of consecutive calls lasting >= min_value_ns, within each run.

    pyperf judges stability on values that each last long enough for the clock and the scheduler
    not to dominate (it warns below 1 ms); a single 10 us call cannot be judged that way, a block of
    100 of them can. Calls of >= 1 ms are values on their own. Each run is cut into n // k blocks
    of (nearly) equal size, k = ceil(1 ms / median call), so no short remainder block is judged.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    if sum(lengths) != x.size:
        raise ValueError(f"run lengths {lengths} do not add up to {x.size} samples")
    med = float(np.median(x)) if x.size else 0.0
    k = max(1, math.ceil(min_value_ns / med)) if med > 0 else 1
    out, start = [], 0
    for n in lengths:
        run = x[start:start + n]
        start += n
        if n == 0:
            continue
        blocks = max(1, n // k)
        edges = np.linspace(0, n, blocks + 1).round().astype(int)
        out += [run[a:b].mean() for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return np.asarray(out, dtype=np.float64)


def stability_reasons(samples, run_lengths: Sequence[int] | None = None, *, min_runs: int = MIN_RUNS,
                      min_values: int = MIN_VALUES) -> list[str]:
    """pyperf's checks on a measurement; an empty list means stable.

    - too few runs (fresh processes) or fewer than `min_values` values per run;
    - the standard deviation of the values >= 10 % of their mean;
    - the minimum or the maximum value >= 50 % away from the mean.
    Values are :func:`check_values` (blocks of >= 1 ms), pooled over the runs, so between-process
    differences count as spread, as in pyperf, whose values come from many processes.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    reasons = []
    if len(lengths) < min_runs:
        reasons.append(f"only {len(lengths)} run(s) < {min_runs}")
    if lengths and min(lengths) < min_values:
        reasons.append(f"only {min(lengths)} values in a run < {min_values}")
    values = check_values(x, lengths)
    if values.size < 2:
        reasons.append(f"only {values.size} value(s) of >= {VALUE_MIN_NS / 1e6:g} ms to judge spread")
        return reasons
    mean = float(values.mean())
    if mean <= 0:
        return reasons
    cv = float(values.std(ddof=1)) / mean
    if cv >= UNSTABLE_CV:
        reasons.append(f"std is {cv:.0%} of the mean (>= {UNSTABLE_CV:.0%})")
    low, high = (mean - values.min()) / mean, (values.max() - mean) / mean
    if low >= OUTLIER_FRACTION:
        reasons.append(f"min is {low:.0%} below the mean")
    if high >= OUTLIER_FRACTION:
        reasons.append(f"max is {high:.0%} above the mean")
    return reasons


def summarize(samples_ns, run_lengths: Sequence[int] | None = None, *, min_runs: int = 1,
              min_values: int = 1) -> dict:
    """Statistics of per-call samples (ns in, microseconds out) over their runs.

    `run_lengths` splits the samples into runs (fresh processes, in order); None means one run.
    `mad_us` is the unscaled median absolute deviation, median(|x - median(x)|) (no 1.4826 factor).
    `ci_lo_us`/`ci_hi_us` bound the run-level 95 % interval of the median (:data:`CI_METHOD`; NaN
    for n < 6); `unstable` / `unstable_reason` are the between-runs rule
    (:func:`overhead.runstats.disagreement`, with `min_runs` as the floor on runs); `run_spread` =
    largest / smallest run median - 1; `jitter_p90` / `jitter_p99` = p90 / p99 over the median (per-call
    spread, not instability); `cv` = std/mean of the calls (ddof=1); `unstable_pyperf` /
    `unstable_pyperf_reason` are pyperf's checks (:func:`stability_reasons`, floors `min_runs`, `min_values`).
    """
    x = np.asarray(samples_ns, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    lengths = [x.size] if run_lengths is None else [int(n) for n in run_lengths]
    old = stability_reasons(x, lengths, min_runs=min_runs, min_values=min_values)
    level = runstats.run_level(x / 1000.0, lengths, min_runs=max(1, min_runs))
    x = x / 1000.0
    median = float(np.median(x))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    p90, p99 = np.percentile(x, [90, 99])
    cv = std / mean if mean > 0 else 0.0
    return {
        "n": int(x.size),
        "runs": len([n for n in lengths if n]),
        "median_us": median,
        "p90_us": float(p90),
        "p99_us": float(p99),
        "min_us": float(x.min()),
        "mean_us": mean,
        "std_us": std,
        "mad_us": float(np.median(np.abs(x - median))),
        "ci_lo_us": level["ci_lo"],
        "ci_hi_us": level["ci_hi"],
        "ci_method": CI_METHOD,
        "cv": float(cv),
        "run_spread": level["run_spread"],
        "jitter_p90": level["jitter_p90"],
        "jitter_p99": level["jitter_p99"],
        "unstable": level["unstable"],
        "unstable_reason": level["unstable_reason"],
        "unstable_pyperf": bool(old),
        "unstable_pyperf_reason": "; ".join(old),
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
