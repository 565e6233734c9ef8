"""The .npz engine file: round trip, loading in a process where TensorFlow/Keras cannot be imported,
and one clear EngineFileError for each kind of bad file."""
import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from engine_models import every_engine_layer, randomize

keras = pytest.importorskip("keras")

from overhead import engine  # noqa: E402
from overhead.engine import EngineFileError  # noqa: E402

SMALL_LADDER = ("logreg", "mlp_tiny", "cnn_seed", "mlp_wide", "cnn_small")

BLOCKED_LOAD = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"blocked: {name}")
    sys.meta_path.insert(0, Block())
    import numpy as np
    from overhead import engine
    errs = {}
    for stem in sys.argv[1:]:
        net = engine.load(stem + ".npz")
        x, ref = np.load(stem + ".x.npy"), np.load(stem + ".ref.npy")
        errs[stem] = float(np.abs(net(x).astype(np.float64) - ref).max())
    heavy = [m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]
    print(json.dumps({"errs": errs, "heavy": heavy}))
""")


def _export(model, folder, name, x):
    """Save the engine file and Keras' own outputs (computed in this process) for `x`."""
    stem = folder / name
    engine.from_keras(model).save(stem.with_suffix(".npz"))
    np.save(f"{stem}.x.npy", x)
    np.save(f"{stem}.ref.npy", np.asarray(model(x, training=False)))
    return str(stem)


def test_loads_without_tensorflow_and_matches_keras(tmp_path):
    from overhead.ladder import models
    rng = np.random.default_rng(0)
    stems = []
    for name in SMALL_LADDER:
        model = randomize(models.build(name, seed=0))
        x = rng.random((3,) + tuple(model.input_shape[1:]), dtype=np.float32)
        stems.append(_export(model, tmp_path, name, x))
    model = every_engine_layer()
    stems.append(_export(model, tmp_path, "every_layer", rng.standard_normal((2, 12, 12, 3)).astype(np.float32)))
    done = subprocess.run([sys.executable, "-c", BLOCKED_LOAD, *stems], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert set(got["errs"]) == set(stems)
    assert max(got["errs"].values()) <= 1e-5, got["errs"]


def test_blocker_really_blocks(tmp_path):
    """Sensitivity: the same child fails when loading would need Keras (here: it imports it)."""
    code = BLOCKED_LOAD.replace("from overhead import engine", "import keras")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "blocked: keras" in done.stderr


def test_round_trip_every_layer(tmp_path):
    model = every_engine_layer(seed=3)
    net = engine.from_keras(model)
    net.save(tmp_path / "m.npz")
    back = engine.load(tmp_path / "m.npz")
    x = np.random.default_rng(1).standard_normal((4, 12, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(back(x), net(x))
    assert back.name == "every_layer" and back.input_shape == (None, 12, 12, 3)
    assert [repr(op) for op in back._ops] == [repr(op) for op in net._ops]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:  # no pickle: plain arrays only
        assert all(npz[k].dtype != object for k in npz.files)
        plan = json.loads(npz["__plan__"].tobytes())
    assert plan["format"] == "overhead-engine" and plan["version"] == 1
    assert len(plan["ops"]) == len(net._ops)


# --------------------------------------------------------------------------- bad files

@pytest.fixture
def saved(tmp_path):
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))))
    path = tmp_path / "ok.npz"
    engine.from_keras(randomize(model)).save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return tmp_path, arrays


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _plan(arrays):
    return json.loads(arrays["__plan__"].tobytes())


def _with_plan(arrays, plan):
    return {**arrays, "__plan__": np.frombuffer(json.dumps(plan).encode(), np.uint8)}


def _fails(path, *words):
    with pytest.raises(EngineFileError) as info:
        engine.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg, msg
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    _fails(tmp_path / "nope.npz", "no such file")


def test_truncated_and_garbage(saved):
    folder, arrays = saved
    data = (folder / "ok.npz").read_bytes()
    (folder / "cut.npz").write_bytes(data[: len(data) // 2])
    _fails(folder / "cut.npz", "truncated or corrupt")
    (folder / "junk.npz").write_bytes(b"this is not a zip file at all")
    _fails(folder / "junk.npz", "truncated or corrupt")


def test_not_an_engine_file(saved):
    folder, _ = saved
    _fails(_write(folder / "other.npz", {"a": np.zeros(3, np.float32)}), "not an engine file")
    bad = {"__plan__": np.frombuffer(b"{not json", np.uint8)}
    _fails(_write(folder / "badjson.npz", bad), "not valid JSON")


def test_newer_format_version(saved):
    folder, arrays = saved
    plan = _plan(arrays)
    plan["version"] = 99
    _fails(_write(folder / "new.npz", _with_plan(arrays, plan)), "newer engine", "99", "re-export")


def test_missing_array(saved):
    folder, arrays = saved
    name = next(k for k in arrays if k != "__plan__")
    _fails(_write(folder / "missing.npz", {k: v for k, v in arrays.items() if k != name}),
           f"missing array {name!r}")


def test_wrong_dtype_and_shape(saved):
    folder, arrays = saved
    name = next(k for k in arrays if k != "__plan__")
    _fails(_write(folder / "f64.npz", {**arrays, name: arrays[name].astype(np.float64)}), name, "float64")
    _fails(_write(folder / "shape.npz", {**arrays, name: arrays[name].reshape(-1)[:-1]}), name, "shape")


def test_inconsistent_weights(saved):
    """Shapes that agree with the plan's own record but not with each other: caught at load."""
    folder, arrays = saved
    plan = _plan(arrays)
    dense = next(op for op in plan["ops"] if op["kind"] == "dense")
    ref = dense["p"]["w"]
    w = arrays[ref["__array__"]]
    ref["shape"] = [w.shape[0] + 1, w.shape[1]]
    bad = {**_with_plan(arrays, plan), ref["__array__"]: np.zeros(ref["shape"], np.float32)}
    _fails(_write(folder / "inconsistent.npz", bad), "inconsistent plan")


def test_pickled_object_arrays_are_refused(saved):
    folder, arrays = saved
    name = next(k for k in arrays if k != "__plan__")
    bad = {**arrays, name: np.array([{"x": 1}], dtype=object)}
    np.savez(folder / "pickled.npz", **bad)  # stores that array with pickle
    assert zipfile.is_zipfile(folder / "pickled.npz")
    _fails(folder / "pickled.npz", "truncated or corrupt")
