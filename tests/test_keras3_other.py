"""Keras 3 on JAX and on its NumPy backend: parity with Keras-on-TF and the thread setting, in fresh processes.

Keras 3 reads KERAS_BACKEND once, at import, so each kind runs in its own subprocess (as the sweep's workers do).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from overhead import backends
from overhead.backends import converters
from overhead.base import data

_CHILD = r"""
import json, sys
from overhead import backends
kind, threads, model, x_file, artifacts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
backends.enter_process(kind)
backends.set_threads(threads)
import numpy as np
from overhead.backends.reference import keras_reference
x = np.load(x_file)
out = {"readback": backends.threads_readback(), "runs": {}}
runners = {}
for name in sys.argv[6].split(","):
    runner = runners[name] = backends.prepare(name, model, 3, threads, artifacts=artifacts)
    ys = np.concatenate([runner(np.ascontiguousarray(x[i:i + 3])) for i in range(0, len(x), 3)])
    out["runs"][name] = {"type": type(runner(x[:3])).__name__, "y": ys.tolist(), "info": backends.public_info(runner)}
# then every runner again, interleaved in rounds as the sweep times them (each after the others have run)
x3 = np.ascontiguousarray(x[:3])
ys = [[r(x3) for r in runners.values()] for _ in range(3)]
out["interleaved_max_dev"] = max(float(np.abs(np.asarray(y) - ys[0][0]).max()) for row in ys for y in row)
import keras
out["keras_backend"] = keras.backend.backend()
out["reference"] = keras_reference(model, x, artifacts=artifacts).tolist()  # Keras on TF, from a TF child
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def setup(tiny_data_dir, tmp_path_factory):
    model = tiny_data_dir / "models" / "cnn_seed.keras"
    x, _ = data.inputs_for((28, 28, 1), 12, data_dir=tiny_data_dir)
    folder = tmp_path_factory.mktemp("k3")
    np.save(folder / "x.npy", x)
    ref = converters.load_keras(model).predict(x, verbose=0).astype(np.float64)
    return model, folder, ref


def _child(setup, kind, threads, names):
    model, folder, _ = setup
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _CHILD, kind, str(threads), str(model), str(folder / "x.npy"),
                           str(folder / "artifacts"), ",".join(names)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_parity(got, ref):
    for name, run in got["runs"].items():
        assert run["type"] == "ndarray", name
        y = np.asarray(run["y"])
        assert y.shape == ref.shape and np.abs(y - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name
        assert (y.argmax(1) == ref.argmax(1)).all(), name
    # the child's own reference comes from Keras on TensorFlow, not from the backend under test
    assert np.abs(np.asarray(got["reference"]) - ref).max() <= 1e-6


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_keras_on_jax_paths_match_keras_on_tf_and_run_on_one_cpu(setup):
    """... and jax.jit survives Keras's JAX predict in the same process: predict donates its variables'
    buffers, so jax.jit (prepared first, called again in rounds after predict ran) must hold weights of its own.
    One child for both checks (each JAX + TensorFlow child costs 10-30 s of imports)."""
    names = ["jax.jit", "keras.jax.predict", "keras.jax.call"]
    got = _child(setup, "jax", 1, names)
    assert got["interleaved_max_dev"] <= 1e-5
    assert got["keras_backend"] == "jax" and set(got["runs"]) == set(names)
    _assert_parity(got, setup[2])
    rb = got["readback"]
    assert rb["process"] == "jax" and rb["affinity"] == 1 and "--xla_cpu_multi_thread_eigen=false" in rb["xla_flags"]
    assert all(run["info"]["threads_seen"] == [1] for run in got["runs"].values())
    assert "jax" in got["runs"]["jax.jit"]["info"]["kernels"] and got["runs"]["jax.jit"]["info"]["trace_s"] > 0


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_jax_with_two_threads_keeps_two_cpus(setup):
    got = _child(setup, "jax", 2, ["jax.jit"])
    rb = got["readback"]
    assert rb["affinity"] == min(2, len(os.sched_getaffinity(0))) and "multi_thread_eigen" not in rb["xla_flags"]
    assert got["runs"]["jax.jit"]["info"]["threads_seen"] == [rb["affinity"]]


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_keras_numpy_backend_matches_and_limits_blas(setup):
    got = _child(setup, "keras-numpy", 1, ["keras.numpy.predict"])
    assert got["keras_backend"] == "numpy"
    _assert_parity(got, setup[2])
    assert got["readback"]["blas"] and all(n == 1 for n in got["readback"]["blas"])
    assert got["runs"]["keras.numpy.predict"]["info"]["threads_seen"] and \
        all(n == 1 for n in got["runs"]["keras.numpy.predict"]["info"]["threads_seen"])


def test_other_backend_paths_refuse_a_tf_process(tiny_data_dir):
    backends.configure_tf()
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        backends.prepare("jax.jit", tiny_data_dir / "models" / "cnn_seed.keras", 1, 1)


def test_enter_process_rejects_unknown_kinds_and_late_switches():
    with pytest.raises(ValueError, match="unknown process kind 'torch'.*keras-numpy"):
        backends.enter_process("torch")
    import keras  # noqa: F401  (this test process runs Keras on TF)
    with pytest.raises(RuntimeError, match="fresh process"):
        backends.enter_process("jax")
