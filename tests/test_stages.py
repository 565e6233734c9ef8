"""The notebook helpers moved into the package: model selection, pivots and the measured sentences."""
import pandas as pd
import pytest

from overhead.report import stages, stagetext


def test_present_keeps_existing_models_and_names_the_missing(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "cnn_seed.keras").write_bytes(b"x")
    user = tmp_path / "mine.keras"
    user.write_bytes(b"x")
    said = []
    kept = stages.present(["cnn_seed", "not_a_model", str(user)], tmp_path, say=said.append)
    assert kept == ["cnn_seed", str(user)]
    assert len(said) == 1 and said[0].startswith("skipped: not_a_model")
    with pytest.raises(SystemExit, match="make train"):
        stages.present(["not_a_model"], tmp_path, say=said.append)


def test_describe_and_weights_fall_back_for_models_without_metadata(tmp_path):
    assert stages.describe(tmp_path / "mine.keras")["weights"] == "user model"
    assert stages.weights(str(tmp_path / "mine.keras")) == "unknown"


def test_flops_span_counts_decades():
    assert stages.flops_span(pd.Series([1e3, 1e6, 1e8])).startswith("5.00 decades of FLOPs")


def _prow():
    rows = []
    for b, inf in (("numpy", 10.0), ("keras.predict", 990.0)):
        us = {"decode": 5.0, "preprocess": 3.0, "inference": inf, "postprocess": 2.0}
        for stage, v in us.items():
            rows.append({"model": "cnn_seed", "backend": b, "stage": stage, "median_us": v,
                         "share": v / sum(us.values())})
    return pd.DataFrame(rows)


def test_pipeline_pivots_and_sentences_use_the_measured_values():
    us, share, table = stages.pipeline_pivots(_prow(), ["decode", "preprocess", "inference", "postprocess"])
    assert table.loc[("cnn_seed", "numpy"), "total_us"] == 20.0
    assert share.loc[("cnn_seed", "numpy"), "inference"] == pytest.approx(0.5)
    text = stagetext.pipeline(us, share)
    assert "take 1%–50%" in text
    assert "- numpy: 20 µs in total, inference 50%" in text and "keras.predict: 1,000 µs" in text


def test_startup_sentences_compare_with_numpy():
    s = pd.DataFrame([
        {"model": "m", "backend": "numpy", "start_to_first_pred_s": 0.5, "import_s": 0.1, "load_s": 0.01,
         "first_call_s": 0.001, "rss_after_first_call_mb": 50.0, "cold_over_steady": 100.0},
        {"model": "m", "backend": "keras.predict", "start_to_first_pred_s": 5.0, "import_s": 3.0, "load_s": 1.0,
         "first_call_s": 0.5, "rss_after_first_call_mb": 500.0, "cold_over_steady": 10000.0}])
    text = stagetext.startup(s)
    assert "quickest first prediction is numpy (0.50 s" in text
    assert "keras.predict: 5.00 s (10.0x numpy's 0.50 s)" in text and "10,000 steady calls" in text


def test_breakdown_pivot_and_sentences_flag_a_sum_outside_the_target():
    brow = pd.DataFrame([
        {"model": "m", "backend": "keras.predict", "bucket": "Keras Python", "us_per_call": 600.0,
         "measured_median_us": 1000.0},
        {"model": "m", "backend": "keras.predict", "bucket": "TF C++ runtime", "us_per_call": 200.0,
         "measured_median_us": 1000.0}])
    pivot = stages.breakdown_pivot(brow, ["TF C++ runtime", "Keras Python"])
    assert list(pivot.columns) == ["TF C++ runtime", "Keras Python", "sum", "measured median"]
    summary = pd.DataFrame([{"model": "m", "backend": "keras.predict", "status": "ok", "sum_us": 800.0,
                             "measured_median_us": 1000.0, "discrepancy_pct": -20.0, "within_10pct": False,
                             "discrepancy_vs_mean_pct": -5.0, "python_calls": 1234, "builtin_calls": 99,
                             "cprofile_us": 3000.0}])
    text = stagetext.breakdown(summary, pivot)
    assert "Largest: Keras Python 600 µs (75%), TF C++ runtime 200 µs (25%)" in text
    assert "**outside**" in text and "1 decomposition(s) miss" in text and "3.0x as long" in text


def test_stability_follows_the_columns_present():
    ok = pd.DataFrame({"backend": ["numpy", "numpy", "litert"], "unstable": [True, "False", "true"],
                       "n": [20, 40, 30]})
    t = stages.stability(ok, order=["litert", "numpy", "absent"])
    assert list(t.index) == ["litert", "numpy"]
    assert t.loc["numpy", "unstable"] == 1 and t.loc["litert", "unstable"] == 1
    assert t.loc["numpy", "median_samples"] == 30 and "timer_overhead_ns" not in t
