"""Degenerate references are said plainly: a real untrained Keras model's outputs carry no signal."""
import subprocess
import sys

import numpy as np
import pytest
from cli_errors import one_line_error

from overhead.usermodel import refsignal


def _untrained(tmp_path, zero_head=True):
    """A real Keras CNN as built, untrained; with a zero-initialised head its logits are exactly 0."""
    import keras
    init = "zeros" if zero_head else "glorot_uniform"
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(5, kernel_initializer=init),
                              keras.layers.Softmax()])
    path = tmp_path / ("untrained.keras" if zero_head else "random.keras")
    model.save(path)
    return model, path


def test_untrained_model_outputs_are_named_degenerate(tmp_path):
    model, _ = _untrained(tmp_path)
    x = np.random.default_rng(0).random((16, 12, 12, 1), dtype=np.float32)
    ref = np.asarray(model(x))
    line = refsignal.degenerate(ref)
    assert line is not None and line.startswith(refsignal.PREFIX)
    assert "uniform" in line and "--inputs" in line and "trained model" in line
    assert "--inputs" not in refsignal.degenerate(ref, inputs_given=True)
    assert refsignal.find(f"parity: something; {line}; another note") == line


def test_signal_is_not_flagged():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(16, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert refsignal.degenerate(probs) is None
    assert refsignal.degenerate(logits) is None  # a linear head
    assert refsignal.degenerate(rng.normal(size=(16, 1))) is None  # a regression output
    assert refsignal.find("logit_rel_err 0.1 > 0.001") is None


def test_near_zero_and_constant_outputs_are_flagged():
    rng = np.random.default_rng(2)
    assert "within" in refsignal.degenerate(rng.normal(size=(16, 10)) * 1e-9)  # logits ~1e-9 (MobileNetV2 as built)
    same = np.tile(rng.normal(size=(1, 10)), (16, 1))
    assert "same output" in refsignal.degenerate(same)


@pytest.mark.slow  # the real command in fresh worker processes
def test_check_says_no_signal_instead_of_disagreement(tmp_path):
    _, path = _untrained(tmp_path)
    done = subprocess.run([sys.executable, "-m", "overhead", "check", path, "--backends", "numpy,keras.call"],
                          capture_output=True, text=True, timeout=600)
    line = one_line_error(done, "carries no signal", "--inputs")
    assert "disagree" not in done.stderr, line
    bench = subprocess.run([sys.executable, "-m", "overhead", "bench", path, "--backends", "numpy", "--quick"],
                           capture_output=True, text=True, timeout=600)
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert "carries no signal" in bench.stderr
