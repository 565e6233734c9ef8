"""The HTTP SUT: FastAPI on uvicorn on 127.0.0.1, the no-op model through it, driven by LoadGen."""
import numpy as np
import pytest

from loadgen_helpers import FAST
from overhead.experiments import loadgen, loadgen_http


def test_the_app_answers_json_and_the_server_binds_loopback_only():
    from fastapi.testclient import TestClient

    app = loadgen_http.make_app(lambda x: x.reshape(len(x), -1).sum(1, keepdims=True) * 2)
    client = TestClient(app)
    got = client.post("/predict", json={"inputs": np.ones((1, 2, 3)).tolist()})
    assert got.status_code == 200 and got.json() == {"outputs": [[12.0]]}
    assert client.post("/predict", json={"wrong": 1}).status_code == 422
    sock = loadgen_http.free_socket()
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


@pytest.mark.slow
def test_noop_model_through_the_http_stack_under_loadgen(data_env, tmp_path):
    frame = loadgen.run(["cnn_seed"], [], server_paths=[], threads=(1,), strategies=(), strategy_paths=(),
                        batching_paths=(), http_paths=["noop"], scenarios=("SingleStream",), settings=FAST,
                        out_dir=tmp_path, progress=False, data_dir=data_env, machine="testbox")
    inproc = frame[(frame.path == "noop") & (frame.transport == "inproc")].iloc[0]
    http = frame[(frame.path == "noop") & (frame.transport == "http")].iloc[0]
    assert http.status == "ok" and http.validity == "VALID" and http.n_queries >= FAST["ss_min_queries"]
    assert http.p50_us > 5 * inproc.p50_us  # a loopback request costs far more than a call
    assert http.p50_us <= http.p90_us <= http.p99_us
    assert http.server_cpu_us > 0 and http.client_cpu_us > 0  # both sides' CPU per query is recorded
    assert np.isnan(inproc.server_cpu_us)
