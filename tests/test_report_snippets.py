"""Every one-line change the advice prints runs as written on a tiny model and gives Keras's answer."""
import os

import numpy as np
import pytest

from overhead.base import paths

pytestmark = pytest.mark.slow          # imports TensorFlow and converts a model several times


@pytest.fixture(scope="module")
def tiny():
    from overhead import backends
    backends.configure_tf()
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    rng = np.random.default_rng(0)
    x_calib = rng.random((32, 8, 8, 1), dtype=np.float32)
    return tf, model, x_calib


@pytest.mark.parametrize("backend", [e.name for e in paths.CATALOGUE if e.snippet])
def test_snippet_runs_and_matches_keras(backend, tiny, tmp_path, monkeypatch):
    tf, model, x_calib = tiny
    monkeypatch.chdir(tmp_path)
    x = x_calib[:1].copy()
    ns = {"tf": tf, "np": np, "model": model, "x": x, "x_calib": x_calib}
    exec(paths.entry(backend).snippet, ns)                       # noqa: S102 - the code the report prints
    y = np.asarray(ns["y"], dtype=np.float32).reshape(1, -1)
    ref = np.asarray(model.predict(x, verbose=0))
    tol = 0.1 if "int8" in backend or "fp16" in backend else 1e-4
    np.testing.assert_allclose(y, ref, atol=tol)
    assert os.getcwd() == str(tmp_path)
