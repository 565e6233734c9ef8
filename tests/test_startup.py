"""Cold-start helpers: memory probes, the child protocol, failure reporting, recorded conversions."""
import json
import shutil
import subprocess
import sys

import pytest

from overhead import backends
from overhead.backends import converters
from overhead.base import paths
from overhead.experiments import pipeline, startup

PROBE = """
import json
import numpy as np
from overhead.experiments.startup import memory
before = memory()
block = np.ones(200 * 2**20 // 8)  # 200 MB, every page written
after = memory()
print(json.dumps({"before": before, "after": after, "sum": float(block[::4096].sum())}))
"""


def test_memory_probe_sees_a_known_allocation():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["after"]["peak_mb"] - got["before"]["peak_mb"] >= 150
    assert got["after"]["rss_mb"] - got["before"]["rss_mb"] >= 150


def test_runtime_modules():
    assert startup.runtime_modules("numpy") == ("numpy", "overhead.engine")
    assert startup.runtime_modules("keras.predict") == ("tensorflow", "keras")
    assert startup.runtime_modules("tf.function.xla") == ("tensorflow", "keras")
    assert startup.runtime_modules("tf.savedmodel") == ("tensorflow",)
    assert startup.runtime_modules("litert.int8") == ("ai_edge_litert.interpreter",)
    assert startup.runtime_modules("onnxruntime") == ("onnxruntime",)
    assert startup.runtime_modules("openvino") == ("openvino",)
    assert startup.runtime_modules("tf_keras.predict") == ("tensorflow", "keras", "tf_keras")
    assert startup.runtime_modules("keras.jax.predict") == ("jax", "keras") == startup.runtime_modules("jax.jit")
    assert startup.runtime_modules("keras.numpy.predict") == ("keras",)
    assert startup.runtime_modules("tf1.session") == ("tensorflow", "keras")
    for e in paths.CATALOGUE:  # every catalogue path: its entry's runtime and artifacts
        assert (startup.runtime_modules(e.name), startup.artifact_names(e.name)) == (e.runtime, e.artifacts)


def test_a_path_outside_the_catalogue_is_not_timed_as_tensorflow(monkeypatch, tmp_path):
    bare = backends.Backend("test.bare", "test", "declares no runtime", None)
    declared = backends.Backend("test.declared", "test", "declares its runtime", None, runtime=("numpy",))
    monkeypatch.setitem(backends.REGISTRY, "test.bare", bare)
    monkeypatch.setitem(backends.REGISTRY, "test.declared", declared)
    with pytest.raises(ValueError, match="'test.bare' has no catalogue entry and declares no runtime modules"):
        startup.runtime_modules("test.bare")
    assert startup.runtime_modules("test.declared") == ("numpy",) and startup.artifact_names("test.declared") == ()
    with pytest.raises(ValueError, match="test.bare"):  # refused before any model is read or process started
        startup.run([str(tmp_path / "missing.keras")], ["numpy", "test.bare"], repeats=1, progress=False,
                    out_dir=tmp_path)
    assert not (tmp_path / "startup.csv").exists()


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_cold_start_of_keras_on_jax_runs_in_a_jax_process(tmp_path, tiny_data_dir):
    import numpy as np

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 28, 28, 1), np.float32))
    model = tiny_data_dir / "models" / "cnn_seed.keras"
    res = startup.spawn("jax.jit", model, x, steady=5, steady_budget_s=0.1, timeout_s=300, process="jax")
    assert res["status"] == "ok", res
    assert res["import_s"] > 0 and res["first_call_s"] > 0 and res["steady_median_us"] > 0
    wrong = startup.spawn("jax.jit", model, x, steady=0, timeout_s=300)  # a tf process: refused, with the fix
    assert wrong["status"] == "failed" and "KERAS_BACKEND=jax" in wrong["reason"]


OK = {"status": "ok", "import_s": 3.0, "load_s": 0.5, "first_call_s": 0.2, "start_to_first_pred_s": 3.9,
      "steady_median_us": 120.0, "artifacts_cached": True, "mem_import": {"peak_mb": 400.0},
      "mem_load": {"peak_mb": 450.0}, "mem_first_call": {"peak_mb": 470.0}}


def test_row_from_ok_and_failed():
    row = startup.row_from(OK, machine="m", model="cnn_seed", backend="keras.predict", rep=2, convert_s=0.0)
    assert list(row) == startup.COLUMNS
    assert row["status"] == "ok" and row["reason"] == ""
    assert (row["import_s"], row["rss_after_load_mb"], row["rss_after_first_call_mb"]) == (3.0, 450.0, 470.0)
    cold = startup.row_from({**OK, "artifacts_cached": False}, machine="m", model="x", backend="litert", rep=0,
                            convert_s=None)
    assert "not cached" in cold["reason"] and "not recorded" in cold["reason"]
    bad = startup.row_from({"status": "failed", "reason": "child killed by signal 11"}, machine="m", model="x",
                           backend="onnxruntime", rep=1, convert_s=1.0)
    assert bad["status"] == "failed" and "signal 11" in bad["reason"] and bad["import_s"] is None


def test_spawn_reports_failures_and_timeouts(tmp_path):
    x = tmp_path / "x.npy"
    import numpy as np
    np.save(x, np.zeros((1, 28, 28, 1), np.float32))
    res = startup.spawn("numpy", tmp_path / "missing.keras", x, steady=0, timeout_s=120)
    assert res["status"] == "failed" and "missing.keras" in res["reason"]
    res = startup.spawn("numpy", tmp_path / "missing.keras", x, steady=0, timeout_s=0.01)
    assert res == {"status": "failed", "reason": "child timed out after 0.01 s"}


def test_recorded_conversion_times(tmp_path, tiny_data_dir):
    model = tiny_data_dir / "models" / "cnn_seed.keras"
    art = tmp_path / "artifacts"
    assert startup.recorded_convert_s("keras.predict", model, art) == 0.0
    assert startup.recorded_convert_s("litert", model, art) is None
    assert not startup.artifacts_ready("litert", model, art)
    folder = converters.artifact_dir(model, art)
    for name, seconds in (("savedmodel", 1.5), ("model.float.tflite", 2.25)):
        (folder / name).write_bytes(b"x")
        (folder / f"{name}.json").write_text(json.dumps({"convert_s": seconds}))
    assert startup.recorded_convert_s("litert", model, art) == pytest.approx(3.75)
    assert startup.recorded_convert_s("tf.savedmodel", model, art) == pytest.approx(1.5)
    assert startup.artifacts_ready("litert.builtin", model, art)
    assert startup.artifact_paths("onnxruntime", model, art) == [folder / "model.onnx"]


def test_input_shape_without_the_json(tmp_path, tiny_data_dir):
    src = tiny_data_dir / "models" / "cnn_seed.keras"
    assert pipeline.input_shape(src) == [28, 28, 1]
    lone = tmp_path / "mine.keras"
    shutil.copy(src, lone)
    assert pipeline.input_shape(lone) == [28, 28, 1]
