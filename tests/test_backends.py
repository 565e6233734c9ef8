"""Each backend's contract and parity on a small trained model; conversions cached; threads read back."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from overhead import backends
from overhead.backends import converters
from overhead.base import data, paths

# Keras 3 on JAX / NumPy run in processes of their own kind (test_keras3_other); the rest here
IN_PROCESS = [e.name for e in paths.CATALOGUE if e.process == "tf"]
# paths whose prepare converts the model: an artifact on disk, a tf_keras rebuild or a frozen graph in memory
CONVERTED = ({e.name for e in paths.CATALOGUE if e.artifacts and e.name != "numpy"}
             | set(paths.in_family(paths.KERAS2)) | {"tf1.session"})


@pytest.fixture(scope="module")
def cnn(tiny_data_dir):
    return tiny_data_dir / "models" / "cnn_seed.keras"


@pytest.fixture(scope="module")
def artifacts(tiny_data_dir):
    """The session data tree's artifacts folder: the conversions made here (SavedModel, five .tflite, .onnx,
    OpenVINO IR) are the ones the notebook smoke runs and the CLI's workers then find cached (content-keyed)."""
    return tiny_data_dir / "artifacts"


@pytest.fixture(scope="module")
def reference(cnn, tiny_data_dir):
    model = converters.load_keras(cnn)
    x, y = data.inputs_for((28, 28, 1), 24, data_dir=tiny_data_dir)
    return x, y, model.predict(x, verbose=0).astype(np.float64)


def test_names_are_the_catalogue():
    assert backends.NAMES == list(paths.NAMES)
    assert [n for n in backends.names() if not n.startswith("test.")] == list(paths.NAMES)


def test_every_backend_is_its_catalogue_entry_and_names_its_worker_process_kind():
    for e in paths.CATALOGUE:
        b = backends.get(e.name)
        assert (b.family, b.description, b.needs, b.process, b.runtime, b.artifacts, b.max_abs, b.quantized) == \
            (e.family, e.description, e.needs, e.process, e.runtime, e.artifacts, e.max_abs, e.quantized), e.name
    kinds = {n: backends.get(n).process for n in backends.NAMES}
    assert set(kinds.values()) <= set(backends.PROCESS_KINDS)
    # only Keras 3 on JAX / NumPy and JAX itself need a process of another kind
    assert {n for n, k in kinds.items() if k != "tf"} == set(paths.in_family(paths.JAX))


def test_a_catalogue_path_without_a_prepare_and_a_prepare_without_an_entry_are_named():
    registered = {n: None for n in paths.NAMES if n != "openvino"}
    with pytest.raises(backends.CatalogueMismatch, match="no prepare registered .* openvino"):
        backends.check_catalogue(registered)
    with pytest.raises(backends.CatalogueMismatch, match="tf.magic have no entry in overhead.base.paths"):
        backends.check_catalogue({**registered, "openvino": None, "tf.magic": None})
    backends.check_catalogue(dict.fromkeys(paths.NAMES))
    with pytest.raises(KeyError, match="tf.magic"):
        backends.core.catalogued("tf.magic", lambda *a: None)


def test_timed_code_is_the_registered_prepare_with_its_settings():
    from overhead.backends.source import timed_code

    int8 = timed_code(backends.get("litert.int8"))
    assert int8["where"] == "overhead.backends.litert._prep_litert"
    assert 'variant="int8"' in int8["source"] and "def _prep_litert" in int8["source"]
    assert timed_code(backends.get("numpy"))["source"].startswith("def _prep_numpy")


_HOOK = r"""
import json, sys
from overhead import backends
print(json.dumps(backends.names()))
"""


def _names_with_hook(hook):
    env = dict(os.environ, OVERHEAD_EXTRA_BACKENDS=hook)
    return subprocess.run([sys.executable, "-c", _HOOK], capture_output=True, text=True, env=env, timeout=120)


def test_extra_backends_come_only_through_the_hook():
    import fake_backends

    assert not any(n.startswith("test.") for n in backends.names())  # the product ships no fakes
    done = _names_with_hook(fake_backends.HOOK)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)[-len(fake_backends.NAMES):] == fake_backends.NAMES
    bad = _names_with_hook("no_colon_here")
    assert bad.returncode != 0 and "OVERHEAD_EXTRA_BACKENDS" in bad.stderr and "module:function" in bad.stderr


def test_backends_does_not_import_the_worker():
    done = subprocess.run([sys.executable, "-c", "import sys, overhead.backends; "
                           "print('overhead.experiments.worker' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(backends.UnknownBackendError) as err:
        backends.get("tf.magic")
    assert isinstance(err.value, ValueError)
    assert "tf.magic" in str(err.value) and "litert.int8" in str(err.value) and "numpy" in str(err.value)


@pytest.mark.parametrize("name", IN_PROCESS)
def test_backend_contract_and_parity(name, cnn, artifacts, reference):
    x, y, ref = reference
    runner = backends.prepare(name, cnn, batch=3, threads=1, artifacts=artifacts)
    out = runner(np.ascontiguousarray(x[:3]))
    assert isinstance(out, np.ndarray) and out.shape == (3, 10)
    assert {"convert_s", "load_s", "artifact", "kernels"} <= set(runner.info)
    assert runner.info["kernels"]
    if name in CONVERTED:
        assert runner.info["convert_s"] is not None and runner.info["artifact"]
    if name in CONVERTED and "in memory" not in runner.info["artifact"]:
        assert os.path.exists(runner.info["artifact"])
    par = backends.parity(runner, ref, x, y)  # 24 digits in 8 calls of 3
    assert par["parity"] == "pass", par
    assert par["n_parity"] == 24 and par["tolerance"]
    if backends.get(name).quantized:
        assert par["accuracy"] is not None and par["ref_accuracy"] is not None
    else:
        assert par["max_abs_err"] <= 1e-2


def test_parity_catches_a_wrong_runner(reference):
    x, y, ref = reference
    wrong = backends.Runner("litert", lambda a: np.roll(ref[: len(a)], 1, axis=1).astype(np.float32), 24, 1, {})
    par = backends.parity(wrong, ref, x, y)
    assert par["parity"] == "fail" and "logit_rel_err" in par["reason"] and par["logit_rel_err"] > 0.5
    swapped = backends.Runner("litert.int8", lambda a: ref[::-1][: len(a)].astype(np.float32), 24, 1, {})
    par = backends.parity(swapped, ref, x, y)
    assert par["parity"] == "fail" and "logit_rel_err" in par["reason"]


def test_quantized_parity_rejects_a_flipped_output_even_when_near_uniform():
    """An untrained model's softmax is near-uniform (every probability ~0.1): a reversed output stays
    within 2e-3 of it, which the old max-abs fallback accepted. On the centred logits it is ~1.4 off."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 5e-3, (32, 10))
    ref = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    flipped = ref[:, ::-1].astype(np.float32)
    assert np.max(np.abs(flipped - ref)) < 5e-3
    par = backends.parity(backends.Runner("litert.int8", lambda a: flipped[: len(a)], 32, 1, {}), ref, ref)
    assert par["parity"] == "fail" and par["logit_rel_err"] > 1.0 and "logit_rel_err" in par["reason"]
    assert "top-1 not judged" in par["reason"]  # no decisive input: the logits judge alone
    close = (ref * (1 + rng.normal(0, 1e-7, ref.shape))).astype(np.float32)  # float32 rounding only
    par = backends.parity(backends.Runner("numpy", lambda a: close[: len(a)], 32, 1, {}), ref, ref)
    assert par["parity"] == "pass" and par["logit_rel_err"] < 1e-3, par


def test_parity_stops_early_on_slow_paths(reference):
    x, y, ref = reference
    calls = []

    def run(a):
        calls.append(1)
        return ref[len(calls) - 1: len(calls)].astype(np.float32)

    runner = backends.Runner("numpy", run, 1, 1, {})
    par = backends.parity(runner, ref, x, y, max_s=0.0, min_n=8)
    assert par["n_parity"] == 8 and len(calls) == 8 and par["parity"] == "pass"


def test_tf_function_traces_once(cnn, artifacts, reference):
    x, _, _ = reference
    runner = backends.prepare("tf.function", cnn, batch=2, threads=1, artifacts=artifacts)
    for _ in range(5):
        runner(np.ascontiguousarray(x[:2]))
    assert backends.public_info(runner)["tracing_count"] == 1


def test_litert_kernels_say_what_ran(cnn, artifacts):
    on = backends.prepare("litert", cnn, 1, 1, artifacts=artifacts).info["kernels"]
    off = backends.prepare("litert.builtin", cnn, 1, 1, artifacts=artifacts).info["kernels"]
    int8 = backends.prepare("litert.int8", cnn, 1, 1, artifacts=artifacts).info["kernels"]
    assert on.startswith("xnnpack") and "CONV_2D" in on
    assert off.startswith("builtin") and "xnnpack" not in off
    assert "ops" in int8  # xnnpack or builtin, with op counts: recorded either way


def test_conversions_are_cached_on_content(cnn, artifacts, tmp_path):
    _, first = converters.tflite(cnn, "float", artifacts)
    _, again = converters.tflite(cnn, "float", artifacts)
    assert again["cached"] and again["convert_s"] == first["convert_s"] >= 0
    recorded = converters.conversions(cnn, artifacts)
    assert "model.float.tflite" in recorded and recorded["savedmodel"]["convert_s"] > 0
    other = tmp_path / "cnn_seed.keras"
    other.write_bytes(cnn.read_bytes() + b"\0")  # same name, other content -> other folder
    assert converters.artifact_dir(other, artifacts) != converters.artifact_dir(cnn, artifacts)


def test_bad_batch_or_threads_rejected(cnn):
    with pytest.raises(ValueError):
        backends.prepare("numpy", cnn, batch=0, threads=1)
    with pytest.raises(ValueError):
        backends.prepare("numpy", cnn, batch=1, threads=-2)


_READBACK = r"""
import json, sys
from overhead import backends
t = int(sys.argv[2])
backends.set_threads(t)
backends.configure_tf()
seen = {n: backends.prepare(n, sys.argv[1], 1, t, artifacts=sys.argv[3]).info["threads_seen"]
        for n in ("numpy", "tf.function", "litert", "onnxruntime", "tf1.session", "tf_keras.predict", "openvino")}
print(json.dumps({"seen": seen, "readback": backends.threads_readback()}))
"""


@pytest.mark.slow  # a fresh process importing TensorFlow per setting
@pytest.mark.parametrize("threads", [1, 2])
def test_thread_setting_is_read_back_in_a_fresh_process(threads, cnn, artifacts, tiny_data_dir):
    env = dict(os.environ, OVERHEAD_DATA=str(tiny_data_dir), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _READBACK, str(cnn), str(threads), str(artifacts)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["readback"]["tf_intra"] == threads and got["readback"]["tf_inter"] == 1
    assert got["readback"]["blas"] and all(n == threads for n in got["readback"]["blas"])
    assert got["seen"]["numpy"] and all(n == threads for n in got["seen"]["numpy"])
    assert got["seen"]["tf.function"] == [threads, 1]
    assert got["seen"]["litert"] == [threads]
    assert got["seen"]["onnxruntime"] == [threads, 1]
    assert got["seen"]["tf1.session"] == [threads, 1]  # the session's ConfigProto
    assert got["seen"]["tf_keras.predict"] == [threads, 1]  # Keras 2 runs on the process's TF pools
    assert got["seen"]["openvino"] == [threads]  # compiled model's INFERENCE_NUM_THREADS


def test_tf_keras_rebuild_names_what_it_cannot_rebuild():
    import keras

    from overhead.backends.tf_keras import NotRebuildable, rebuild

    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inp = keras.Input((4,))
    custom = keras.Model(inp, keras.layers.Dense(2)(Twice(name="twice")(inp)))
    with pytest.raises(NotRebuildable, match="Twice.*'twice'"):
        rebuild(custom)
    shared = keras.layers.Dense(4, name="shared")
    inp = keras.Input((4,))
    with pytest.raises(NotRebuildable, match="'shared' is called more than once"):
        rebuild(keras.Model(inp, shared(shared(inp))))


def test_tf_keras_rebuild_copies_a_residual_graph():
    import keras

    from overhead.backends.tf_keras import rebuild
    from overhead.ladder import models

    model = models.build("resnet_mnist")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    twin = rebuild(model)
    assert type(twin).__module__.startswith("tf_keras") and len(twin.layers) == len(model.layers)
    np.testing.assert_allclose(twin(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)
    assert isinstance(model, keras.Model)


def test_tf_keras_rebuild_copies_nested_models_as_convnext_uses_them():
    """A Sequential without an Input (ConvNeXt's stem: Conv2D + LayerNormalization) and a functional sub-model,
    both called as layers, come back as tf_keras models with their weights; ConvNeXt's LayerScale gets its twin
    (random gamma: the copy is checked); any other custom layer, nested or not, is named."""
    import keras

    from engine_models import randomize

    from overhead.backends.tf_keras import NotRebuildable, rebuild

    L = keras.layers
    stem = keras.Sequential([L.Conv2D(8, 2, strides=2), L.LayerNormalization(epsilon=1e-6)], name="stem")
    sub_in = keras.Input((4, 4, 8))
    sub = keras.Model(sub_in, sub_in + L.DepthwiseConv2D(3, padding="same")(sub_in), name="block")  # an op, as ConvNeXt
    inp = keras.Input((8, 8, 3))
    model = randomize(keras.Model(inp, L.Dense(5)(L.GlobalAveragePooling2D()(sub(stem(inp))))))
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    twin = rebuild(model)
    np.testing.assert_allclose(twin(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)
    assert [type(la).__module__.split(".")[0] for la in twin.layers if la.name in ("stem", "block")] == ["tf_keras"] * 2

    from keras.src.applications.convnext import LayerScale
    inp = keras.Input((4, 4, 8))
    scaled = randomize(keras.Model(inp, LayerScale(1e-6, 8, name="scale")(L.Conv2D(8, 1)(inp))))
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(rebuild(scaled)(x).numpy(), scaled(x).numpy(), atol=1e-6)

    class Twice(L.Layer):
        def call(self, x):
            return 2 * x
    inner = keras.Sequential([Twice(name="twice")], name="inner")
    inp = keras.Input((4,))
    with pytest.raises(NotRebuildable, match="Twice.*'twice'"):
        rebuild(keras.Model(inp, inner(inp)))
