"""fmaloop: the FMA-throughput probe compiles and runs where a C compiler exists, and fails cleanly elsewhere."""
import pytest

from overhead.experiments import fmaloop


def test_no_compiler_is_a_clean_failure(tmp_path):
    out = fmaloop.measure(cc=str(tmp_path / "no-such-cc"))
    assert out["status"] == "failed" and "could not run" in out["reason"]


def test_a_compile_error_is_a_clean_failure(tmp_path):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'fatal error: nope' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = fmaloop.measure(cc=str(fake))
    assert out["status"] == "failed" and "compile failed" in out["reason"] and "nope" in out["reason"]


def test_source_keeps_each_accumulator_in_its_own_variable():
    src = fmaloop.source(3)
    assert "a2 = a2 * m + c;" in src and "a3" not in src and "a0 + a1 + a2" in src


@pytest.mark.skipif(fmaloop.compiler() is None, reason="no C compiler on this machine")
def test_measured_loop_reports_rate_lanes_and_rejects_a_narrow_build():
    out = fmaloop.measure(min_s=0.01, reps=1)
    assert out["status"] == "ok", out["reason"]
    assert out["gflops"] > 0 and out["lanes"] in (4, 8, 16) and out["accumulators"] == fmaloop.ACCUMULATORS
    narrow = fmaloop.measure(min_s=0.01, reps=1, expected_lanes=64)
    assert narrow["status"] == "failed" and "understate" in narrow["reason"]
