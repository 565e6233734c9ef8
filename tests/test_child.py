"""The one child-process runner: protocol lines, thread environment, failures, stalls and timeouts."""
import os
import re
from pathlib import Path

import pytest

from overhead.harness import child

ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))


def test_a_child_gets_its_job_threads_and_kind_and_its_stray_output_is_skipped():
    seen = []
    done = child.run_child("child_script", ["echo"], job={"n": 7}, threads=3, kind="jax", env=ENV,
                           timeout_s=60, on_event=seen.append)
    assert done.ok and done.failure() == ""
    assert done.events == seen == [{"event": "start", "n": 7}, [1, 2, 3],
                                   {"event": "done", "threads": "3", "keras": "jax"}]
    assert done.last("start") == {"event": "start", "n": 7} and done.last() == seen[-1]
    assert "a native library prints here" in done.stderr_tail


def test_a_crash_says_why_in_one_line():
    done = child.run_child("child_script", ["crash"], env=ENV, timeout_s=60)
    assert not done.ok and done.returncode == 3 and done.last("start") == {"event": "start"}
    assert done.failure() == "exit status 3: ValueError: the reason it died"
    killed = child.run_child("child_script", ["kill"], env=ENV, timeout_s=60)
    assert killed.failure().startswith("killed by signal 9, SIGKILL")


def test_a_stall_and_a_timeout_end_the_child(tmp_path):
    stalled = child.run_child("child_script", ["hang"], env=ENV, stall_timeout_s=1.0, timeout_s=30,
                              stderr_path=tmp_path / "err.log")
    assert stalled.stalled and not stalled.timed_out and stalled.events == [{"event": "start"}]
    assert stalled.failure() == "stalled (no progress for 1 s)"
    assert "a native library prints here" in (tmp_path / "err.log").read_text()
    late = child.run_child("child_script", ["hang"], env=ENV, timeout_s=1.5)
    assert late.timed_out and late.failure() == "timed out after 1.5 s: a native library prints here"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        child.child_env(threads=0)
    with pytest.raises(ValueError, match="unknown process kind 'torch'"):
        child.child_env(kind="torch")


def test_typed_jobs_round_trip_and_refuse_what_does_not_fit():
    from dataclasses import dataclass

    from overhead.harness import jobs

    @dataclass(frozen=True)
    class Job:
        path: str
        sizes: tuple = (1, 2)

    assert jobs.from_json(Job, jobs.to_json(Job("x", (3,)))) == Job("x", (3,))
    for text, words in (('{"pat": "x"}', "unknown field(s) pat"), ("{}", "missing field(s) path"), ("[1]", "object"),
                        ("nope", "not JSON")):
        with pytest.raises(jobs.JobError, match=re.escape(words)):
            jobs.from_json(Job, text)
    with pytest.raises(TypeError):
        jobs.to_json({"path": "x"})
