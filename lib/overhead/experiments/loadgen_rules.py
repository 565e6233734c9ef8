"""The rules a Server point must pass before its QPS is published as a maximum (pure functions).

- **Long enough**: short runs (:data:`SETTINGS` of the stage, 0.5 s) only steer the bisection; the
  maximum and the first failing point above it are run again for at least :data:`CONFIRM_MIN_S` seconds
  (:func:`next_confirm`), and only such runs can be published.
- **Stationary**: a queue that grows during the run is not a sustainable load even when LoadGen's p99
  is still under the bound when the run stops. :func:`stationarity` compares the median latency of the
  last third of the queries (by issue time) with the first third; a run whose median both at least
  doubled and rose by more than a tenth of the bound (or :data:`GROWTH_SERVICE_TIMES` service times) is
  counted INVALID with that reason.
- **Possible**: ``workers x batch / service time`` is the most one configuration can complete per second;
  a maximum above :func:`capacity_bound` (with :data:`CAPACITY_SLACK` for the service time's own noise)
  is impossible, so the row is flagged and never published.
"""
from __future__ import annotations

import numpy as np

CONFIRM_MIN_S = 10.0  # MLPerf: 600 s; the study's budget on a 2-core machine allows 10 s per confirming run
# the stage's settings keys of a confirming run (tests shorten them; the report publishes only >= CONFIRM_MIN_S)
CONFIRM_SETTINGS = {"confirm_min_duration_ms": int(CONFIRM_MIN_S * 1e3), "confirm_min_queries": 1024,
                    "confirm_max_duration_ms": 30_000}


def confirm_settings(settings: dict) -> dict:
    """The LoadGen settings of a confirming run: the stage's ``confirm_*`` keys in place of ``server_*``."""
    c = {**CONFIRM_SETTINGS, **{k: v for k, v in settings.items() if k.startswith("confirm_")}}
    return dict(settings, server_min_duration_ms=c["confirm_min_duration_ms"],
                server_min_queries=c["confirm_min_queries"], server_max_duration_ms=c["confirm_max_duration_ms"])
CONFIRM_MAX_RUNS = 3  # long runs per bisection: the maximum, the failing point above, one more if they disagree
CONFIRM_STEP = 1.25  # a confirming run that fails steps down by this factor
GROWTH_RATIO, GROWTH_BOUND_SHARE, GROWTH_SERVICE_TIMES = 2.0, 0.1, 5.0
CAPACITY_SLACK = 1.2


def stationarity(latencies, *, bound_s: float, service_s: float) -> dict:
    """latencies: [(issue time, seconds)] of one run. Returns the medians of the first and last third (us),
    their ratio and ``stationary`` (None when there are too few queries to tell)."""
    if len(latencies) < 30:
        return {"lat_first_us": None, "lat_last_us": None, "lat_growth": None, "stationary": None}
    lat = np.array([d for _, d in sorted(latencies)], dtype=float)
    third = len(lat) // 3
    first, last = float(np.median(lat[:third])), float(np.median(lat[-third:]))
    rise = last - first
    growing = last >= GROWTH_RATIO * first and rise > max(GROWTH_BOUND_SHARE * bound_s, GROWTH_SERVICE_TIMES * service_s)
    return {"lat_first_us": first * 1e6, "lat_last_us": last * 1e6, "lat_growth": last / first if first > 0 else None,
            "stationary": not growing}


def growing_reason(st: dict) -> str:
    return (f"queue growing: median latency {st['lat_last_us']:,.0f} us in the last third of the run against "
            f"{st['lat_first_us']:,.0f} us in the first ({st['lat_growth']:.3g}x)")


def next_confirm(long_done, *, lo: float | None, hi: float | None, floor: float = 0.0,
                 max_runs: int = CONFIRM_MAX_RUNS, step: float = CONFIRM_STEP) -> float | None:
    """The next long run after the short bisection found VALID `lo` and INVALID `hi` (None: none found).

    First `lo`; when it holds, `hi` (the first failing point above it, or `lo` x step with no `hi`); when
    `lo` fails, step down until a long run holds. Finished when a long VALID run has a long INVALID run
    above it, when nothing was VALID short (no maximum to confirm), or after `max_runs` long runs.
    """
    if not lo:
        return None
    done = [(float(q), bool(v)) for q, v in long_done]
    if not done:
        return float(lo)
    if len(done) >= max_runs:
        return None
    valid = [q for q, v in done if v]
    best = max(valid) if valid else None
    above = [q for q, v in done if not v and (best is None or q > best)]
    if best is not None and above:
        return None
    if best is None:
        q = float(f"{min(q for q, _ in done) / step:.4g}")
        return q if q >= floor else None
    tried = {q for q, _ in done}
    if hi and hi > best and hi not in tried:
        return float(hi)
    return float(f"{best * step:.4g}")


def confirmed_max(long_done) -> float:
    """The highest long run that held (0 when none did)."""
    return max([float(q) for q, v in long_done if v], default=0.0)


def capacity_bound(service_s: float | None, *, workers: int = 1, batch: int = 1) -> float | None:
    """The most queries per second `workers` servers of `batch` queries per call of `service_s` each can
    complete, with :data:`CAPACITY_SLACK` (a batch of B costs at least one call: B / service time is generous)."""
    if not service_s or service_s <= 0 or not np.isfinite(service_s):
        return None
    return CAPACITY_SLACK * max(int(workers), 1) * max(int(batch), 1) / float(service_s)
