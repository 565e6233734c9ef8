"""User-shaped models: formats, signatures, inputs, memory estimate and thread warning (issue #14)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import user_zoo

from overhead.usermodel import inputs, modelfile, resources, signature
from overhead.usermodel.signature import SignatureError


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return user_zoo.build(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def opened(zoo):
    return {name: modelfile.open_model(path) for name, path in zoo.items()}


# --------------------------------------------------------------------------- formats

def test_zoo_formats_loaders_and_signatures(opened):
    got = {n: (o.format, o.loader, o.signature.describe()) for n, o in opened.items()}
    f32 = "float32"
    assert got["lstm"] == ("keras", "keras", {"inputs": [{"name": "sequence", "dtype": f32, "shape": [20, 8]}],
                                              "outputs": [{"name": "probs", "dtype": f32, "shape": [5]}]})
    assert got["text_gru"][2]["inputs"] == [{"name": "tokens", "dtype": "int32", "shape": [12], "vocab": 50}]
    assert got["two_io"][2] == {
        "inputs": [{"name": "features", "dtype": f32, "shape": [16]},
                   {"name": "image", "dtype": f32, "shape": [8, 8, 1]}],
        "outputs": [{"name": "label", "dtype": f32, "shape": [4]}, {"name": "score", "dtype": f32, "shape": [1]}]}
    assert got["dynamic_conv"][2]["inputs"] == [{"name": "image", "dtype": f32, "shape": [None, None, 3]}]
    assert got["keras2_h5"][:2] == ("h5", "keras")  # Keras 3 reads this legacy file itself
    assert got["keras2_h5"][2]["inputs"][0]["shape"] == [12, 12, 1]
    assert got["savedmodel"] == ("savedmodel", "tf.saved_model", {
        "inputs": [{"name": "x", "dtype": f32, "shape": [10]}],
        "outputs": [{"name": "output_0", "dtype": f32, "shape": [4]}]})
    assert opened["savedmodel"].keras_model is None
    assert "a SavedModel folder holds no Keras model, and keras.predict runs a Keras object" in \
        modelfile.keras_object_skip_reason(opened["savedmodel"], "keras.predict")
    assert modelfile.keras_object_skip_reason(opened["lstm"], "keras.predict") is None


def test_h5_that_only_keras2_reads_falls_back_to_tf_keras(tmp_path):
    import tf_keras

    L = tf_keras.layers  # LocallyConnected1D left Keras 3, so only tf_keras can rebuild this model
    model = tf_keras.Sequential([L.LocallyConnected1D(2, 3, input_shape=(10, 4)), L.Flatten(), L.Dense(3)])
    model.save(tmp_path / "old.h5", save_format="h5")
    got = modelfile.open_model(tmp_path / "old.h5")
    assert (got.format, got.loader) == ("h5", "tf_keras")
    assert "Unknown layer: 'LocallyConnected1D'" in got.notes[0]
    assert got.signature.inputs[0].shape == (10, 4)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope.keras", "model file not found: {p}; pass a .keras file, a Keras 2 .h5 file or a "
                                 "TensorFlow SavedModel folder"),
    (lambda p: (p / "d").mkdir() or p / "d", "{p} is a folder without saved_model.pb, so not a TensorFlow "
                                            "SavedModel; pass a .keras file, a .h5 file or a folder written by "
                                            "model.export() / tf.saved_model.save()"),
    (lambda p: (p / "m.keras").write_text("hello") and p / "m.keras",
     "not a valid Keras model file: {p} is neither a .keras archive, an HDF5 (.h5) file nor a SavedModel folder; "
     + modelfile.SAVE_HINT),
])
def test_bad_model_paths_give_one_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(modelfile.ModelFileError) as err:
        modelfile.detect(str(path))
    assert str(err.value) == message.format(p=path)


def test_archives_and_weights_files(tmp_path, zoo):
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "not a model")
    with pytest.raises(modelfile.ModelFileError, match="zip archive without a readable config.json"):
        modelfile.detect(other)
    renamed = tmp_path / "lstm.zip"
    renamed.write_bytes(zoo["lstm"].read_bytes())
    with pytest.raises(modelfile.ModelFileError, match=r"only opens it under a \.keras name; rename it to lstm\.keras"):
        modelfile.detect(renamed)
    import h5py

    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["kernel"] = np.zeros(3)
    with pytest.raises(modelfile.ModelFileError, match=r"holds weights only \(written by save_weights\)"):
        modelfile.detect(tmp_path / "w.h5")


# --------------------------------------------------------------------------- shapes

def test_dynamic_shape_needs_the_flag_and_takes_it(opened):
    sig = opened["dynamic_conv"].signature
    with pytest.raises(SignatureError) as err:
        signature.resolve(sig)
    assert str(err.value) == ("model input 'image' has dynamic dimensions (batch, None, None, 3); give the size "
                              "to run with --input-shape, e.g. --input-shape 1x32x32x3")
    assert signature.resolve(sig, signature.parse_input_shape("1x64x48x3")) == [(64, 48, 3)]
    assert signature.resolve(sig, signature.parse_input_shape("64x48x3")) == [(64, 48, 3)]
    with pytest.raises(SignatureError, match=r"--input-shape 1x64x64x1 does not fit model input 'image' "
                                             r"\(batch, None, None, 3\); keep its fixed sizes"):
        signature.resolve(sig, signature.parse_input_shape("1x64x64x1"))
    two = opened["two_io"].signature
    assert signature.resolve(two) == [(16,), (8, 8, 1)]
    with pytest.raises(SignatureError, match=r"gives 3 shape\(s\) but the model has 2 input\(s\) .* in the order "
                                             r"features, image"):
        signature.resolve(two, [(1, 16), (1, 8, 8, 1), (1, 2)])


@pytest.mark.parametrize("text", ["64-64-3", "1x0x3", "", "1xx3"])
def test_bad_input_shape_text(text):
    with pytest.raises(SignatureError, match=r"is not a shape like 1x64x64x3 .*; e.g. --input-shape 1x64x64x3"):
        signature.parse_input_shape(text)


# --------------------------------------------------------------------------- inputs

def test_generated_inputs_follow_the_signature(opened):
    sig = opened["text_gru"].signature
    (tokens,) = inputs.generate(sig, signature.resolve(sig), 64, seed=1)
    assert tokens.dtype == np.int32 and tokens.shape == (64, 12)
    assert tokens.min() >= 0 and tokens.max() < 50 and len(np.unique(tokens)) > 10
    two = opened["two_io"].signature
    feats, image = inputs.generate(two, signature.resolve(two), 5)
    assert (feats.shape, image.shape, feats.dtype) == ((5, 16), (5, 8, 8, 1), np.float32)
    assert np.array_equal(inputs.generate(two, signature.resolve(two), 5)[0], feats)  # seeded
    out = opened["two_io"].keras_model.predict([feats, image], verbose=0)
    assert [o.shape for o in out] == [(5, 4), (5, 1)]


def test_npz_inputs_by_name_position_and_with_labels(tmp_path, opened):
    two = opened["two_io"].signature
    f, im = np.ones((3, 16)), np.zeros((3, 8, 8, 1), np.float32)
    np.savez(tmp_path / "named.npz", image=im, features=f, labels=np.array([0, 1, 3]))
    xs, labels = inputs.load_npz(tmp_path / "named.npz", two, signature.resolve(two))
    assert [x.dtype for x in xs] == [np.float32, np.float32] and xs[0].shape == (3, 16)
    assert labels.tolist() == [0, 1, 3]
    np.savez(tmp_path / "pos.npz", f, im)
    xs, labels = inputs.load_npz(tmp_path / "pos.npz", two)
    assert labels is None and xs[1].shape == (3, 8, 8, 1)
    assert [x.shape[0] for x in inputs.take(xs, 7, start=2)] == [7, 7]


@pytest.mark.parametrize("arrays, message", [
    ({"features": np.ones((3, 16))}, " has no array for model input(s) 'image' (it holds: features); name one "
                                     "array per input and optionally 'labels': np.savez(FILE, features=array, "
                                     "image=array)"),
    ({"features": np.ones((3, 16)), "image": np.ones((3, 8, 8, 1)), "extra": np.ones(3)},
     " has array(s) 'extra' that match no model input (it holds: extra, features, image); name one array per "
     "input and optionally 'labels': np.savez(FILE, features=array, image=array)"),
    ({"features": np.ones((3, 15)), "image": np.ones((3, 8, 8, 1))},
     ": array for input 'features' has shape (3, 15) but the model takes (batch, 16); the first axis counts samples"),
    ({"features": np.ones((3, 16)), "image": np.ones((2, 8, 8, 1))},
     ": inputs hold different numbers of samples (3 and 2 for 'image'); give every input the same first axis"),
    ({"features": np.ones((3, 16)), "image": np.ones((3, 8, 8, 1)), "labels": np.ones(3)},
     ": 'labels' must be 3 integer class ids (one per sample), got float64 of shape (3,); or leave labels out"),
    ({"features": np.array([["a"] * 16] * 3), "image": np.ones((3, 8, 8, 1))},
     ": array for input 'features' has dtype <U1; the model takes float32 numbers"),
])
def test_npz_problems_are_named(tmp_path, opened, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(inputs.InputsError) as err:
        inputs.load_npz(path, opened["two_io"].signature)
    assert str(err.value) == f"--inputs {path}{message}"


def test_npz_token_ids_and_unreadable_files(tmp_path, opened):
    sig = opened["text_gru"].signature
    np.savez(tmp_path / "t.npz", tokens=np.full((2, 12), 50))
    with pytest.raises(inputs.InputsError, match=r"feeds an Embedding of 50 tokens but its ids span 50..50; "
                                                 r"keep ids in 0..49"):
        inputs.load_npz(tmp_path / "t.npz", sig)
    np.savez(tmp_path / "f.npz", x=np.full((2, 12), 0.5))
    with pytest.raises(inputs.InputsError, match="takes integer ids but the array holds fractional values"):
        inputs.load_npz(tmp_path / "f.npz", sig)
    np.savez(tmp_path / "ok.npz", x=np.full((2, 12), 7.0))  # one input: any name; whole floats become ids
    (tokens,), _ = inputs.load_npz(tmp_path / "ok.npz", sig)
    assert tokens.dtype == np.int32 and tokens[0, 0] == 7
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(inputs.InputsError, match=r"is not an \.npz file NumPy can read .*np.savez\(FILE, "
                                                 r"tokens=array\)"):
        inputs.load_npz(tmp_path / "junk.npz", sig)
    with pytest.raises(inputs.InputsError, match="file not found"):
        inputs.load_npz(tmp_path / "none.npz", sig)


# --------------------------------------------------------------------------- resources

def test_memory_estimate_and_skip_reason(opened):
    o = opened["dynamic_conv"]
    shapes = signature.resolve(o.signature, [(1, 64, 64, 3)])
    ps = resources.per_sample_bytes(o.signature, shapes, o.keras_model)
    assert ps == {"input": 64 * 64 * 3 * 4, "output": 3 * 4, "largest_layer": 62 * 62 * 4 * 4}
    est = resources.estimate(o.signature, shapes, 1000, per_sample=ps)
    assert est["total"] == 1000 * (49152 + 12 + 61504)
    assert resources.memory_skip_reason(est, 1000, available=10**9) is None
    assert resources.memory_skip_reason(est, 1000, available=10**8) == (
        "does not fit in memory: batch 1000 needs at least 111 MB (input 49.2 MB + largest activation 61.5 MB + "
        "output 12 kB), 100 MB available; use a smaller batch size")
    sm = opened["savedmodel"]  # no Keras graph: inputs and outputs only
    assert resources.per_sample_bytes(sm.signature, signature.resolve(sm.signature)) == \
        {"input": 40, "output": 16, "largest_layer": 0}


def test_thread_warning():
    assert resources.threads_warning(2, n_cores=2) is None
    assert resources.threads_warning(64, n_cores=2) == (
        "warning: --threads 64 is more than the 2 CPU core(s) here; the threads will share cores, so these "
        "timings measure oversubscription (recorded as threads=64)")


# --------------------------------------------------------------------------- worker feed

def test_feed_packs_inputs_and_reference_flattens_outputs(opened):
    from overhead.backends import Runner
    from overhead.usermodel import feed as userfeed

    o = opened["two_io"]
    feed = userfeed.build_feed(o.signature, 6)
    assert feed.x.dtype.names == ("features", "image") and feed.x.shape == (6,) and feed.y is None
    chunk = np.concatenate([feed.x[4:6], feed.x[:2]])  # how parity pads a last batch: rows stay whole
    feats, image = userfeed.unpack(chunk)
    assert feats.shape == (4, 16) and image.shape == (4, 8, 8, 1) and image.flags.c_contiguous
    ref = userfeed.reference(o, feed.x)
    assert ref.shape == (6, 5) and ref.dtype == np.float64  # label (4) then score (1)
    runner = userfeed.adapt(Runner("keras.call", lambda xs: o.keras_model(xs), 6, 1, {}), o.signature)
    np.testing.assert_allclose(runner(feed.x), ref, rtol=1e-5, atol=1e-6)
    sm = opened["savedmodel"]
    assert userfeed.reference(sm, userfeed.build_feed(sm.signature, 3).x).shape == (3, 4)
    with pytest.raises(SignatureError, match="--input-shape"):
        userfeed.build_feed(opened["dynamic_conv"].signature, 2)
    feed = userfeed.build_feed(opened["dynamic_conv"].signature, 2, input_shape="1x9x9x3")
    assert feed.x.shape == (2, 9, 9, 3) and feed.shapes == [(9, 9, 3)]


def test_classify_backend_failures(opened):
    from overhead.engine import UnsupportedLayerError, from_keras
    from overhead.usermodel import feed as userfeed

    with pytest.raises(UnsupportedLayerError) as err:
        from_keras(opened["lstm"].keras_model)
    assert userfeed.classify("numpy", err.value) == ("skipped", "unsupported layer LSTM 'lstm'")
    two = opened["two_io"].signature
    assert userfeed.classify("litert", TypeError("bad\nmore"), two) == (
        "skipped", "litert cannot run a model with 2 input(s) and 2 output(s) here: TypeError: bad")
    assert userfeed.classify("litert", RuntimeError("boom"), opened["lstm"].signature) == \
        ("failed", "RuntimeError: boom")


# --------------------------------------------------------------------------- the zoo through the command

def run_cli(*args, data_dir, timeout=600):
    import os
    import subprocess
    import sys

    env = dict(os.environ, OVERHEAD_DATA=str(data_dir), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "overhead", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_line_usage_error(done, text):
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert lines[0] == f"overhead: error: {text}"
    assert done.stdout == ""


def check_rows(done) -> dict:
    """{backend: line} of an `overhead check` table (status is the 5th column)."""
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()[1:]
    return {ln.split()[1]: ln for ln in lines}


def status_of(line: str) -> str:
    return line.split()[4]


# (model, extra args, {backend: (status, words in its reason)}): what each path does with each model
ZOO_EXPECTED = {
    "lstm": ([], {
        "numpy": ("skipped", "unsupported layer LSTM 'lstm'"),
        "keras.predict": ("ok", ""),
        "litert": ("skipped", "conversion failed: ConverterError: Lowering tensor list ops is failed. Please "
                              "consider using Select TF ops"),
    }),
    "text_gru": ([], {
        "numpy": ("skipped", "unsupported layer Functional 'text_gru': input dtype int32 (only float32)"),
        "tf.function": ("ok", ""),
    }),
    "two_io": ([], {
        "numpy": ("skipped", "unsupported layer Functional 'two_io': models with 2 inputs (only one)"),
        "keras.call": ("ok", ""),
        "tf.savedmodel": ("ok", ""),
        "litert": ("skipped", "litert cannot run a model with 2 input(s) and 2 output(s) here: ValueError: "
                              "Failed to convert value into readable tensor."),
    }),
    "dynamic_conv": (["--input-shape", "1x16x16x3"], {
        "numpy": ("ok", ""), "tf.function": ("ok", ""), "litert": ("ok", ""),
    }),
    "keras2_h5": ([], {
        "numpy": ("ok", ""), "keras.predict": ("ok", ""), "tf.function": ("ok", ""),
    }),
    "savedmodel": ([], {
        "keras.predict": ("skipped", "a SavedModel folder holds no Keras model and keras.predict runs one; pass "
                                     "the .keras or .h5 file to run it"),
        "tf.function": ("skipped", "a SavedModel folder holds no Keras model and tf.function runs one"),
        "tf.savedmodel": ("ok", ""),
    }),
}


@pytest.mark.slow  # fresh worker processes
@pytest.mark.parametrize("name", list(ZOO_EXPECTED))
def test_zoo_through_overhead_check(zoo, tmp_path, name):
    extra, expected = ZOO_EXPECTED[name]
    done = run_cli("check", zoo[name], "--backends", ",".join(expected), *extra, data_dir=tmp_path)
    rows = check_rows(done)
    assert sorted(rows) == sorted(expected), done.stdout
    for backend, (status, words) in expected.items():
        assert status_of(rows[backend]) == status, rows[backend]
        assert words in rows[backend], rows[backend]


@pytest.mark.slow  # fresh worker processes
def test_dynamic_shape_without_the_flag_is_one_line(zoo, tmp_path):
    done = run_cli("check", zoo["dynamic_conv"], "--backends", "keras.predict", data_dir=tmp_path)
    one_line_usage_error(done, "dynamic_conv: model input 'image' has dynamic dimensions (batch, None, None, 3); "
                               "give the size to run with --input-shape, e.g. --input-shape 1x32x32x3")


@pytest.mark.slow  # fresh worker processes
def test_npz_inputs_that_do_not_fit_are_one_line(zoo, tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, features=np.ones((4, 16), np.float32))
    done = run_cli("check", zoo["two_io"], "--backends", "keras.predict", "--inputs", path, data_dir=tmp_path)
    one_line_usage_error(done, f"two_io: --inputs {path} has no array for model input(s) 'image' (it holds: "
                               "features); name one array per input and optionally 'labels': np.savez(FILE, "
                               "features=array, image=array)")


@pytest.mark.parametrize("args, text", [
    (["--input-shape", "64-64-3"], "--input-shape '64-64-3' is not a shape like 1x64x64x3 (positive sizes joined "
                                   "by x, one per input, comma-separated); e.g. --input-shape 1x64x64x3"),
    (["--inputs", "{tmp}/none.npz"], "--inputs {tmp}/none.npz: file not found; pass an .npz written with "
                                     "np.savez('inputs.npz', <input name>=array, ...)"),
])
def test_bad_options_are_one_line_before_any_worker(zoo, tmp_path, args, text):
    args = [a.format(tmp=tmp_path) for a in args]
    done = run_cli("bench", zoo["lstm"], "--quick", *args, data_dir=tmp_path)
    one_line_usage_error(done, text.format(tmp=tmp_path))


@pytest.mark.slow  # fresh worker processes
def test_bench_quick_with_real_inputs_memory_skip_and_thread_warning(zoo, tmp_path):
    import pandas as pd

    threads = resources.cores() + 1
    x = np.random.default_rng(0).random((5, 16, 16, 3), dtype=np.float32)
    np.savez(tmp_path / "x.npz", images=x, labels=np.array([0, 1, 2, 0, 1]))
    out = tmp_path / "bench.csv"
    done = run_cli("bench", zoo["dynamic_conv"], "--quick", "--backends", "numpy,keras.predict", "--inputs",
                   tmp_path / "x.npz", "--batch-sizes", "1,100000000", "--threads", threads, "--out", out,
                   data_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert resources.threads_warning(threads) in done.stderr
    rows = pd.read_csv(out).set_index(["backend", "batch"])
    assert set(rows.loc[(slice(None), 1), "status"]) == {"ok"}
    big = rows.loc[(slice(None), 100000000), "reason"]
    assert all(r.startswith("does not fit in memory: batch 100000000 needs at least 622 GB (input 307 GB + "
                            "largest activation 314 GB + output 1.2 GB), ")
               and r.endswith(" available; use a smaller batch size") for r in big), big.tolist()
    assert set(rows["threads"]) == {threads}
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert json.dumps(meta).count('"threads_above_cores": [%d]' % threads) == 1


@pytest.mark.slow  # fresh worker processes
def test_a_dying_worker_reports_its_exception(zoo, tmp_path, monkeypatch):
    from overhead.experiments import sweep

    monkeypatch.setenv("OVERHEAD_DATA", str(tmp_path))
    job = sweep._job_for("lstm", zoo["lstm"], 1, [("keras.predict", 1)],
                         {"mode": "check", "budget_s": "fast"})  # the worker dies on this, before any backend
    rows, _ = sweep.collect_rows(job)
    assert [(r["backend"], r["status"], r["reason"]) for r in rows] == [
        ("keras.predict", "failed", "worker failed: ValueError: could not convert string to float: 'fast' before "
                                    "it started a backend")]
