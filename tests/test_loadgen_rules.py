"""The rules a Server maximum must pass: long confirming runs, a stationary queue, the capacity bound."""
import numpy as np
import pandas as pd
import pytest

from overhead.experiments import loadgen
from overhead.experiments import loadgen_rules as rules


def _lat(values, dt=1e-3):
    return [(i * dt, v) for i, v in enumerate(values)]


def test_a_steady_queue_is_stationary_and_a_growing_one_is_not():
    rng = np.random.default_rng(0)
    steady = rng.exponential(2e-3, 3000) + 1e-3
    st = rules.stationarity(_lat(steady), bound_s=0.01, service_s=1e-3)
    assert st["stationary"] is True and 0.8 < st["lat_growth"] < 1.25
    growing = np.linspace(1e-3, 9e-3, 3000)  # the queue grows all run long, p99 still under the 10 ms bound
    st = rules.stationarity(_lat(growing), bound_s=0.01, service_s=1e-3)
    assert st["stationary"] is False and st["lat_growth"] > 3
    assert "queue growing" in rules.growing_reason(st) and "last third" in rules.growing_reason(st)
    # doubling within noise of the service time is not a queue: 10 us -> 30 us against a 10 ms bound
    tiny = np.linspace(10e-6, 30e-6, 3000)
    assert rules.stationarity(_lat(tiny), bound_s=0.01, service_s=5e-6)["stationary"] is True
    assert rules.stationarity(_lat(growing[:10]), bound_s=0.01, service_s=1e-3)["stationary"] is None


def test_order_is_by_issue_time_not_completion():
    growing = list(zip(np.linspace(0, 10, 900), np.linspace(1e-3, 9e-3, 900)))
    shuffled = [growing[i] for i in np.random.default_rng(1).permutation(900)]
    assert rules.stationarity(shuffled, bound_s=0.01, service_s=1e-3)["stationary"] is False


def _confirm(truth, lo, hi, **kw):
    done = []
    while (q := rules.next_confirm(done, lo=lo, hi=hi, **kw)) is not None:
        done.append((q, q <= truth))
    return done


def test_confirming_runs_check_the_maximum_and_the_failing_point_above():
    done = _confirm(1000, lo=900, hi=1050)
    assert done == [(900, True), (1050, False)] and rules.confirmed_max(done) == 900
    # the short runs overestimated: the long ones step down until one holds, the failing one above is long too
    done = _confirm(600, lo=900, hi=1050)
    assert done[0] == (900, False) and rules.confirmed_max(done) == pytest.approx(576)
    assert any(not v and q > rules.confirmed_max(done) for q, v in done)
    assert len(_confirm(1, lo=900, hi=1050)) == rules.CONFIRM_MAX_RUNS
    assert _confirm(1, lo=900, hi=1050, floor=700) == [(900, False), (720, False)]  # 576 < floor: stop
    assert _confirm(1000, lo=None, hi=50) == []  # nothing held short: no maximum to confirm
    up = _confirm(5000, lo=900, hi=None)  # no failing point yet: step up from the maximum
    assert up[:2] == [(900, True), (1125, True)]


def test_capacity_bound():
    assert rules.capacity_bound(1e-3) == pytest.approx(1200)
    assert rules.capacity_bound(1e-3, workers=2, batch=8) == pytest.approx(19200)
    assert rules.capacity_bound(None) is None and rules.capacity_bound(0.0) is None


def _point(q, valid, phase="confirm", service_us=1000.0, **kw):
    return {"target_qps": q, "validity": "VALID" if valid else "INVALID", "achieved_qps": q, "n_queries": 1024,
            "p50_us": 100.0, "p90_us": 200.0, "p99_us": 300.0, "parity": "pass", "batch_hist": {1: 1024},
            "phase": phase, "service_us": service_us, "duration_s": 10.5 if phase == "confirm" else 0.5, **kw}


def test_rows_publish_only_long_possible_runs():
    it = loadgen._item("Server", "m", "sha", "numpy", 1, bound_ms=10)
    pts = [_point(500, True, "steer"), _point(1100, True, "steer"), _point(1300, False, "steer"),
           _point(1100, True), _point(1300, False)]
    frame = pd.DataFrame(loadgen.rows_of(it, pts, None, {"machine": "box"})).reindex(columns=loadgen.COLUMNS)
    assert frame["max_valid"].tolist() == [False, False, False, True, False]
    assert (frame["status"] == "ok").all() and frame["capacity_qps"].iloc[0] == pytest.approx(1200)
    # the same maximum from a path whose calls take 2 ms: 1,100 QPS is impossible for one worker
    slow = [dict(p, service_us=2000.0) for p in pts]
    frame = pd.DataFrame(loadgen.rows_of(it, slow, None, {"machine": "box"}))
    flagged = frame[frame["status"] == "flagged"]
    assert set(flagged["target_qps"]) == {1100} and "capacity bound broken" in flagged["reason"].iloc[0]
    assert not frame["max_valid"].any()
    # only short runs: nothing is published as a maximum
    frame = pd.DataFrame(loadgen.rows_of(it, pts[:3], None, {"machine": "box"}))
    assert not frame["max_valid"].any()


def test_the_report_publishes_by_the_stage_s_rule():
    from overhead.report import underload

    assert underload.CONFIRM_MIN_S == rules.CONFIRM_MIN_S
    assert rules.CONFIRM_SETTINGS["confirm_min_duration_ms"] == rules.CONFIRM_MIN_S * 1e3
