"""The LoadGen experiment's pure parts: bisection, bad input, rows, the points log, LoadGen's log parser."""
import json

import numpy as np
import pandas as pd
import pytest
from study import run_loadgen

from loadgen_helpers import lg_fakes  # noqa: F401  (a fixture)
from overhead.experiments import loadgen, loadgen_core, loadgen_sut


# --------------------------------------------------------------------------- bisection

def _bisect_against(capacity, **kw):
    """Drive next_qps with a perfect oracle: VALID iff qps <= capacity."""
    done = []
    while True:
        q = loadgen.next_qps(done, **kw)
        if q is None:
            return done
        done.append((q, q <= capacity))


@pytest.mark.parametrize("cap", [37.0, 480.0, 5_000.0, 90_000.0])
def test_bisection_brackets_the_capacity_within_its_precision(cap):
    done = _bisect_against(cap, workers=1, service_s=1e-3, bound_ms=10, precision=0.1, max_points=20)
    found = loadgen.capacity(done)
    assert found <= cap and found >= cap / 1.1 / 1.001
    assert done[0][0] == pytest.approx(500.0)  # first guess: half of 1 / service time


def test_bisection_respects_max_points_and_stops_when_one_call_exceeds_the_bound():
    assert len(_bisect_against(1e9, service_s=1e-3, max_points=4)) == 4
    slow = _bisect_against(0.0, service_s=0.05, bound_ms=10)  # 50 ms per call, 10 ms bound: one run says it
    assert len(slow) == 1 and loadgen.capacity(slow) == 0.0


def test_bisection_stops_halving_below_the_floor():
    done = _bisect_against(10.0, service_s=1e-3, bound_ms=10, floor=85.0)  # 500, 125, then 31 < 85: the floor
    assert [q for q, _ in done] == [500.0, 125.0, 85.0] and loadgen.capacity(done) == 0.0
    done = _bisect_against(90.0, service_s=1e-3, bound_ms=10, floor=85.0)  # ResNet-18's case: held at the floor
    assert [q for q, _ in done][:3] == [500.0, 125.0, 85.0] and 85.0 <= loadgen.capacity(done) <= 90.0
    assert loadgen.min_qps(loadgen.SETTINGS) == pytest.approx(500 / (0.9 * 30), abs=0.1)


def test_a_slow_model_asks_for_the_queries_its_run_can_hold():
    # ResNet-18 serves ~60 QPS on one core: a fixed 1,024 queries could never fit a 12 s run ("exited early",
    # INVALID at every load), so no capacity was ever found for it
    from overhead.experiments.loadgen_core import EARLY_STOP_MIN_QUERIES, SLOW_CAP_MS, server_run_limits
    s = loadgen.SETTINGS
    n0, cap0 = s["server_min_queries"], s["server_max_duration_ms"]
    assert server_run_limits(s, 10_000) == (n0, cap0)                      # fast models: the stage's run
    for q in (5, 30, 60):
        n, cap = server_run_limits(s, q)
        assert EARLY_STOP_MIN_QUERIES <= n <= n0 and cap0 <= cap <= SLOW_CAP_MS
        if q >= loadgen.min_qps(s):
            assert n <= q * cap / 1e3 * 0.95, (q, n, cap)                  # the queries fit the cap
    assert loadgen.min_qps(s) * SLOW_CAP_MS / 1e3 >= EARLY_STOP_MIN_QUERIES
    short = dict(s, server_max_duration_ms=2000)  # a path slower than its bound: one short run says so
    assert server_run_limits(short, 7, stretch=False) == (n0, 2000)


def test_bisection_goes_down_until_valid():
    done = _bisect_against(20.0, service_s=1e-3, bound_ms=10, precision=0.2, max_points=30)
    assert [v for _, v in done][:3] == [False, False, False]
    assert 20 / 1.2 <= loadgen.capacity(done) <= 20


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kw, words", [
    ({"scenarios": ["Offline"]}, ["unknown scenario 'Offline'", "SingleStream, Server"]),
    ({"bounds_ms": {"cnn_seed": 0}}, ["bound", "> 0 ms", "cnn_seed"]),
    ({"bounds_ms": {"cnn_seed": -5.0}}, ["bound", "> 0 ms"]),
    ({"qps": [100, 0]}, ["QPS must be > 0", "--qps"]),
    ({"qps": [float("nan")]}, ["QPS must be > 0"]),
    ({"paths": ["test.single_thread"], "strategies": ("threads",)}, ["cannot run under threads", "--strategy"]),
    ({"paths": ["no.such.path"]}, ["unknown backend 'no.such.path'"]),
    ({"strategies": ("fibers",)}, ["unknown strategy 'fibers'"]),
    ({"workers": 0}, ["workers must be a positive integer"]),
])
def test_bad_input_raises_one_line_value_error(kw, words, lg_fakes):
    with pytest.raises(loadgen.LoadgenInputError) as err:
        loadgen.check_inputs(**kw)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_run_rejects_bad_input_before_writing_anything(tmp_path, lg_fakes):
    with pytest.raises(loadgen.LoadgenInputError):
        run_loadgen(["cnn_seed"], ["numpy"], bounds_ms=-1, out_dir=tmp_path / "out")
    with pytest.raises(loadgen.LoadgenInputError):
        run_loadgen(["cnn_seed"], ["numpy"], scenarios=("Server", "MultiStream"), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_path_that_can_run_under_threads_is_accepted(lg_fakes):
    loadgen.check_inputs(paths=["test.single_thread"], strategies=("thread", "processes"))
    loadgen.check_inputs(paths=["litert", "numpy", "noop"], strategies=("threads",), bounds_ms={"m": 0.5}, qps=[1])


# --------------------------------------------------------------------------- planning

def test_plan_runs_server_bisection_of_small_models_first_and_quick_is_small():
    items = loadgen.plan(["cnn_seed", "resnet18_32px"], threads=(1, None))
    first_ss = next(i for i, it in enumerate(items) if it["scenario"] == "SingleStream")
    assert items[0]["scenario"] == "Server" and items[0]["model"] == "cnn_seed" and first_ss > 0
    server = {it["path"] for it in items if it["scenario"] == "Server" and it["strategy"] == "thread"
              and it["transport"] == "inproc"}
    assert server == set(loadgen.SERVER_PATHS)
    bounds = {it["model"]: it["bound_ms"] for it in items if it["scenario"] == "Server"}
    assert bounds == {"cnn_seed": 10.0, "resnet18_32px": 100.0}
    batching = [it for it in items if it["strategy"] == "batching"]
    assert {(b["batching"]["wait_ms"], b["batching"]["max_batch"]) for b in batching} == set(loadgen.BATCHING_GRID)
    assert all(it["model"] == "cnn_seed" for it in batching)
    assert len({it["key"] for it in items}) == len(items)
    resnet = {it["path"] for it in items if it["model"] == "resnet18_32px" and it["scenario"] == "Server"}
    assert resnet == set(loadgen.LARGE_SERVER_PATHS)  # the budget goes to the small models' bisections
    procs = {it["path"] for it in items if it["strategy"] == "processes"}
    assert procs == set(loadgen.PROCESS_PATHS)
    http_server = {it["path"] for it in items if it["transport"] == "http" and it["scenario"] == "Server"}
    assert http_server == set(loadgen.HTTP_SERVER_PATHS)
    noop = [it for it in items if it["path"] == "noop" and it["transport"] == "http" and it["scenario"] == "Server"]
    grid = {(p, w) for p in loadgen.HTTP_PAYLOADS for w in loadgen.HTTP_SERVER_WORKERS}
    assert {(it["payload"], it["server_workers"]) for it in noop if it["client"] == "loadgen"} == grid
    assert {(it["payload"], it["server_workers"]) for it in noop if it["client"] == "wrk"} == grid
    assert all(it["clients"] == loadgen.HTTP_CLIENTS_PER_WORKER * it["server_workers"] for it in noop
               if it["client"] == "loadgen")
    quick = loadgen.plan(["cnn_seed"], quick=True)
    server_q = [it for it in quick if it["scenario"] == "Server"]
    assert len(server_q) == 1 and server_q[0]["qps"] == [loadgen.QUICK_SERVER[1]]
    assert {it["path"] for it in quick if it["scenario"] == "SingleStream" and it["transport"] == "inproc"} == {
        "noop", *loadgen.QUICK_PATHS}


def test_method_states_every_reduction_from_mlperf():
    text = loadgen.method_text(quick=True)
    for w in ("600 s", "270,336", "1,024", "250 ms", "early-stopping", "no accuracy run", "share the machine",
              "not resolved", "at least 10 s", "queue is not growing", "flagged"):
        assert w in text, w


# --------------------------------------------------------------------------- rows and the points log

def _point(q, valid, **kw):
    return {"target_qps": q, "validity": "VALID" if valid else "INVALID", "achieved_qps": q, "n_queries": 1024,
            "p50_us": 100.0, "p90_us": 200.0, "p99_us": 300.0, "parity": "pass", "batch_hist": {1: 1024},
            "phase": "confirm", "service_us": 100.0, **kw}


def test_rows_mark_the_bisection_answer_and_parity_failures():
    it = loadgen._item("Server", "m", "sha", "numpy", 1, bound_ms=10)
    rows = loadgen.rows_of(it, [_point(100, True), _point(200, False), _point(141, True),
                                _point(168, False, parity="fail", parity_reason="logit_rel_err 1.4 > 0.001")],
                           None, {"machine": "box"})
    frame = pd.DataFrame(rows).reindex(columns=loadgen.COLUMNS)
    assert frame["max_valid"].tolist() == [False, False, True, False]
    bad = frame.iloc[3]
    assert bad.status == "failed" and bad.reason.startswith("parity under load: logit_rel_err")
    assert (frame.status.iloc[:3] == "ok").all() and set(frame.role) == {"bisection"}
    failed = loadgen.rows_of(it, [], "child died (status -11)", {"machine": "box"})
    assert failed[0]["status"] == "failed" and "child died" in failed[0]["reason"]


def test_points_log_keeps_finished_points_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "loadgen.points.jsonl"
    log = loadgen.PointLog(path)
    log.append({"key": "k", "point": _point(100, True)})
    log.append({"key": "k", "point": _point(200, False)})
    with open(path, "a") as fh:
        fh.write('{"key": "k", "point": {"target_q')  # killed in mid-write
    again = loadgen.PointLog(path)
    assert [p["target_qps"] for p in again.points("k")] == [100, 200] and again.finished("k") is None
    assert path.read_text().count("\n") == 2
    again.append({"key": "k", "end": True})
    assert loadgen.PointLog(path).finished("k")


def test_parse_detail_reads_loadgen_result_keys():
    lines = [":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": {"is_error": False}}) for k, v in [
        ("result_validity", "VALID"), ("early_stopping_met", True), ("result_query_count", 1024),
        ("result_99.00_percentile_latency_ns", 1_500_000), ("test_datetime", "x")]]
    got = loadgen_sut.parse_detail("\n".join(["noise", *lines]))
    assert got["result_validity"] == "VALID" and got["early_stopping_met"] is True
    assert got["result_99.00_percentile_latency_ns"] == 1_500_000 and "test_datetime" not in got


def test_batching_pads_to_allowed_sizes():
    assert loadgen_core.allowed_batches(8) == [1, 2, 4, 8]
    assert loadgen_core.allowed_batches(32) == [1, 2, 4, 8, 16, 32]
    assert loadgen_core.allowed_batches(6) == [1, 2, 4, 6]
    assert [loadgen_core.pad_size(n, [1, 2, 4, 8]) for n in (1, 2, 3, 5, 8)] == [1, 2, 4, 8, 8]


def test_parity_of_kept_outputs_fails_on_reversed_scores(lg_fakes):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (40, 10))
    ref = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    good = [(i, ref[i]) for i in range(0, 40, 3)]
    assert loadgen_sut.parity_of("numpy", good, ref)["parity"] == "pass"
    bad = loadgen_sut.parity_of("test.wrong", [(i, ref[i][::-1]) for i in range(0, 40, 3)], ref)
    assert bad["parity"] == "fail" and "logit_rel_err" in bad["parity_reason"] and bad["parity_n"] == 14
    assert loadgen_sut.parity_of("noop", good, ref)["parity"] == ""
