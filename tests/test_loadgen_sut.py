"""The SUT under LoadGen in real child processes, on fake paths with a known service time or wrong answers."""
import json

import pytest
from study import run_loadgen

from loadgen_helpers import FAST, lg_fakes  # noqa: F401  (a fixture)
from overhead.experiments import loadgen

SERVICE_S = 0.002  # test.fixed: 2 ms per call, sleeping (the GIL is free, as in TF or ORT)
BOUND_MS = 100.0  # 50 service times: one worker's capacity under the bound is close to 1 / service time


def _run(data_env, out, **kw):
    args = dict(paths=[], server_paths=[], threads=(1,), strategies=(), strategy_paths=(), batching_paths=(),
                http_paths=[], bounds_ms={"cnn_seed": BOUND_MS}, settings=FAST, out_dir=out, progress=False,
                data_dir=data_env, machine="testbox")
    return run_loadgen(["cnn_seed"], **{**args, **kw})


@pytest.mark.slow
def test_known_service_time_p50_and_capacity_and_resume(data_env, lg_fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("OVERHEAD_TEST_SERVICE_S", str(SERVICE_S))
    frame = _run(data_env, tmp_path / "a", paths=["test.fixed"], server_paths=["test.fixed"],
                 scenarios=("Server", "SingleStream"), bisect={"precision": 0.15})
    assert (tmp_path / "a" / "loadgen.csv").exists() and (tmp_path / "a" / "loadgen.meta.json").exists()
    ss = frame[(frame.scenario == "SingleStream") & (frame.path == "test.fixed")].iloc[0]
    # one query at a time (the lowest load): p50 is the service time plus the SUT's own microseconds
    assert SERVICE_S * 1e6 <= ss.p50_us <= 1.25 * SERVICE_S * 1e6, ss.p50_us
    assert ss.validity == "VALID" and ss.parity == "pass" and ss.status == "ok"
    noop = frame[(frame.scenario == "SingleStream") & (frame.path == "noop")].iloc[0]
    assert noop.p50_us < ss.p50_us / 10
    server = frame[(frame.scenario == "Server") & (frame.path == "test.fixed")]
    assert set(server.role) == {"bisection"} and server.max_valid.sum() == 1
    best = server[server.max_valid].iloc[0]
    assert best.phase == "confirm" and best.duration_s >= FAST["confirm_min_duration_ms"] / 1e3  # a long run
    assert (server[server.phase == "confirm"].validity == "INVALID").any()  # and a long failing run above it
    assert (server.status == "ok").all() and (best.target_qps <= best.capacity_qps)
    known = 1 / SERVICE_S  # what one worker of 2 ms can complete per second
    # at most what one worker can complete; at least 0.8x of it on a quiet machine (a busy one slows the 2 ms
    # calls, and the confirming runs then step down by 1.25x: 0.5x allows two steps)
    assert 0.5 * known <= best.target_qps <= 1.2 * known, server[["target_qps", "validity", "p99_us"]]
    assert best.validity == "VALID" and best.p99_us <= BOUND_MS * 1e3
    assert (server[(server.target_qps > best.target_qps) & (server.phase == "confirm")].validity == "INVALID").all()
    assert (server.parity == "pass").all()

    # a bisection killed after two finished points resumes from them
    out_b = tmp_path / "b"
    out_b.mkdir()
    keep, kept = [], 0
    for line in (tmp_path / "a" / "loadgen.points.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["key"].startswith("Server|") and "point" in rec and kept < 2:
            keep.append(line)
            kept += 1
    (out_b / "loadgen.points.jsonl").write_text("\n".join(keep) + "\n")
    first_two = [(json.loads(x)["point"]["target_qps"], json.loads(x)["point"]["validity"] == "VALID") for x in keep]
    again = _run(data_env, out_b, server_paths=["test.fixed"], scenarios=("Server",), bisect={"precision": 0.15})
    pts = again[again.path == "test.fixed"].target_qps.tolist()
    assert pts[:2] == [q for q, _ in first_two]  # the finished points were kept, not re-run
    svc = json.loads((out_b / "loadgen.points.jsonl").read_text().splitlines()[2])["point"]["service_us"] / 1e6
    assert pts[2] == loadgen.next_qps(first_two, service_s=svc, bound_ms=BOUND_MS, precision=0.15,
                                      floor=loadgen.min_qps(FAST))


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_parity_failure_under_load_marks_the_row_failed(data_env, lg_fakes, tmp_path):
    frame = _run(data_env, tmp_path, paths=["test.wrong"], scenarios=("SingleStream",))
    row = frame[frame.path == "test.wrong"].iloc[0]
    assert row.parity == "fail" and row.status == "failed"
    assert row.reason.startswith("parity under load:") and "logit_rel_err" in row.reason
    assert row.parity_n >= 8 and row.validity == "VALID"  # LoadGen's verdict is about latency only
    assert frame[frame.path == "noop"].status.iloc[0] == "ok"


@pytest.mark.slow
def test_strategies_and_dynamic_batching_serve_every_query(data_env, lg_fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("OVERHEAD_TEST_SERVICE_S", str(SERVICE_S))
    qps = 0.8 * 2 / SERVICE_S  # beyond one worker's capacity, within two workers' or a batch's
    frame = _run(data_env, tmp_path, server_paths=[], scenarios=("Server",), strategies=("threads", "processes"),
                 strategy_paths=["test.fixed"], workers=2, batching_paths=["test.fixed"], qps=[qps],
                 settings=dict(FAST, server_min_queries=300))
    frame = frame.set_index(["strategy", "batching"])
    for key in [("threads", ""), ("processes", "")]:
        row = frame.loc[key]
        assert row.n_queries >= 300 and row.parity == "pass" and row.workers == 2
        assert row.achieved_qps > 0.9 / SERVICE_S  # more than one worker could complete
    assert frame.loc[("threads", "")].sharing == "shared"
    big = frame.loc[("batching", "D=5ms,B=32")]
    hist = {int(k): v for k, v in json.loads(big.batch_hist).items()}
    assert sum(k * v for k, v in hist.items()) == big.n_queries and max(hist) > 1
    assert big.parity == "pass"
    small = {int(k) for k in json.loads(frame.loc[("batching", "D=1ms,B=8")].batch_hist)}
    assert max(small) <= 8


@pytest.mark.slow
def test_a_growing_queue_is_invalid_even_when_loadgen_says_valid(data_env, lg_fakes, tmp_path, monkeypatch):
    """1.5x what one 2 ms worker completes, for 4 s, with a 10 s bound: the queue grows all run long (the last
    queries wait ~2 s), yet p99 stays under the bound, so LoadGen alone calls it VALID."""
    monkeypatch.setenv("OVERHEAD_TEST_SERVICE_S", str(SERVICE_S))
    frame = _run(data_env, tmp_path, server_paths=["test.fixed"], scenarios=("Server",), qps=[1.5 / SERVICE_S],
                 bounds_ms={"cnn_seed": 10_000.0},
                 settings=dict(FAST, server_min_duration_ms=4000, server_min_queries=600, server_max_duration_ms=6000))
    row = frame[frame.path == "test.fixed"].iloc[0]
    assert row.loadgen_validity == "VALID", row[["p99_us", "invalid_reason"]]
    assert row.validity == "INVALID" and row.stationary == False  # noqa: E712 (a numpy bool)
    assert row.invalid_reason.startswith("queue growing") and row.lat_growth > 2
    steady = _run(data_env, tmp_path / "steady", server_paths=["test.fixed"], scenarios=("Server",),
                  qps=[0.5 / SERVICE_S], bounds_ms={"cnn_seed": 10_000.0},
                  settings=dict(FAST, server_min_duration_ms=2000, server_min_queries=600))
    row = steady[steady.path == "test.fixed"].iloc[0]
    assert row.validity == "VALID" and row.stationary == True  # noqa: E712


@pytest.mark.slow
def test_an_impossible_maximum_is_flagged_and_not_published(data_env, lg_fakes, tmp_path, monkeypatch):
    """test.slow_probe: the probe times 50 ms calls (capacity bound 1.2 x 20 = 24 QPS), LoadGen then sees 2 ms
    calls and holds far more: the SUT's own service time contradicts the maximum, so the row is flagged."""
    monkeypatch.setenv("OVERHEAD_TEST_SERVICE_S", str(SERVICE_S))
    frame = _run(data_env, tmp_path, server_paths=["test.slow_probe"], scenarios=("Server",),
                 bisect={"precision": 0.5, "max_points": 3, "start": 200.0},
                 settings=dict(FAST, confirm_min_duration_ms=500))
    server = frame[frame.path == "test.slow_probe"]
    assert server.capacity_qps.iloc[0] == pytest.approx(24, rel=0.1)
    flagged = server[server.status == "flagged"]
    assert len(flagged) and (flagged.target_qps > flagged.capacity_qps).all()
    assert flagged.reason.str.contains("capacity bound broken").all()
    assert not server.max_valid.any()
