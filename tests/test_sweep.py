"""The sweep: result-file robustness, statistics of a row, crash isolation, skips, resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import fake_backends
from overhead import backends, sweep, timing, worker


# --------------------------------------------------------------------------- bench.csv

def _row(**kw):
    base = {"machine": "m", "model": "a", "model_sha": "x", "backend": "numpy", "batch": 1, "threads": 1,
            "status": "ok", "date": "2026-01-01T00:00:00+00:00"}
    return {**base, **kw}


def test_results_csv_appends_and_knows_what_is_done(tmp_path):
    path = tmp_path / "bench.csv"
    rc = sweep.ResultsCsv(path)
    rc.append(_row())
    rc.append(_row(backend="litert", status="failed", reason="boom, with a comma"))
    rc.append(_row(backend="onnxruntime", batch=4, status="skipped"))
    again = sweep.ResultsCsv(path)
    assert list(pd.read_csv(path).columns) == sweep.COLUMNS
    assert again.done_keys() == {("a", "numpy", 1, 1), ("a", "litert", 1, 1), ("a", "onnxruntime", 4, 1)}
    assert again.rows.loc[1, "reason"] == "boom, with a comma"


def test_results_csv_drops_a_torn_last_line_and_fixes_old_headers(tmp_path):
    path = tmp_path / "bench.csv"
    rc = sweep.ResultsCsv(path)
    rc.append(_row())
    with open(path, "a") as fh:
        fh.write("m,a,x,,,tf.function,1,1,o")  # a kill in mid-write
    again = sweep.ResultsCsv(path)
    assert len(again.rows) == 1 and path.read_text().endswith("\n")
    old = tmp_path / "old.csv"
    pd.DataFrame([{"model": "a", "backend": "numpy", "batch": 1, "threads": 1, "status": "ok",
                   "date": "d"}]).to_csv(old, index=False)
    fixed = sweep.ResultsCsv(old)
    assert list(pd.read_csv(old).columns) == sweep.COLUMNS and fixed.done_keys() == {("a", "numpy", 1, 1)}


# --------------------------------------------------------------------------- statistics of a row

def test_row_statistics_from_known_samples():
    samples = np.array([1000, 1000, 1000, 1000, 6000], dtype=np.int64)  # ns
    runner = backends.Runner("numpy", lambda x: x, 1, 1, {"convert_s": None, "load_s": 0.5, "kernels": "k"})
    par = {"parity": "pass", "reason": "", "tolerance": "t", "max_abs_err": 0.0, "top1_agree": 1.0,
           "accuracy": 0.9, "ref_accuracy": 0.9, "call_s": 1e-6}
    row = worker._row({"model": "m"}, "numpy", 1, runner, par, samples, 1, 50.0, "samples/x.npz")
    assert row["n"] == 5 and row["median_us"] == 1.0 and row["min_us"] == 1.0 and row["mean_us"] == 2.0
    assert row["std_us"] == pytest.approx(np.sqrt(5.0)) and row["mad_us"] == 0.0
    assert row["cv"] == pytest.approx(np.sqrt(5.0) / 2) and row["unstable"] is True
    assert row["status"] == "ok" and row["remeasured"] == 1 and row["timer_overhead_ns"] == 50.0
    assert {k: row[k] for k in timing.summarize(samples)} == timing.summarize(samples)
    bad = worker._row({"model": "m"}, "numpy", 1, runner, dict(par, parity="fail", reason="max_abs_err 1 > 0.0001"),
                      samples, 0, 50.0, None)
    assert bad["status"] == "failed" and bad["reason"].startswith("parity: ") and bad["median_us"] == 1.0


def test_timing_plan_adapts_to_slow_calls():
    fast, slow = worker._timing_plan(1e-5, 0.2), worker._timing_plan(0.5, 0.2)
    assert fast["min_samples"] == 10 and fast["rounds"] == 5
    assert slow["min_samples"] == 3 and slow["rounds"] == 3 and slow["round_warmup_calls"] == 0


# --------------------------------------------------------------------------- real sweeps (worker processes)

@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setenv(backends.EXTRA_ENV, fake_backends.HOOK)
    monkeypatch.setenv("OVERHEAD_TEST_CRASH_AFTER", "12")  # parity (8 calls) passes, timing crashes


def test_crashes_and_failures_are_rows_and_the_sweep_goes_on(data_env, fakes, tmp_path):
    model = data_env / "models" / "cnn_seed.keras"
    flops = json.loads(model.with_suffix(".json").read_text())["flops"]
    names = ["numpy", "test.crash", "test.crash_timing", "test.raise", "test.wrong", "litert"]
    rows = sweep.run([str(model)], names, [1, 2], [1], 0.02, out_dir=tmp_path, machine="testbox",
                     parity_n=8, max_flops_per_call=1.5 * flops, gemm_n=128, progress=False)
    by = {(r.backend, r.batch): r for r in rows.itertuples()}
    assert len(rows) == 12 and set(rows.machine) == {"testbox"}
    assert by["numpy", 1].status == "ok" and by["litert", 1].status == "ok"
    crash = by["test.crash", 1]
    assert crash.status == "failed" and "signal 11" in crash.reason and "test.crash" in crash.reason
    late = by["test.crash_timing", 1]
    assert late.status == "failed" and "signal 11" in late.reason and "timing" in late.reason
    assert by["test.raise", 1].status == "failed" and "deliberate failure" in by["test.raise", 1].reason
    wrong = by["test.wrong", 1]
    assert wrong.status == "failed" and wrong.reason.startswith("parity:") and wrong.median_us > 0
    assert all(by[n, 2].status == "skipped" and "max_flops_per_call" in by[n, 2].reason for n in names)
    ok = rows[rows.status == "ok"]
    assert ok.samples_file.notna().all()
    for f in ok.samples_file:
        assert len(timing.load_samples(tmp_path / f)["samples_ns"]) >= 3
    assert (tmp_path / "bench.meta.json").exists() and (tmp_path / "gemm.meta.json").exists()
    meta = json.loads((tmp_path / "bench.meta.json").read_text())
    assert meta["threads_readback"]["1"]["tf_intra"] == 1
    gemm = pd.read_csv(tmp_path / "gemm.csv")
    assert list(gemm.columns) == ["machine", "threads", "n", "gflops"] and (gemm.gflops > 0).all()


_SWEEP = """
import sys
from overhead import sweep
sweep.run([sys.argv[1]], ["numpy", "test.slow", "litert"], [1, 2, 3], [1], 0.3, out_dir=sys.argv[2],
          machine="testbox", parity_n=8, gemm_n=None, progress=False)
"""


def test_killed_sweep_keeps_finished_rows_and_resumes(data_env, fakes, tmp_path):
    model = data_env / "models" / "logreg.keras"
    out = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP, str(model), str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    bench = out / "bench.csv"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if bench.exists() and len(pd.read_csv(bench)) >= 1:
                break
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-run
        proc.wait()
    before = pd.read_csv(bench)
    assert 1 <= len(before) < 9
    with open(bench, "a") as fh:
        fh.write("testbox,logreg,abc,1")  # and a torn line, as a kill in mid-write leaves
    rows = sweep.run([str(model)], ["numpy", "test.slow", "litert"], [1, 2, 3], [1], 0.05, out_dir=out,
                     machine="testbox", parity_n=8, gemm_n=None, progress=False)
    assert len(rows) == 9 and not rows.duplicated(list(sweep.KEY)).any()
    assert set(rows.status) == {"ok"}
    kept = rows.merge(before, on=list(sweep.KEY), suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept.date == kept.date_before).all()
    assert (kept.median_us == kept.median_us_before).all()
    # a retrained model (other content, same name) makes its old rows stale: they are redone
    moved = tmp_path / "models" / "logreg.keras"
    moved.parent.mkdir()
    moved.write_bytes((data_env / "models" / "mlp_tiny.keras").read_bytes())
    rows = sweep.run([str(moved)], ["numpy", "litert"], [1], [1], 0.02, out_dir=out, machine="testbox",
                     parity_n=8, gemm_n=None, progress=False, max_rows=1)  # stops after one new row
    assert len(rows) == 1 and rows.model_sha.iloc[0] != kept.model_sha.iloc[0]
