"""The sweep: result-file robustness, statistics of a row, crash isolation, skips, resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time

import fake_backends
import numpy as np
import pandas as pd
import pytest
from study import run_sweep

from overhead import backends
from overhead.base import atomic
from overhead.base.settings import Settings
from overhead.experiments import sweep, worker
from overhead.harness import interval, stats

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
           "accuracy": 0.9, "ref_accuracy": 0.9, "call_s": 1e-6, "logit_rel_err": 1e-7, "logit_cos": 1.0,
           "top1_decisive": 1.0, "n_decisive": 40, "criterion": "float32: ..."}
    row = worker._row({"model": "m"}, "numpy", 1, runner, par, samples, 2, 50.0, "samples/x.npz")
    assert row["n"] == 5 and row["median_us"] == 1.0 and row["min_us"] == 1.0 and row["mean_us"] == 2.0
    assert row["std_us"] == pytest.approx(np.sqrt(5.0)) and row["mad_us"] == 0.0
    assert row["cv"] == pytest.approx(np.sqrt(5.0) / 2) and row["run"] == 2
    assert row["logit_rel_err"] == 1e-7 and row["criterion"] == "float32: ..." and row["n_decisive"] == 40
    assert row["status"] == "ok" and row["timer_overhead_ns"] == 50.0
    assert {k: row[k] for k in stats.summarize(samples)} == pytest.approx(stats.summarize(samples), nan_ok=True)
    bad = worker._row({"model": "m"}, "numpy", 1, runner, dict(par, parity="fail", reason="logit_rel_err 1 > 0.001"),
                      samples, 1, 50.0, None)
    assert bad["status"] == "failed" and bad["reason"].startswith("parity: ") and bad["median_us"] == 1.0


def test_values_per_run_follow_the_pyperf_floors():
    assert worker.min_values(10e-6) == 200  # fast: 200 values (2 ms)
    assert worker.min_values(5e-3) == 100  # 200 would take 1 s: 0.5 s of calls is enough
    assert worker.min_values(0.04) == 20 and worker.min_values(2.0) == 20  # slow: never fewer than 20
    plan = worker._timing_plan({"fast": 1e-5, "slow": 0.5}, 0.1)
    assert plan["min_samples"] == {"fast": 200, "slow": 20} and plan["rounds"] == 5
    assert plan["round_warmup_calls"] == 0 and plan["warmup_calls"] == 1


# --------------------------------------------------------------------------- runs (no processes)

class FakeWorkers:
    """Stands in for the worker processes: records the jobs and emits per-run rows with known samples."""

    def __init__(self, out_dir, samples_for, parity_fails_in_run=None):
        self.out_dir, self.samples_for, self.jobs = out_dir, samples_for, []
        self.parity_fails_in_run = parity_fails_in_run

    def __call__(self, job, on_event, log_path):
        self.jobs.append((job.run, job.threads, job.process, sorted(b for b, _ in job.keys)))
        self.parity_n = getattr(self, "parity_n", []) + [job.parity_n]
        for backend, batch in job.keys:
            samples = self.samples_for(backend, batch, job.threads, job.run)
            row = {"model": job.model, "model_sha": None, "flops": 10, "params": 1, "backend": backend,
                   "batch": batch, "threads": job.threads, "run": job.run}
            if samples is None:  # raised while preparing: never timed
                on_event({"event": "row", "row": dict(row, status="failed", reason="boom")})
                continue
            rel = f"samples/{job.model}/{backend}__b{batch}__t{job.threads}__r{job.run}.npz"
            atomic.save_samples(self.out_dir / rel, {"samples_ns": samples})
            bad = job.run == self.parity_fails_in_run
            on_event({"event": "row", "row": dict(row, status="failed" if bad else "ok",
                                                  parity="fail" if bad else "pass",
                                                  reason="parity: logit_rel_err 0.5 > 0.001" if bad else "",
                                                  logit_rel_err=0.5 if bad else 1e-6 * job.run,
                                                  samples_file=rel, timer_overhead_ns=40.0, **stats.summarize(samples))})


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models" / "m.keras"
    path.parent.mkdir()
    path.write_bytes(b"not really a model: the fake workers never open it")
    return path


@pytest.fixture
def jax_kind(monkeypatch):
    fake = backends.Backend("test.jaxlike", "test", "a path needing a Keras-on-JAX process", None, process="jax")
    monkeypatch.setitem(backends.REGISTRY, "test.jaxlike", fake)


def test_runs_interleave_thread_settings_and_pool_every_run(tmp_path, model_file, jax_kind):
    steady = np.full(30, 2_000_000, dtype=np.int64)
    fake = FakeWorkers(tmp_path, lambda b, n, t, r: steady + r)
    rows = run_sweep([str(model_file)], ["numpy", "test.jaxlike"], [1, 4], [1, 2], 0.01, runs=3, max_runs=5,
                     big_batch_backends=["numpy"], out_dir=tmp_path, machine="box", gemm_n=None,
                     progress=False, launch=fake)
    # run 1 t=1 (tf, jax), run 1 t=2, run 2 t=1, ...: thread settings and process kinds interleaved in time
    assert [j[:3] for j in fake.jobs] == [(r, t, k) for r in (1, 2, 3) for t in (1, 2) for k in ("tf", "jax")]
    assert all(j[3] == ["numpy", "numpy"] for j in fake.jobs if j[2] == "tf")  # batches 1 and 4
    assert len(rows) == 6 and set(rows.batch[rows.backend == "test.jaxlike"]) == {1}  # batch 4: numpy only
    assert (rows.runs == 3).all() and (rows.n == 90).all() and (rows.remeasured == 0).all()
    assert (~rows.unstable.astype(bool)).all() and set(rows.ci_method) == {interval.CI_METHOD}
    assert (rows.logit_rel_err == 1e-6).all()  # run 1's parity: the full check
    pooled = atomic.load_samples(tmp_path / rows.samples_file.iloc[0])
    np.testing.assert_array_equal(pooled["run_lengths"], [30, 30, 30])
    np.testing.assert_array_equal(pooled["samples_ns"], np.concatenate([steady + 1, steady + 2, steady + 3]))
    assert not list((tmp_path / "samples" / "m").glob("*__r*.npz"))  # per-run files pooled, then removed
    assert fake.parity_n[:4] == [128] * 4 and set(fake.parity_n[4:]) == {sweep.LATER_PARITY_N}
    assert list(pd.read_csv(tmp_path / "bench.csv").columns) == sweep.COLUMNS
    meta = json.loads((tmp_path / "bench.meta.json").read_text())
    assert len(meta["jobs"]) == 12 and meta["jobs"][0] == {**meta["jobs"][0], "model": "m", "run": 1, "threads": 1,
                                                           "process": "tf", "configs": 2}
    # the code each path times, recorded with the results for the report's appendix
    assert "def _prep_numpy" in meta["timed_code"]["numpy"]["source"]
    assert meta["timed_code"]["numpy"]["where"] == "overhead.backends.numpy_paths._prep_numpy"
    assert meta["timed_code"]["test.jaxlike"]["source"] == "" and meta["timed_code"]["test.jaxlike"]["reason"]


def test_configurations_whose_runs_disagree_get_more_runs_and_keep_every_sample(tmp_path, model_file):
    rng = np.random.default_rng(0)

    def samples(backend, batch, threads, run):
        if backend == "numpy":  # runs agree, calls jittery (std ~30 % of the mean): not instability
            return (2_000_000 * rng.lognormal(0, 0.3, 200)).astype(np.int64)
        # litert: run 2 is 20 % slower than the others, each run steady
        return (2_000_000 * (1.2 if run == 2 else 1.0) * rng.lognormal(0, 0.01, 30)).astype(np.int64)

    fake = FakeWorkers(tmp_path, samples)
    rows = run_sweep([str(model_file)], ["numpy", "litert"], [1], [1], 0.01, runs=3, max_runs=5,
                     out_dir=tmp_path, machine="box", gemm_n=None, progress=False, launch=fake)
    by = rows.set_index("backend")
    assert by.loc["numpy", "runs"] == 3 and by.loc["numpy", "remeasured"] == 0
    assert not bool(by.loc["numpy", "unstable"]) and bool(by.loc["numpy", "unstable_pyperf"])
    assert by.loc["numpy", "jitter_p90"] > 1.2
    assert by.loc["litert", "runs"] == 5 and by.loc["litert", "remeasured"] == 2 and by.loc["litert", "n"] == 150
    assert [j[0] for j in fake.jobs] == [1, 2, 3, 4, 5] and fake.jobs[3][3] == ["litert"]  # only the shaky one
    # calm later runs are pooled with the rest: the disagreement of run 2 stays on record
    assert bool(by.loc["litert", "unstable"]) and "and 2 disagree" in by.loc["litert", "unstable_reason"]
    assert by.loc["litert", "run_spread"] > 0.15 and by.loc["litert", "ci_hi_us"] > by.loc["litert", "median_us"]


def test_a_path_that_failed_before_timing_is_not_run_again(tmp_path, model_file):
    fake = FakeWorkers(tmp_path, lambda b, n, t, r: None if b == "litert" else np.full(30, 2_000_000))
    rows = run_sweep([str(model_file)], ["numpy", "litert"], [1], [1], 0.01, runs=3, max_runs=5,
                     out_dir=tmp_path, machine="box", gemm_n=None, progress=False, launch=fake)
    by = rows.set_index("backend")
    assert by.loc["litert", "status"] == "failed" and by.loc["litert", "runs"] == 1
    assert [j[3] for j in fake.jobs] == [["litert", "numpy"], ["numpy"], ["numpy"]]


def test_a_run_that_fails_parity_fails_the_row(tmp_path, model_file):
    fake = FakeWorkers(tmp_path, lambda b, n, t, r: np.full(30, 2_000_000), parity_fails_in_run=2)
    rows = run_sweep([str(model_file)], ["numpy"], [1], [1], 0.01, runs=3, max_runs=3, out_dir=tmp_path,
                     machine="box", gemm_n=None, progress=False, launch=fake)
    row = rows.iloc[0]
    assert row.status == "failed" and row.parity == "fail" and row.logit_rel_err == 0.5
    assert row.runs == 3 and row.n == 90  # still timed: the numbers stay visible


def test_finished_runs_survive_and_are_not_redone(tmp_path, model_file):
    calls = {"n": 0}

    def dies_in_run_two(backend, batch, threads, run):
        calls["n"] += 1
        if run == 2:
            raise KeyboardInterrupt  # the sweep is interrupted in the middle of run 2
        return np.full(25, 3_000_000 + run, dtype=np.int64)

    with pytest.raises(KeyboardInterrupt):
        run_sweep([str(model_file)], ["numpy"], [1], [1], 0.01, runs=3, out_dir=tmp_path, machine="box",
                  gemm_n=None, progress=False, launch=FakeWorkers(tmp_path, dies_in_run_two))
    assert len(pd.read_csv(tmp_path / "bench.csv")) == 0
    again = FakeWorkers(tmp_path, lambda b, n, t, r: np.full(25, 3_000_000 + r, dtype=np.int64))
    rows = run_sweep([str(model_file)], ["numpy"], [1], [1], 0.01, runs=3, out_dir=tmp_path, machine="box",
                     gemm_n=None, progress=False, launch=again)
    assert [j[0] for j in again.jobs] == [2, 3]  # run 1 was kept
    assert rows.runs.iloc[0] == 3 and rows.n.iloc[0] == 75 and rows.min_us.iloc[0] == pytest.approx(3000.001)


# --------------------------------------------------------------------------- real sweeps (worker processes)

@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setenv(backends.EXTRA_ENV, fake_backends.HOOK)
    monkeypatch.setenv("OVERHEAD_TEST_CRASH_AFTER", "12")  # parity (8 calls) passes, timing crashes
    saved = dict(backends.REGISTRY)
    fake_backends.register()  # in this process too: the hook is read once, maybe before the variable was set
    yield
    backends.REGISTRY.clear()
    backends.REGISTRY.update(saved)


@pytest.mark.slow
def test_crashes_and_failures_are_rows_and_the_sweep_goes_on(data_env, fakes, tmp_path):
    model = data_env / "models" / "cnn_seed.keras"
    flops = json.loads(model.with_suffix(".json").read_text())["flops"]
    names = ["numpy", "test.crash", "test.crash_timing", "test.raise", "test.wrong", "litert"]
    rows = run_sweep([str(model)], names, [1, 2], [1], 0.02, out_dir=tmp_path, machine="testbox",
                     parity_n=8, max_flops_per_call=1.5 * flops, gemm_n=128, progress=False, runs=1, max_runs=1)
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
        assert len(atomic.load_samples(tmp_path / f)["samples_ns"]) >= 20
    assert (ok.runs == 1).all() and ok.unstable.astype(bool).all()  # one run: agreement not judged
    assert ok.unstable_reason.str.contains("only 1 run").all() and ok.unstable_pyperf.astype(bool).all()
    assert (ok.logit_rel_err < 1e-3).all() and ok.criterion.str.startswith("float32").all()
    assert wrong.logit_rel_err > 0.5
    assert (tmp_path / "bench.meta.json").exists() and (tmp_path / "gemm.meta.json").exists()
    meta = json.loads((tmp_path / "bench.meta.json").read_text())
    assert meta["threads_readback"]["1"]["tf_intra"] == 1
    gemm = pd.read_csv(tmp_path / "gemm.csv")
    assert list(gemm.columns) == ["machine", "threads", "n", "gflops"] and (gemm.gflops > 0).all()


_SWEEP = """
import sys
from overhead.base.settings import Settings
from overhead.experiments import sweep
bench = {"models": [sys.argv[1]], "backends": ["numpy", "test.slow", "litert"], "batches": [1, 2, 3], "threads": [1],
         "budget_s": 0.3, "parity_n": 8, "gemm_n": None, "runs": 2, "max_runs": 2, "big_batch_models": None,
         "big_batch_backends": None, "secondary_backends": [], "threads_models": None}
sweep.run(Settings.from_dict({"machine": "testbox", "bench": bench}), out_dir=sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_killed_sweep_keeps_finished_runs_and_resumes(data_env, fakes, tmp_path):
    model = data_env / "models" / "logreg.keras"
    out = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP, str(model), str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    log = out / "runs.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if log.exists() and log.read_text().count("\n") >= 1:
                break
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-run
        proc.wait()
    before = [json.loads(line) for line in log.read_text().splitlines()]
    assert 1 <= len(before) < 18 and len(pd.read_csv(out / "bench.csv")) == 0
    with open(log, "a") as fh:
        fh.write('{"model": "logreg", "backend": "nu')  # and a torn line, as a kill in mid-write leaves
    with open(out / "bench.csv", "a") as fh:
        fh.write("testbox,logreg,abc,1")
    rows = run_sweep([str(model)], ["numpy", "test.slow", "litert"], [1, 2, 3], [1], 0.05, out_dir=out,
                     machine="testbox", parity_n=8, gemm_n=None, progress=False, runs=2, max_runs=2)
    assert len(rows) == 9 and not rows.duplicated(list(sweep.KEY)).any()
    assert set(rows.status) == {"ok"} and (rows.runs == 2).all() and (rows.n >= 40).all()
    after = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(after) == 18  # every (configuration, run) once: the finished runs were not redone
    kept = {(r["backend"], r["batch"], r["run"]): r["date"] for r in after}
    assert all(kept[r["backend"], r["batch"], r["run"]] == r["date"] for r in before)
    # nothing left to do: a re-run starts no worker and keeps every row
    again = run_sweep([str(model)], ["numpy", "test.slow", "litert"], [1, 2, 3], [1], 0.05, out_dir=out,
                      machine="testbox", parity_n=8, gemm_n=None, progress=False, runs=2, max_runs=2,
                      launch=lambda *a: pytest.fail("no run should be left"))
    assert (again.date.values == rows.date.values).all()
    # a retrained model (other content, same name) makes its old rows stale: they are redone
    moved = tmp_path / "models" / "logreg.keras"
    moved.parent.mkdir()
    moved.write_bytes((data_env / "models" / "mlp_tiny.keras").read_bytes())
    rows = run_sweep([str(moved)], ["numpy", "litert"], [1], [1], 0.02, out_dir=out, machine="testbox",
                     parity_n=8, gemm_n=None, progress=False, max_rows=1, runs=1, max_runs=1)
    assert len(rows) == 1 and rows.model_sha.iloc[0] != again.model_sha.iloc[0]


def test_models_for_limits_a_backend_to_its_models_at_every_batch():
    from overhead.experiments import sweep

    only = {"jax.jit": ("cnn_seed",)}
    assert sweep.wanted("cnn_seed", "jax.jit", 1, 1, models_for=only)
    assert not sweep.wanted("resnet_mnist", "jax.jit", 1, 1, models_for=only)
    assert not sweep.wanted("resnet_mnist", "jax.jit", 8, 1, ("resnet_mnist",), ("jax.jit",), only)
    assert sweep.wanted("resnet_mnist", "numpy", 1, 1, models_for=only)  # not listed: every model
    study = Settings().bench
    assert set(study.models_for) == set(study.secondary_backends)


def test_threads_models_run_the_other_thread_settings_on_the_listed_models_only(tmp_path, model_file):
    steady = np.full(30, 2_000_000, dtype=np.int64)
    fake = FakeWorkers(tmp_path, lambda b, n, t, r: steady)
    rows = run_sweep([str(model_file)], ["numpy"], [1], [1, 2], 0.01, runs=3, max_runs=3, out_dir=tmp_path,
                     machine="box", gemm_n=None, progress=False, launch=fake, threads_models=("other",))
    assert {j[1] for j in fake.jobs} == {1} and list(rows.threads) == [1]  # "m" is not listed: one thread only
    fake = FakeWorkers(tmp_path / "b", lambda b, n, t, r: steady)
    rows = run_sweep([str(model_file)], ["numpy"], [1], [1, 2], 0.01, runs=3, max_runs=3, out_dir=tmp_path / "b",
                     machine="box", gemm_n=None, progress=False, launch=fake, threads_models=("m",))
    assert sorted(rows.threads) == [1, 2]


def test_rows_under_a_renamed_models_old_name_are_dropped_with_their_samples(tmp_path):
    model = tmp_path / "models" / "resnet18_32px.keras"
    model.parent.mkdir()
    model.write_bytes(b"not really a model: the fake workers never open it")
    old = "samples/resnet18_cifar/numpy__b1__t1.npz"
    atomic.save_samples(tmp_path / old, {"samples_ns": np.full(3, 1)})
    stale = {c: None for c in sweep.COLUMNS}
    stale.update(machine="box", model="resnet18_cifar", model_sha="abc", backend="numpy", batch=1, threads=1,
                 status="ok", samples_file=old, date="2026-12-01T00:00:00+00:00")
    other = dict(stale, model="resnet18_imagenet", samples_file=None)  # renamed, but not run now: kept
    pd.DataFrame([stale, other], columns=sweep.COLUMNS).to_csv(tmp_path / "bench.csv", index=False)
    fake = FakeWorkers(tmp_path, lambda b, n, t, r: np.full(30, 2_000_000))
    rows = run_sweep([str(model)], ["numpy"], [1], [1], 0.01, runs=1, max_runs=1, out_dir=tmp_path, machine="box",
                     gemm_n=None, progress=False, launch=fake)
    assert sorted(rows["model"]) == ["resnet18_32px", "resnet18_imagenet"]
    assert not (tmp_path / old).exists()
