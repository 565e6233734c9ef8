"""`overhead export MODEL.keras OUT.npz`: the engine file, and one line + exit 2 for each bad input."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from cli_errors import one_line_error
from engine_models import randomize

keras = pytest.importorskip("keras")


def export(*args, cwd=None):
    env = dict(os.environ, OVERHEAD_DEBUG="")
    return subprocess.run([sys.executable, "-m", "overhead", "export", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu")(inp)
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(x))
    model = randomize(keras.Model(inp, out))
    path = folder / "tiny.keras"
    model.save(path)
    x = np.random.default_rng(0).random((2, 6, 6, 1), dtype=np.float32)
    return path, x, np.asarray(model(x, training=False))


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_export_writes_a_loadable_engine_file(tiny_keras, tmp_path):
    from overhead import engine
    path, x, ref = tiny_keras
    done = export(path, tmp_path / "tiny.npz")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and done.stdout == ""
    assert np.abs(engine.load(tmp_path / "tiny.npz")(x) - ref).max() <= 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.npz"]  # no temp file left


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_missing_and_corrupt_keras_file(tmp_path):
    one_line_error(export(tmp_path / "nope.keras", tmp_path / "o.npz"), "model file not found")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    one_line_error(export(tmp_path / "junk.keras", tmp_path / "o.npz"), "not a valid Keras model file")
    with zipfile.ZipFile(tmp_path / "hollow.keras", "w") as zf:  # a zip with a config but no model in it
        zf.writestr("config.json", '{"class_name": "Nothing"}')
    one_line_error(export(tmp_path / "hollow.keras", tmp_path / "o.npz"), "cannot load model")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_unsupported_layer_is_named(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, name="my_lstm")])
    model.save(tmp_path / "lstm.keras")
    one_line_error(export(tmp_path / "lstm.keras", tmp_path / "o.npz"), "LSTM", "'my_lstm'")
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_unwritable_output(tiny_keras, tmp_path):
    path, _, _ = tiny_keras
    one_line_error(export(path, tmp_path / "no" / "such" / "o.npz"), "does not exist")
    one_line_error(export(path, tmp_path / "o.txt"), ".npz")
    one_line_error(export(path, tmp_path), ".npz")
    if os.path.isdir("/proc/self"):  # a folder nobody can create files in, root included
        one_line_error(export(path, "/proc/self/o.npz"), "cannot write")
