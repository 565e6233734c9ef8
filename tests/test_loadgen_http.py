"""The HTTP SUT: FastAPI on uvicorn on 127.0.0.1, three payloads, the no-op model through it under LoadGen and wrk."""
import os
import shutil

import numpy as np
import pytest
from study import run_loadgen

from loadgen_helpers import FAST
from overhead.experiments import loadgen, loadgen_http, loadgen_wrk


def test_the_app_answers_every_payload_alike_and_the_server_binds_loopback_only():
    from fastapi.testclient import TestClient

    app = loadgen_http.make_app(lambda x: x.reshape(len(x), -1).sum(1, keepdims=True) * 2, input_shape=(2, 3))
    client = TestClient(app)
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    got = client.post("/predict", json={"inputs": x.tolist()})
    assert got.status_code == 200 and got.json() == {"outputs": [[30.0]]}
    assert client.post("/predict", json={"wrong": 1}).status_code == 422
    for payload in ("json", "binary"):
        body, ctype = loadgen_http.encode(payload, x)
        r = client.post(loadgen_http.PAYLOADS[payload], content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200
        assert loadgen_http.decode(payload, r.content, 1).tolist() == [[30.0]], payload
    stats = client.get("/stats").json()  # the answering process: the client spreads its connections by pid
    assert stats["pid"] == os.getpid() and stats["cpu_s"] > 0
    sock = loadgen_http.free_socket()
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


WRK_OUT = """Running 4s test @ http://127.0.0.1:8000
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.31ms    1.02ms  47.51ms   93.10%
    Req/Sec     3.51k   120.00     3.70k    80.00%
  Latency Distribution
     50%    2.18ms
     75%    2.40ms
     90%    2.90ms
     99%   47.50ms
  14035 requests in 4.00s, 2.10MB read
Requests/sec:   3508.75
Transfer/sec:    537.00KB
"""


def test_wrk_output_is_parsed_with_its_units():
    got = loadgen_wrk.parse(WRK_OUT)
    assert got["achieved_qps"] == 3508.75 and got["n_queries"] == 14035 and got["errors"] == []
    assert got["p50_us"] == pytest.approx(2180) and got["p99_us"] == pytest.approx(47500)
    assert loadgen_wrk.parse(WRK_OUT.replace("50%    2.18ms", "50%  910.00us"))["p50_us"] == pytest.approx(910)
    bad = loadgen_wrk.parse(WRK_OUT + "  Non-2xx or 3xx responses: 14035\n")
    assert bad["errors"] == ["Non-2xx or 3xx responses: 14035"]
    script = loadgen_wrk.script("binary", "/tmp/body")
    assert 'wrk.path = "/predict/bin"' in script and "application/octet-stream" in script


def test_without_wrk_the_cross_check_is_a_row_saying_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    path, why = loadgen_wrk.ensure_wrk(install=False)
    assert path is None and why.startswith("wrk is not installed")
    it = loadgen._item("Server", "m", "", "noop", 1, transport="http", payload="json", server_workers=1,
                       client="wrk", bound_ms=10)
    row = loadgen.rows_of(it, [], why, {"machine": "box"})[0]
    assert row["status"] == "skipped" and row["role"] == "wrk" and "wrk is not installed" in row["reason"]


@pytest.mark.slow
def test_noop_model_through_the_http_stack_under_loadgen(data_env, tmp_path):
    frame = run_loadgen(["cnn_seed"], [], server_paths=[], threads=(1,), strategies=(), strategy_paths=(),
                        batching_paths=(), http_paths=["noop"], scenarios=("SingleStream",), settings=FAST,
                        out_dir=tmp_path, progress=False, data_dir=data_env, machine="testbox")
    inproc = frame[(frame.path == "noop") & (frame.transport == "inproc")].iloc[0]
    http = frame[(frame.path == "noop") & (frame.transport == "http")].set_index("payload")
    assert set(http.index) == set(loadgen.HTTP_PAYLOADS)
    for payload, row in http.iterrows():
        assert row.status == "ok" and row.validity == "VALID" and row.n_queries >= FAST["ss_min_queries"], payload
        assert row.p50_us > 5 * inproc.p50_us  # a loopback request costs far more than a call
        assert row.p50_us <= row.p90_us <= row.p99_us
        assert row.server_cpu_us > 0 and row.client_cpu_us > 0  # both sides' CPU per query is recorded
    assert np.isnan(inproc.server_cpu_us)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (Debian package wrk)")
def test_wrk_cross_checks_two_server_processes(data_env, tmp_path):
    frame = run_loadgen(["cnn_seed"], [], server_paths=[], threads=(1,), strategies=(), strategy_paths=(),
                        batching_paths=(), http_paths=["noop"], scenarios=("Server",), out_dir=tmp_path,
                        settings=dict(FAST, server_min_queries=300, wrk_duration_s=1), qps=[200.0], progress=False,
                        data_dir=data_env, machine="testbox")
    wrk = frame[frame.role == "wrk"]
    assert set(zip(wrk.payload, wrk.server_workers)) == {(p, w) for p in loadgen.HTTP_PAYLOADS
                                                         for w in loadgen.HTTP_SERVER_WORKERS}
    assert (wrk.status == "ok").all(), wrk[["payload", "reason"]]
    assert set(wrk.clients) == set(loadgen_wrk.CONNECTIONS) and (wrk.achieved_qps > 0).all()
    assert (wrk.p50_us <= wrk.p99_us).all() and (wrk.server_cpu_us > 0).all()
