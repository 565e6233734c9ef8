"""make bench's orchestration: each row names its BLAS setting, the targets keep the settings apart, and a
machine that pins OPENBLAS_CORETYPE gets the same cases with it unset (no benchmark runs here: `run` is faked)."""
import json

import pytest

from overhead.experiments import enginebench as E
from overhead.harness import child


def fake_rows(blas, numpy_us=500.0):
    return [{"model": "MobileNetV2", "batch": 1, "threads": 1, "blas": blas, "flops": 2e7, "load_avg_1min": 0.0,
             "numpy_us": numpy_us, "numpy_npz_us": numpy_us, "numpy_plain_us": None, "tf_function_us": 1000.0,
             "litert_us": 160.0, "err_numpy": 0.0, "err_numpy_npz": 0.0, "err_numpy_plain": None,
             "err_tf_function": 0.0, "err_litert": 0.0, "tol": 1e-4, "n_numpy": 10, "numpy_gflops": 40.0}]


def test_blas_label_names_the_setting_as_blasab_does():
    assert E.blas_label({"OPENBLAS_CORETYPE": "Haswell"}) == "OPENBLAS_CORETYPE=Haswell"
    assert E.blas_label({}) == "OPENBLAS_CORETYPE unset"


def test_targets_keep_two_blas_settings_apart_and_judge_each():
    rows = fake_rows("OPENBLAS_CORETYPE=Haswell", 640.0) + fake_rows("OPENBLAS_CORETYPE unset", 400.0)
    got = {(c["case"], c["target"]): c["ok"] for c in E.targets(rows)}
    assert got[("MobileNetV2 b1 [OPENBLAS_CORETYPE=Haswell]", "numpy / litert")] is False  # 4.0x
    assert got[("MobileNetV2 b1 [OPENBLAS_CORETYPE unset]", "numpy / litert")] is True  # 2.5x
    assert "[OPENBLAS_CORETYPE unset]" in E.format_report(rows, E.targets(rows))


@pytest.mark.parametrize("q25,q75,want", [(380.0, 420.0, "pass"),   # band 2.3-2.8 (LiteRT 150-180 us)
                                          (440.0, 520.0, "noise"),  # median 3.0, band 2.4-3.5: across the goal
                                          (560.0, 600.0, "miss")])  # band 3.1-4.0
def test_a_litert_target_is_judged_on_the_calls_band_not_the_median_alone(q25, q75, want):
    row = fake_rows("OPENBLAS_CORETYPE unset", (q25 + q75) / 2)[0]
    row.update(numpy_q25_us=q25, numpy_q75_us=q75, litert_q25_us=150.0, litert_q75_us=180.0,
               tf_function_q25_us=950.0, tf_function_q75_us=1050.0)
    got = {c["target"]: c for c in E.targets([row])}
    assert got["numpy / litert"]["verdict"] == want
    assert got["numpy / tf.function"]["verdict"] == "pass"
    assert f": {want})" in E.format_report([row], E.targets([row]))


@pytest.mark.parametrize("floor_us,want", [(400.0, "miss"),            # floor band 2.2-2.9: reachable in NumPy
                                           (580.0, "beyond NumPy")])   # floor band 3.1-4.0: not
def test_a_miss_whose_numpy_floor_misses_too_is_beyond_numpy(floor_us, want):
    row = fake_rows("OPENBLAS_CORETYPE unset", 700.0)[0]
    row.update(numpy_q25_us=680.0, numpy_q75_us=720.0, litert_q25_us=150.0, litert_q75_us=180.0,
               tf_function_q25_us=950.0, tf_function_q75_us=1050.0, numpy_floor_us=floor_us,
               numpy_floor_q25_us=floor_us - 20, numpy_floor_q75_us=floor_us + 20)
    got = {c["target"]: c for c in E.targets([row])}
    assert got["numpy / litert"]["verdict"] == want
    assert got["numpy floor / litert"]["value"] == pytest.approx(floor_us / 160.0)
    assert got["numpy floor / litert"]["ok"] is None  # reported, no goal of its own
    assert "numpy floor / litert" in E.format_report([row], E.targets([row]))


def test_rows_without_quartiles_get_no_verdict():
    got = {c["target"]: c for c in E.targets(fake_rows("OPENBLAS_CORETYPE unset"))}
    assert got["numpy / litert"]["band"] is None and got["numpy / litert"]["verdict"] == ""


def test_one_setting_keeps_the_plain_case_names():
    cases = {c["case"] for c in E.targets(fake_rows("OPENBLAS_CORETYPE unset"))}
    assert cases == {"MobileNetV2 b1"}


@pytest.fixture
def fake_run(monkeypatch):
    monkeypatch.setattr(E, "run", lambda **kw: fake_rows(E.blas_label()))
    monkeypatch.setattr(E, "save", lambda rows, checks: "nowhere")


def test_a_pinned_coretype_also_runs_the_cases_unset(monkeypatch, fake_run, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    asked = []
    monkeypatch.setattr(E, "rows_with_blas_unset", lambda job: asked.append(job) or fake_rows("OPENBLAS_CORETYPE unset"))
    assert E.main(["--only-apps", "--quick"]) == 0
    assert asked == [E.BenchJob(tuple(E.APP_CASES), quick=True)]
    out = capsys.readouterr().out
    assert "MobileNetV2 b1 [OPENBLAS_CORETYPE=Haswell]" in out and "MobileNetV2 b1 [OPENBLAS_CORETYPE unset]" in out


def test_setting_only_and_an_unset_machine_run_once(monkeypatch, fake_run):
    monkeypatch.setattr(E, "rows_with_blas_unset", lambda job: pytest.fail("no second run expected"))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert E.main(["--blas-setting-only", "--no-save"]) == 0
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert E.main(["--no-save"]) == 0


def test_the_child_is_launched_with_coretype_unset_and_hands_back_its_rows(monkeypatch, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    seen = {}

    def launch(module, args, *, job, env, on_event):
        seen.update(module=module, args=args, job=job, env=env)
        on_event({"event": "log", "text": "  MobileNetV2 b1 [OPENBLAS_CORETYPE unset]: numpy 400 us"})
        return child.ChildResult(returncode=0, events=[{"event": "rows", "rows": fake_rows("OPENBLAS_CORETYPE unset")}])
    job = E.BenchJob((("MobileNetV2", 1),), quick=True)
    rows = E.rows_with_blas_unset(job, launch=launch)
    assert rows[0]["blas"] == "OPENBLAS_CORETYPE unset" and "OPENBLAS_CORETYPE" not in seen["env"]
    assert (seen["module"], seen["args"], seen["job"]) == ("overhead.experiments.enginebench", ["child"], job)
    assert "numpy 400 us" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="exit status 1"):
        E.rows_with_blas_unset(job, launch=lambda *a, **k: child.ChildResult(returncode=1))


def test_the_child_entry_measures_the_job_and_writes_rows_as_json(monkeypatch):
    import io
    monkeypatch.setattr(E, "run", lambda **kw: kw["log"]("a line") or fake_rows("OPENBLAS_CORETYPE unset"))
    proto = io.StringIO()
    assert E.measure_job(E.BenchJob((["MobileNetV2", 1],)), proto) == 0
    lines = [json.loads(ln) for ln in proto.getvalue().splitlines()]
    assert lines[0] == {"event": "log", "text": "a line"} and lines[1]["rows"][0]["model"] == "MobileNetV2"
