"""int8 / fp16 parity has power: the first run judges reduced-precision paths on >= 200 decisive inputs."""
import json

import pytest
from study import run_sweep

from overhead.experiments import sweep, worker
from overhead.harness import parity


def test_budget_constants_are_consistent():
    assert parity.DECISIVE_TARGET >= 200 and worker.REDUCED_PARITY_INPUTS > parity.DECISIVE_TARGET
    assert worker.REDUCED_PARITY_MAX_S > worker.PARITY_MAX_S


@pytest.fixture
def confident_logreg(tiny_data_dir, tmp_path, monkeypatch):
    """logreg trained long enough to be decisive on most digits (the session's tiny models are not)."""
    import shutil

    from overhead.base import data
    from overhead.ladder import train

    root = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "raw", root / "raw")
    monkeypatch.setenv("OVERHEAD_DATA", str(root))
    splits = data.load_mnist(root, allow_download=False)
    train.train_one("logreg", splits, epochs=5, batch_size=128, seed=0, max_train_flops=1e9,
                    max_train_samples=20000, data_dir=root)
    return root / "models" / "logreg.keras"


@pytest.mark.slow
def test_int8_path_is_judged_on_200_decisive_inputs_float32_on_fewer(confident_logreg, tmp_path):
    rows = run_sweep([str(confident_logreg)], ["numpy", "litert.int8"], [1], [1], 0.01, out_dir=tmp_path / "out",
                     machine="testbox", parity_n=32, gemm_n=None, progress=False, runs=1, max_runs=1)
    by = rows.set_index("backend")
    assert by.loc["litert.int8", "status"] == "ok", by.loc["litert.int8", "reason"]
    assert by.loc["litert.int8", "n_decisive"] >= parity.DECISIVE_TARGET
    assert 0.9 <= by.loc["litert.int8", "top1_decisive"] <= 1.0
    assert by.loc["numpy", "n_decisive"] <= 32  # float32 paths keep the short check
    meta = json.loads((tmp_path / "out" / "bench.meta.json").read_text())
    assert meta["parity_n"] == 32
