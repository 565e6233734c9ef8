"""Papermill smoke run of 05_loadgen with tiny parameters on the fixture models."""
import pandas as pd
import pytest

from nbrun import outputs_text, run_notebook
from overhead.experiments import loadgen


@pytest.mark.slow
def test_loadgen_notebook(data_env, tmp_path):
    lg = {"models": ["cnn_seed", "not_a_model"], "paths": ["numpy"], "server_paths": ["numpy"],
          "http_paths": ["noop", "numpy"], "threads": [1]}
    nb = run_notebook("05_loadgen.py", tmp_path, {"loadgen": lg}, data_dir=str(data_env), machine="smoke")
    out = data_env / "results" / "smoke"
    df = pd.read_csv(out / "loadgen.csv")
    assert list(df.columns) == loadgen.COLUMNS
    assert (out / "loadgen.meta.json").exists() and (out / "loadgen.points.jsonl").exists()
    ss = df[df.scenario == "SingleStream"]
    assert set(zip(ss.path, ss.transport)) == {("noop", "inproc"), ("numpy", "inproc"), ("noop", "http"),
                                               ("numpy", "http")}
    server = df[df.scenario == "Server"]
    assert len(server) == 1 and server.target_qps.iloc[0] == loadgen.QUICK_SERVER[1]
    assert server.validity.iloc[0] in ("VALID", "INVALID") and (df.status == "ok").all(), df[["path", "reason"]]
    text = outputs_text(nb)
    assert "skipped: not_a_model" in text
    assert "600 s" in "".join(str(o.get("data", {})) for c in nb.cells for o in c.get("outputs", []))
    # quick runs one Server point, no bisection: the computed sentence says it cannot compare
    assert "cannot say whether the fastest path changes under load" in "".join(str(o.get("data", {})) for c in nb.cells
                                                   for o in c.get("outputs", []))
