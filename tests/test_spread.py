"""The between-run spread experiment (overhead.experiments.spread) and its section (overhead.report.spread),
on planted tables and a fake child: no TensorFlow, no timing."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from overhead.experiments import spread as exp
from overhead.harness.child import ChildResult
from overhead.report import loading, spread as sec

PATHS = ("tf.function", "tf1.session")


def planted(medians: dict, machine="m1", status=None, late=None, load1=None) -> pd.DataFrame:
    """spread.csv rows: {variant: {path: [run medians]}}; `status`: {variant: reason} for unavailable ones;
    `late`: the last tenths' medians as a function of the run median (None: not recorded)."""
    rows = []
    for variant, by_path in medians.items():
        for path, meds in by_path.items():
            for run, m in enumerate(meds, start=1):
                rows.append({"machine": machine, "model": "cnn_seed", "batch": 1, "threads": 1, "variant": variant,
                             "backend": path, "run": run, "status": "ok", "reason": "", "median_us": m,
                             "first_us": m * 1.02, "last_us": late(m) if late else np.nan,
                             "load1": load1 if load1 is not None else np.nan})
    for variant, reason in (status or {}).items():
        rows.append({"machine": machine, "variant": variant, "backend": None, "status": "not available",
                     "reason": reason})
    return pd.DataFrame(rows).reindex(columns=exp.COLUMNS)


BIMODAL = [100, 200, 100, 200, 100, 200, 100, 200]  # the tf1.session pattern: two process states
TIGHT = [150, 151, 149, 150, 152, 150, 148, 151]


def test_a_variant_that_collapses_the_spread_is_named_the_cause():
    f = planted({"as is": {p: BIMODAL for p in PATHS}, "no ASLR": {p: TIGHT for p in PATHS},
                 "oneDNN off": {p: BIMODAL for p in PATHS}})
    v = sec.verdicts(sec.summary(f)).set_index("variant")
    assert v.loc["no ASLR", "collapses"] is True or v.loc["no ASLR", "collapses"] == True  # noqa: E712
    assert v.loc["oneDNN off", "collapses"] == False  # noqa: E712
    text = sec.text(sec.summary(f))
    assert "no ASLR collapses it" in text and "ruled out: oneDNN off" in text
    assert "2×" in text  # the as-is spread, max/min of 100 and 200


def test_a_variant_must_narrow_every_path_not_only_one():
    f = planted({"as is": {p: BIMODAL for p in PATHS},
                 "pinned": {"tf.function": TIGHT, "tf1.session": BIMODAL}})
    v = sec.verdicts(sec.summary(f)).set_index("variant")
    assert v.loc["pinned", "collapses"] == False  # noqa: E712
    assert "no variant collapses it" in sec.text(sec.summary(f))


def test_runs_that_already_agree_leave_nothing_to_explain():
    f = planted({"as is": {p: TIGHT for p in PATHS}, "jemalloc": {p: TIGHT for p in PATHS}})
    v = sec.verdicts(sec.summary(f))
    assert v["collapses"].isna().all()
    text = sec.text(sec.summary(f))
    assert "no between-run spread" in text and "collapses" not in text


def test_unavailable_variant_is_shown_with_its_reason_never_as_a_cause():
    f = planted({"as is": {p: BIMODAL for p in PATHS}}, status={"tcmalloc": "not available: no libtcmalloc"})
    s = sec.summary(f)
    assert "not available: no libtcmalloc" in set(s["status"])
    v = sec.verdicts(s).set_index("variant")
    assert v.loc["tcmalloc", "collapses"] is None
    assert "tcmalloc (not available: no libtcmalloc)" in sec.text(s)


def test_too_few_processes_name_no_cause_and_rule_nothing_out():
    f = planted({"as is": {p: BIMODAL[:3] for p in PATHS}, "no ASLR": {p: TIGHT[:3] for p in PATHS}})
    v = sec.verdicts(sec.summary(f))
    assert v["collapses"].isna().all() and "fewer than 5" in v["why"].iloc[0]
    text = sec.text(sec.summary(f))
    assert "no variant is named a cause or ruled out" in text and "ruled out:" not in text
    assert "no ASLR 1.01×" in text  # max/min of 150, 151, 149


def test_spread_that_lasts_the_whole_run_is_not_called_warm_up():
    f = planted({"as is": {p: BIMODAL for p in PATHS}}, late=lambda m: m)
    assert "lasts the whole run" in sec.text(sec.summary(f))
    f = planted({"as is": {p: BIMODAL for p in PATHS}}, late=lambda m: 100.0)  # every run ends alike
    assert "mostly warm-up" in sec.text(sec.summary(f))


def test_the_load_beside_the_processes_is_stated_when_recorded():
    assert "load average 11.4" in sec.text(sec.summary(planted({"as is": {"tf.function": BIMODAL}}, load1=11.4)))
    assert "load average" not in sec.text(sec.summary(planted({"as is": {"tf.function": BIMODAL}})))


def test_spread_statistics_are_max_over_min_and_relative_mad():
    s = sec.summary(planted({"as is": {"tf.function": [100, 110, 120, 200]}}))
    row = s.iloc[0]
    assert row["spread_x"] == pytest.approx(2.0)
    med = np.median([100, 110, 120, 200])
    assert row["mad_rel"] == pytest.approx(np.median(np.abs(np.array([100, 110, 120, 200]) - med)) / med)
    assert row["warmup"] == pytest.approx(0.02)


def test_machines_are_judged_separately():
    f = pd.concat([planted({"as is": {p: BIMODAL for p in PATHS}, "no ASLR": {p: TIGHT for p in PATHS}}, "a"),
                   planted({"as is": {p: TIGHT for p in PATHS}, "no ASLR": {p: TIGHT for p in PATHS}}, "b")])
    text = sec.text(sec.summary(f))
    assert "**a**" in text and "**b**" in text
    assert text.index("collapses") < text.index("**b**")


def test_no_table_says_not_measured(tmp_path):
    assert loading.load_results(tmp_path)["spread"] is None
    assert "not measured" in sec.text(sec.summary(pd.DataFrame()))


def test_load_reads_every_machine(tmp_path):
    for m in ("a", "b"):
        (tmp_path / m).mkdir()
        planted({"as is": {"tf.function": TIGHT}}, machine=m).to_csv(tmp_path / m / "spread.csv", index=False)
    assert set(loading.load_results(tmp_path)["spread"]["machine"]) == {"a", "b"}


def test_table_has_units_and_three_significant_figures():
    t = sec.table(sec.summary(planted({"as is": {"tf.function": [100.0, 123.456, 150.0]}})))
    assert t.loc[0, "median of run medians"] == "123 µs"
    assert t.loc[0, "max / min of run medians"] == "1.5×"


def test_figure_has_alt_text_from_the_data():
    f = planted({"as is": {p: BIMODAL for p in PATHS}, "no ASLR": {p: TIGHT for p in PATHS}})
    fig, alt = sec.figure(f)
    assert fig.axes and "2×" in alt and "no ASLR" in alt


# --------------------------------------------------------------------------- the experiment, without TF

def test_schedule_interleaves_variants_and_rotates_the_order():
    plan = exp.schedule(["a", "b", "c"], 3)
    assert [v for _, v in plan[:3]] == ["a", "b", "c"]
    assert [v for _, v in plan[3:6]] == ["b", "c", "a"]
    assert [r for r, _ in plan] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_missing_allocator_is_not_available_with_its_reason(monkeypatch):
    monkeypatch.setattr(exp, "find_library", lambda so: None)
    v = {x.name: x for x in exp.variants(["jemalloc", "tcmalloc", "as is"])}
    assert not v["jemalloc"].available and "libjemalloc2" in v["jemalloc"].reason
    assert "LD_PRELOAD" not in v["tcmalloc"].env and v["as is"].available


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="valid variants"):
        exp.variants(["turbo"])


def test_measure_records_rows_failures_and_unavailable_variants(monkeypatch, tmp_path):
    monkeypatch.setattr(exp, "model_path", lambda model, data_dir=None: (tmp_path / "m.keras", "trained"))
    monkeypatch.setattr(exp, "find_library", lambda so: "/lib/libjemalloc.so.2" if "jemalloc" in so else None)
    seen = []

    def fake(job, variant):
        seen.append((variant.name, dict(variant.env)))
        if variant.name == "oneDNN off":
            return ChildResult(returncode=1, stderr_tail="boom")
        rows = [{"event": "row", "backend": b, "status": "ok", "median_us": 10.0, "first_us": 11.0, "n": 200,
                 "load1": 99.0}
                for b in job.backends]
        return ChildResult(returncode=0, events=[*rows, {"event": "done"}])

    f = exp.measure(names=["as is", "oneDNN off", "jemalloc", "tcmalloc"], runs=2, machine="m",
                    launch_fn=fake, say=lambda *_: None)
    assert [v for v, _ in seen] == ["as is", "oneDNN off", "jemalloc", "oneDNN off", "jemalloc", "as is"]
    assert dict(seen)["jemalloc"] == {"LD_PRELOAD": "/lib/libjemalloc.so.2"}
    assert (f[f.variant == "tcmalloc"]["status"] == "not available").all()
    failed = f[f.variant == "oneDNN off"]
    assert (failed["status"] == "failed").all() and failed["reason"].str.contains("boom").all()
    assert len(f[(f.variant == "as is") & (f.status == "ok")]) == 2 * len(exp.BACKENDS)
    assert list(f.columns) == exp.COLUMNS
    assert (f.loc[f.status == "ok", "load1"] != 99.0).all()  # the parent's load average, not the child's say


def test_launch_gives_the_child_its_variant_and_restores_this_process(monkeypatch):
    got = {}

    def fake_run_child(module, args, **kw):
        got.update(kw, personality=exp._personality())
        return ChildResult(returncode=0)

    monkeypatch.setattr(exp.child, "run_child", fake_run_child)
    before = exp._personality()
    v = exp.Variant("no ASLR", env={"PYTHONHASHSEED": "0"}, no_aslr=True, pin=True)
    exp.launch(exp.SpreadJob("m.keras", (), 1, 0.1), v)
    assert got["personality"] & exp.ADDR_NO_RANDOMIZE
    assert exp._personality() == before
    assert got["env"]["PYTHONHASHSEED"] == "0" and got["job"].pin in __import__("os").sched_getaffinity(0)


def test_cli_refuses_bad_input_with_one_line(capsys):
    assert exp.main(["--variants", "turbo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "turbo" in err


def test_committed_runs_split_a_published_row_into_its_runs(tmp_path):
    from overhead.base import atomic

    fast, slow = np.full(40, 100_000), np.full(40, 200_000)  # ns: run medians 100 and 200 µs
    slow_start = np.concatenate([np.full(10, 400_000), np.full(30, 100_000)])  # a warm-up, then like `fast`
    atomic.save_samples(tmp_path / "samples/m/p.npz", {"samples_ns": np.concatenate([fast, slow, slow_start]),
                                                        "run_lengths": np.array([40, 40, 40])})
    pd.DataFrame([{"model": "m", "backend": "p", "batch": 1, "threads": 1, "status": "ok",
                   "samples_file": "samples/m/p.npz"}]).to_csv(tmp_path / "bench.csv", index=False)
    from overhead.report import spread_runs

    r = spread_runs.runs(tmp_path).iloc[0]
    assert r["runs"] == 3 and r["run_medians_us"] == "100 200 100"
    assert r["spread_x"] == pytest.approx(2.0) and r["late_spread_x"] == pytest.approx(2.0)
    assert r["first_over_last"] == pytest.approx(1.0)  # median over runs: 1, 1, 4
    assert np.isnan(r["later_over_first3"])
    assert spread_runs.main([str(tmp_path / "nothing")]) == 2


def test_published_spread_compares_graph_paths_with_xla_in_the_same_processes(tmp_path):
    from overhead.base import atomic
    from overhead.report import spread_runs

    d = tmp_path / "m1"
    rows = []
    for path, (a, b) in {"tf.function": (100, 200), "tf.function.xla": (100, 101), "numpy": (10, 10)}.items():
        atomic.save_samples(d / f"samples/{path}.npz", {"samples_ns": np.repeat([a * 1000, b * 1000, a * 1000], 20),
                                                        "run_lengths": np.array([20, 20, 20])})
        rows.append({"model": "m", "backend": path, "batch": 1, "threads": 1, "status": "ok",
                     "samples_file": f"samples/{path}.npz"})
    pd.DataFrame(rows).to_csv(d / "bench.csv", index=False)
    text = spread_runs.text(tmp_path)
    assert "**m1**" in text and "by 2×" in text and "`tf.function.xla` disagrees by 1.01×" in text
    assert "LiteRT and NumPy by 1×" in text
