"""Shared fixtures: a temporary data tree with the real MNIST cache and a few tiny trained ladder models."""
import os
import shutil

import pytest

from overhead.base import config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_MODELS = ("logreg", "mlp_tiny", "cnn_seed")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A data tree (raw MNIST cache + logreg, mlp_tiny, cnn_seed trained one epoch) shared by the session.

    The raw cache is copied from the repository's data/raw when present, so no test needs the network."""
    from overhead.base import data
    from overhead.ladder import train

    root = tmp_path_factory.mktemp("data")
    repo_raw = config.raw_dir(config.ROOT / "data")
    if (repo_raw / data.CACHE_NAME).exists():
        shutil.copytree(repo_raw, root / "raw")
    splits = data.load_mnist(root, allow_download=False)
    for name in TINY_MODELS:
        train.train_one(name, splits, epochs=1, batch_size=128, seed=0, max_train_flops=1e9,
                        max_train_samples=2000, data_dir=root)
    return root


@pytest.fixture
def data_env(tiny_data_dir, monkeypatch):
    """tiny_data_dir exported as OVERHEAD_DATA for code that reads the environment."""
    monkeypatch.setenv("OVERHEAD_DATA", str(tiny_data_dir))
    return tiny_data_dir
