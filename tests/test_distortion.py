"""overhead.experiments.distortion: the tidy table from known rows, and one quick real run on a tiny model."""
import math

import pytest

from overhead.experiments import distortion


def _row(backend, median, status="ok", n=300):
    return {"backend": backend, "median_us": median, "status": status, "n": n}


def test_tidy_ratios_from_known_rows():
    alone = [_row("tf.function", 400.0), _row("litert", 10.0), _row("onnxruntime", 20.0, status="failed")]
    inter = [_row("tf.function", 440.0), _row("litert", 10.0), _row("onnxruntime", 25.0), _row("numpy", 9.0)]
    df = distortion.tidy("m", 2, 1, alone, inter)
    assert list(df.columns) == distortion.COLUMNS
    by = df.set_index("backend")
    assert by.loc["tf.function", "ratio"] == pytest.approx(1.1)
    assert by.loc["litert", "ratio"] == pytest.approx(1.0)
    assert math.isnan(by.loc["onnxruntime", "ratio"])  # failed alone: no ratio, never a made-up one
    assert (df["engine_us"] == 9.0).all() and (df["threads"] == 2).all()
    assert "numpy" not in set(df["backend"])


@pytest.mark.slow  # a fresh TF/JAX process: make test runs it, make test-fast does not
def test_quick_run_on_a_tiny_model(data_env):
    df = distortion.measure(models=("mlp_tiny",), backends=("tf.function",), quick=True)
    assert list(df["backend"]) == ["tf.function"] and list(df["threads"]) == [1]
    row = df.iloc[0]
    assert row["alone_us"] > 0 and row["interleaved_us"] > 0 and row["engine_us"] > 0
    assert row["ratio"] == pytest.approx(row["interleaved_us"] / row["alone_us"])
