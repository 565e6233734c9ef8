"""Papermill smoke runs of 03_startup and 04_pipeline with tiny parameters on the fixture models."""
import pandas as pd
import pytest
from nbrun import outputs_text, run_notebook

from overhead.experiments import breakdown, breakdown_buckets, pipeline, startup


@pytest.mark.slow
def test_startup_notebook(data_env, tmp_path):
    startup_ = {"models": ["cnn_seed", "not_a_model"], "backends": ["numpy", "keras.call"], "repeats": 2,
                "steady_calls": 5}
    nb = run_notebook("03_startup.py", tmp_path, {"startup": startup_}, data_dir=str(data_env), machine="smoke")
    df = pd.read_csv(data_env / "results" / "smoke" / "startup.csv")
    assert list(df.columns) == startup.COLUMNS
    assert len(df) == 4 and set(df.backend) == {"numpy", "keras.call"} and set(df.rep) == {0, 1}
    assert (df.status == "ok").all(), df[["backend", "reason"]]
    assert (df.start_to_first_pred_s > df.import_s).all()
    assert (df.rss_after_first_call_mb >= df.rss_after_import_mb).all()
    assert (data_env / "results" / "smoke" / "startup.meta.json").exists()
    assert "skipped: not_a_model" in outputs_text(nb)


@pytest.mark.slow
def test_pipeline_notebook(data_env, tmp_path):
    pipeline_ = {"models": ["cnn_seed"], "backends": ["numpy", "keras.call"], "calls": 10,
                 "breakdown_models": ["cnn_seed"], "breakdown_backends": ["keras.predict", "tf.function"]}
    nb = run_notebook("04_pipeline.py", tmp_path, {"pipeline": pipeline_}, data_dir=str(data_env), machine="smoke")
    out = data_env / "results" / "smoke"
    p = pd.read_csv(out / "pipeline.csv")
    assert list(p.columns) == pipeline.COLUMNS
    assert len(p) == 8 and set(p.stage) == set(pipeline.STAGES)
    assert p.groupby("backend")["share"].sum().round(6).eq(1).all()
    b = pd.read_csv(out / "breakdown.csv")
    assert list(b.columns) == breakdown.COLUMNS
    assert set(b.backend) == {"keras.predict", "tf.function"}
    assert set(b.bucket) <= set(breakdown_buckets.BUCKETS)
    assert breakdown_buckets.DATA in set(b[b.backend == "keras.predict"].bucket)
    assert (out / "pipeline.meta.json").exists() and (out / "breakdown.meta.json").exists()
    assert "Method" in "".join(c.source for c in nb.cells)
