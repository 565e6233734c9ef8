"""overhead.experiments.distortion: the tidy table from known rows (the quick real run: test_benchmark_notebook)."""
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


# The quick real run (distortion.measure(quick=True) in fresh workers) is checked where it already runs: the
# benchmark notebook's smoke test (tests/test_benchmark_notebook.py) reads its distortion.csv row by row. A second
# run here cost ~60 s of TensorFlow workers (Zen 3 VM, loaded) for the same path.
