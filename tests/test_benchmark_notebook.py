"""Smoke run of notebooks/02_benchmark.py with quick parameters into a temporary data tree."""
import json
import shutil

import pandas as pd
import pytest
from nbrun import outputs_text, run_notebook

from overhead.base.settings import Settings
from overhead.experiments import distortion, idlegap, sweep

BACKENDS = ["numpy", "keras.predict", "tf.function", "litert", "litert.int8", "onnxruntime"]


@pytest.mark.slow
def test_benchmark_notebook_quick(tmp_path, tiny_data_dir):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "raw", data_dir / "raw")
    shutil.copytree(tiny_data_dir / "models", data_dir / "models")
    if (tiny_data_dir / "artifacts").exists():  # conversions other tests already made (content-keyed)
        shutil.copytree(tiny_data_dir / "artifacts", data_dir / "artifacts")
    nb = run_notebook("02_benchmark.py", tmp_path, {"bench": {"models": ["logreg", "cnn_seed"], "backends": BACKENDS}},
                      data_dir=str(data_dir), machine="nbtest")
    res = data_dir / "results" / "nbtest"
    bench = pd.read_csv(res / "bench.csv")
    assert list(bench.columns) == sweep.COLUMNS
    # batch 1 on every model and backend; batch 8 only on the big-batch models x backends (cnn_seed, not logreg)
    expected = {(m, b, n) for m in ("logreg", "cnn_seed") for b in BACKENDS for n in (1, 8)
                if sweep.wanted(m, b, n, 1, Settings().bench.big_batch_models, Settings().bench.big_batch_backends)}
    assert set(zip(bench.model, bench.backend, bench.batch)) == expected and len(bench) == len(expected)
    assert set(bench.status) == {"ok"}, bench[bench.status != "ok"][["backend", "reason"]]
    assert set(bench.batch[bench.model == "logreg"]) == {1} and set(bench.threads) == {1}
    assert (bench.median_us > 0).all() and (bench.parity == "pass").all()
    for f in bench.samples_file:
        assert (res / f).exists()
    gemm = pd.read_csv(res / "gemm.csv")
    assert (gemm.gflops > 0).all()
    meta = json.loads((res / "bench.meta.json").read_text())
    assert meta["machine"] == "nbtest" and meta["backends"] == BACKENDS
    text = outputs_text(nb)
    assert "rows in" in text and "interleaved_us" in text  # the distortion table
    for name in ("ceilings.csv", "distortion.csv", "idle_gap.csv", "models.csv"):
        assert (res / name).exists(), name
    # the quick distortion run (distortion.measure(quick=True): the first default model and path, one thread), row by row
    dist = pd.read_csv(res / "distortion.csv")
    assert list(dist.columns) == distortion.COLUMNS and set(dist.threads) == {1}
    assert list(dist.backend) == list(distortion.BACKENDS[:1]) and set(dist.model) == {distortion.MODELS[0]}
    assert (dist.alone_us > 0).all() and (dist.interleaved_us > 0).all() and (dist.engine_us > 0).all()
    assert dist.ratio.to_numpy() == pytest.approx((dist.interleaved_us / dist.alone_us).to_numpy())
    # the quick idle-gap run (idlegap.run(quick=True): 3 calls x 2 rounds per gap, fresh workers), row by row
    idle = pd.read_csv(res / "idle_gap.csv")
    assert list(idle.columns) == idlegap.COLUMNS and (idle.status == "ok").all(), idle[["backend", "reason"]]
    assert set(idle.backend) == set(BACKENDS) and set(idle.model) == {"cnn_seed"} and set(idle.threads) == {1}
    assert set(idle.gap_ms) == set(idlegap.GAPS_MS) and len(idle) == len(BACKENDS) * len(idlegap.GAPS_MS)
    assert (idle.n == 6).all() and (idle.ci_lo_us <= idle.median_us).all() and (idle.median_us <= idle.ci_hi_us).all()
    assert (idle.loc[idle.gap_ms == 0, "ratio_to_gap0"] == 1.0).all() and (res / "idle_gap.meta.json").exists()
