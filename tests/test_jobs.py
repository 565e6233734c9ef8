"""The jobs of the sweep worker, the LoadGen children and the versions child: frozen dataclasses that survive
their trip through JSON (overhead.harness.jobs), read by the one child entry point (no process started here)."""
import dataclasses
import io
import json
import sys
from pathlib import Path

import pytest

from overhead.experiments import loadgen_http, loadgen_sut, sweep, versions_child
from overhead.experiments.loadgen_jobs import ServeJob, SutJob
from overhead.experiments.versions_child import VersionsJob
from overhead.experiments.worker import WorkerJob
from overhead.harness import jobs

ITEM = {"key": "SingleStream|m|abc|noop|t1", "scenario": "SingleStream", "path": "noop", "threads": 1,
        "batching": None, "done": [[10.0, True, "steer"]], "bisect": {"precision": 0.15}}
JOBS = [
    WorkerJob(model="m", model_path="/d/m.keras", threads=2, keys=(("numpy", 1), ("tf.function", 4)), run=2,
              process="jax", max_flops_per_call=float("inf"), isolate=(4,), input_shape="1x28x28x1"),
    SutJob(model="m", model_path="/d/m.keras", threads=1, items=(ITEM,), settings={"min_query_count": 100},
           wrk="/usr/bin/wrk"),
    ServeJob(path="noop", model_path="/d/m.keras", threads=1, out_width=10, input_shape=(28, 28, 1), port=8123),
    VersionsJob(models=({"model": "m", "weights": "/w.npz", "inputs": "/x.npz", "out": "/o.npz", "scratch": "/s"},),
                paths=("predict", "tflite"), threads=2, budget_s=0.3, rss_calls=(1, 200)),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: type(j).__name__)
def test_a_job_survives_json_and_stays_frozen(job):
    back = jobs.from_json(type(job), jobs.to_json(job))
    assert jobs.to_json(back) == jobs.to_json(job)  # nested tuples come back as lists; the JSON is the same
    assert all(isinstance(getattr(back, f.name), tuple) for f in dataclasses.fields(back)
               if isinstance(getattr(job, f.name), tuple))
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.threads = 3


def test_the_sut_job_names_the_serving_processes_job():
    serve = JOBS[1].serving("numpy", out_width=10)
    assert serve == ServeJob(path="numpy", model_path="/d/m.keras", threads=1, process="tf", out_width=10)


def test_the_sweep_builds_worker_jobs_and_refuses_unknown_fields():
    job = sweep._job_for("m", Path("/d/m.keras"), 2, [("numpy", "1")], {"mode": "check", "parity_n": 8}, run=3)
    assert job.keys == (("numpy", 1),) and job.run == 3 and job.mode == "check" and job.parity_n == 8
    with pytest.raises(TypeError, match="budget"):
        sweep._job_for("m", Path("/d/m.keras"), 1, [("numpy", 1)], {"budget": 0.1})


@pytest.mark.parametrize("main, command, cls", [
    (sweep.main, "worker", WorkerJob), (loadgen_sut.main, "child", SutJob), (loadgen_http.main, "serve", ServeJob),
    (versions_child.main, "child", VersionsJob)])
def test_every_child_reads_its_job_through_the_one_entry_point(main, command, cls, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"threads": 1, "bogus": 2})))
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cls.__name__}: unknown field(s) bogus") and err.count("\n") == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("{}"))
    assert main(["nope"]) == 2 and "no job on stdin" in capsys.readouterr().err
