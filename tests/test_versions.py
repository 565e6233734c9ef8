"""The version stage (issue 26): environments, the rebuilt model, the pooled rows, resume, and the report's rule.

No test downloads a TensorFlow: the installer is a fake uv script, and the stage runs against the current
environment as its one real release plus a fake second one (the same interpreter under another label).
"""
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overhead.experiments import versions, versions_child, versions_env
from overhead.report import versions as vreport


# --------------------------------------------------------------------------- environments

def test_releases_keras_and_requirements():
    assert versions_env.RELEASES[0] == "2.12" and versions_env.RELEASES[-1] == "2.21" and len(versions_env.RELEASES) == 10
    assert versions_env.keras_flavours("2.15") == ("2",)
    assert versions_env.keras_flavours("2.16") == ("3", "2")
    assert versions_env.requirements("2.12") == [("tensorflow-cpu~=2.12.0", True)]
    assert versions_env.requirements("2.21") == [("tensorflow-cpu~=2.21.0", True), ("tf-keras~=2.21.0", False)]


def _fake_uv(tmp_path, fail_on: str | None = None) -> Path:
    """A uv stand-in: `venv` makes bin/python, `pip install` fails when its requirement starts with `fail_on`."""
    calls = tmp_path / "uv_calls.txt"
    script = tmp_path / "uv"
    script.write_text(f"""#!{sys.executable}
import sys, pathlib
args = sys.argv[1:]
open({str(calls)!r}, "a").write(" ".join(args) + "\\n")
if args[0] == "venv":
    d = pathlib.Path(args[-1]) / "bin"; d.mkdir(parents=True); (d / "python").write_text("")
elif args[:2] == ["pip", "install"]:
    if {fail_on!r} and args[-1].startswith({fail_on!r}):
        print("  x No solution found when resolving dependencies:", file=sys.stderr)
        print("  error: Because tensorflow-cpu has no wheels with a matching Python ABI tag, we can conclude ...", file=sys.stderr)
        sys.exit(1)
elif args[:2] == ["pip", "freeze"]:
    print("\\x1b[1mtensorflow-cpu\\x1b[0m==2.99.1\\nnumpy==1.0")  # uv coloured a pipe on one machine
elif args[0] == "--version":
    print("uv 0.0-fake")
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_build_reuses_a_finished_environment(tmp_path):
    uv = _fake_uv(tmp_path)
    first = versions_env.build("2.16", tmp_path / "envs", uv=str(uv))
    assert first["status"] == "ok" and not first["reused"] and first["tensorflow"] == "2.99.1"
    calls = (tmp_path / "uv_calls.txt").read_text().splitlines()
    assert any("--no-deps tf-keras~=2.16.0" in c for c in calls)
    again = versions_env.build("2.16", tmp_path / "envs", uv=str(uv))
    assert again["reused"] and (tmp_path / "uv_calls.txt").read_text().splitlines() == calls  # no uv call
    assert set(first["packages"]) == {"tensorflow-cpu", "numpy"}, "colour codes dropped"


def test_a_marker_written_with_colour_codes_reads_clean(tmp_path):
    (tmp_path / versions_env.MARKER).write_text(json.dumps(
        {"packages": {"\x1b[1mtensorflow-cpu\x1b[0m": "2.12.1"}, "tensorflow": ""}))
    marker = versions_env.read_marker(tmp_path)
    assert marker["packages"] == {"tensorflow-cpu": "2.12.1"} and marker["tensorflow"] == "2.12.1"


def test_a_failed_install_is_a_reason_not_a_crash(tmp_path):
    uv = _fake_uv(tmp_path, fail_on="tensorflow-cpu")
    got = versions_env.build("2.12", tmp_path / "envs", uv=str(uv))
    assert got["status"] == "failed" and "\n" not in got["reason"]
    assert got["reason"].startswith("install failed: tensorflow-cpu~=2.12.0: error: Because")
    assert not (tmp_path / "envs" / "tf-2.12").exists(), "a half-built environment is removed"
    rel = versions.built_release("2.12", tmp_path / "envs", uv=str(uv))
    assert rel.python is None and rel.reason == got["reason"]
    assert versions.plan_configs([rel], ["logreg"], ("tf.function",)) == []


def test_onednn_off_only_for_the_chosen_models():
    rel = versions.Release("2.16", python="py", kerases=("3", "2"))
    got = [(k, on, ms) for _r, k, on, ms in versions.plan_configs([rel], ["logreg", "cnn_seed"], ("tf.function",),
                                                                 ("cnn_seed",))]
    assert got == [("3", True, ["logreg", "cnn_seed"]), ("3", False, ["cnn_seed"]),
                   ("2", True, ["logreg", "cnn_seed"]), ("2", False, ["cnn_seed"])]
    every = versions.plan_configs([rel], ["logreg"], ("tf.function",))
    assert [on for _r, _k, on, _m in every] == [True, False, True, False]


def test_no_uv_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(versions_env, "uv_binary", lambda: None)
    got = versions_env.build("2.13", tmp_path)
    assert got["status"] == "failed" and "make env" in got["reason"]


# --------------------------------------------------------------------------- the rebuilt model

def _plan_file(tmp_path, *, commuted=False) -> Path:
    """An engine file by hand: conv (same, relu, fused 2x2 max-pool) -> flatten -> dense softmax; `commuted`:
    the bias and relu sit on a stand-alone max-pool instead, as the engine's commute pass leaves them."""
    rng = np.random.default_rng(0)
    arrays = {}

    def a(v):
        name = f"w{len(arrays)}"
        arrays[name] = np.asarray(v, np.float32)
        return {"__array__": name, "shape": list(arrays[name].shape)}
    conv_p = {"w2": a(rng.normal(size=(9, 4)) * 0.5), "kh": 3, "kw": 3, "sh": 1, "sw": 1, "padding": "same", "cin": 1}
    bias, relu = a(rng.normal(size=4) * 0.1), ["relu", 0.0, None, 0.0]
    if commuted:
        ops = [{"kind": "conv", "name": "c", "cls": "Conv2D", "ins": [0], "out": 1, "p": conv_p, "bias": None, "act": None},
               {"kind": "pool", "name": "p", "cls": "MaxPooling2D", "ins": [1], "out": 2,
                "p": {"ph": 2, "pw": 2, "sh": 2, "sw": 2, "mode": "max", "padding": "valid"}, "bias": bias, "act": relu}]
    else:
        ops = [{"kind": "conv", "name": "c", "cls": "Conv2D", "ins": [0], "out": 2, "p": dict(conv_p, pool=[2, 2]),
                "bias": bias, "act": relu}]
    ops += [{"kind": "reshape", "name": "f", "cls": "Flatten", "ins": [2], "out": 3, "p": {"target": [-1]},
             "bias": None, "act": None},
            {"kind": "dense", "name": "d", "cls": "Dense", "ins": [3], "out": 4, "p": {"w": a(rng.normal(size=(784, 10)) * 0.1)},
             "bias": a(np.zeros(10)), "act": ["softmax", -1]}]
    plan = {"format": "overhead-engine", "version": 1, "name": "hand", "input_shape": [None, 28, 28, 1], "in_val": 0,
            "out_vals": [4], "output_names": None, "ops": ops}
    path = tmp_path / f"hand{'_c' if commuted else ''}.npz"
    np.savez(path, __plan__=np.frombuffer(json.dumps(plan).encode(), np.uint8), **arrays)
    return path


@pytest.mark.parametrize("commuted", [False, True])
def test_rebuilt_keras_model_matches_the_engine(tmp_path, commuted):
    import tensorflow as tf

    from overhead import engine
    from overhead.harness import parity
    path = _plan_file(tmp_path, commuted=commuted)
    x = np.random.default_rng(1).random((16, 28, 28, 1)).astype(np.float32)
    ref = engine.load(path)(x)
    model = versions_child.build_model(tf.keras, versions_child.read_plan(path))
    got = model(x, training=False)
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    assert parity.compare(got, ref)["problems"] == []


def test_converted_paths_keep_the_weights(tmp_path):
    """TFLite and the SavedModel are built from a holder of the variables: with the Keras 3 model itself as the
    converter's trackable object, the .tflite read its weights from nowhere (NaN outputs)."""
    import tensorflow as tf

    from overhead import engine
    from overhead.harness import parity
    path = _plan_file(tmp_path)
    x = np.random.default_rng(2).random((4, 28, 28, 1)).astype(np.float32)
    ref = engine.load(path)(x)
    model = versions_child.build_model(tf.keras, versions_child.read_plan(path))
    for name in ("tflite", "savedmodel"):
        fn = versions_child.prepare(tf, tf.keras, model, name, x[:1], str(tmp_path), 1)
        got = np.concatenate([fn(x[i:i + 1]) for i in range(len(x))])
        assert parity.compare(got, ref)["problems"] == [], name


def test_a_bias_no_convolution_can_take_back_is_refused():
    ops = [{"kind": "gpool", "name": "g", "ins": [0], "out": 1, "p": {}, "bias": None, "act": None},
           {"kind": "pool", "name": "p", "ins": [1], "out": 2, "p": {}, "bias": np.ones(3), "act": None}]
    with pytest.raises(ValueError, match="pool 'p' carries a bias"):
        versions_child._uncommute(ops)


# --------------------------------------------------------------------------- the report's rule

def _row(release, median, lo, hi, spread=0.01, machine="m1", path="predict", keras="2", status="ok"):
    return {"machine": machine, "release": release, "keras": keras, "model": "cnn_seed", "path": path, "onednn": "on",
            "status": status, "parity": "pass", "median_us": median, "ci_lo_us": lo, "ci_hi_us": hi, "run_spread": spread}


def test_a_change_counts_only_beyond_intervals_and_spread():
    frame = pd.DataFrame([
        _row("2.12", 100, 98, 102), _row("2.13", 150, 147, 153),                       # clear: 1.5x slower
        _row("2.12", 100, 98, 102, path="call"), _row("2.13", 101, 99, 103, path="call"),  # overlapping intervals
        _row("2.12", 100, 99, 101, spread=0.3, path="tf.function"),                    # disjoint, but within the
        _row("2.13", 120, 119, 121, spread=0.3, path="tf.function"),                   # between-run spread
    ])
    ch = vreport.changes(frame, "default")
    assert list(zip(ch.path, ch.direction)) == [("predict", "slower")]
    assert ch.ratio.iloc[0] == pytest.approx(1.5)
    text = vreport.finding(frame)
    assert "1.5× slower from 2.12 to 2.13" in text and "Every other pair of releases: no measurable change" in text


def test_a_speed_up_is_judged_as_a_ratio_like_a_slow_down():
    # runs that disagree by 177 % (spread 1.77): a 5.6x speed-up clears it, as a 5.6x slow-down would
    frame = pd.DataFrame([_row("2.15", 4300, 4200, 4400, spread=1.77), _row("2.16", 770, 760, 780, spread=0.05, keras="3")])
    ch = vreport.changes(frame, "default")
    assert list(ch.direction) == ["faster"]
    frame = pd.DataFrame([_row("2.15", 770, 760, 780, spread=0.05), _row("2.16", 4300, 4200, 4400, spread=1.77, keras="3")])
    assert list(vreport.changes(frame, "default").direction) == ["slower"]


def test_faster_is_said_as_a_factor_and_memory_growth_is_stated():
    frame = pd.DataFrame([dict(_row("2.12", 300, 297, 303), rss_1_mb=500.0, rss_n_mb=713.0, rss_n_calls=200),
                          dict(_row("2.13", 100, 98, 102), rss_1_mb=560.0, rss_n_mb=562.0, rss_n_calls=200)])
    text = vreport.finding(frame)
    assert "3× faster from 2.12 to 2.13" in text
    assert "over 200 `predict` calls of `cnn_seed`" in text and "changed by +213 MB on 2.12, +2 MB on 2.13." in text


def test_keras_3_against_keras_2_in_the_same_release():
    frame = pd.DataFrame([_row("2.21", 100, 98, 102, keras="2"), _row("2.21", 300, 297, 303, keras="3"),
                          _row("2.21", 100, 98, 102, keras="2", path="tf.function"),
                          _row("2.21", 101, 99, 103, keras="3", path="tf.function")])
    text = vreport.finding(frame)
    assert "on 2.21, `predict`: 300 µs against 100 µs (3×)" in text
    assert "on 2.21, `tf.function`: 101 µs against 100 µs (no measurable difference)" in text


def test_a_change_on_one_machine_only_is_named_not_claimed():
    frame = pd.DataFrame([_row("2.15", 100, 98, 102), _row("2.16", 150, 147, 153, keras="3"),
                          _row("2.15", 100, 98, 102, machine="m2"), _row("2.16", 101, 99, 103, machine="m2", keras="3")])
    ch = vreport.changes(frame, "default")
    assert list(zip(ch.holds, ch.on, ch.not_on)) == [(False, ["m1"], ["m2"])]
    text = vreport.finding(frame)
    assert "0 release-to-release changes cleared the intervals and the between-run spread on every machine." in text
    assert "1.5× slower from 2.15 to 2.16 on m1, not on m2." in text
    assert "`predict` on m2: 100 µs on 2.15, 101 µs on 2.16." in text, "each machine's own latencies"
    assert vreport.changes(frame, "2").empty, "Keras 3 rows are not in the Keras 2 series"


def test_opposite_directions_on_two_machines_are_two_named_changes():
    frame = pd.DataFrame([_row("2.15", 100, 98, 102), _row("2.16", 150, 147, 153, keras="3"),
                          _row("2.15", 100, 98, 102, machine="m2"), _row("2.16", 50, 49, 51, machine="m2", keras="3")])
    ch = vreport.changes(frame, "default").set_index("direction")
    assert ch.loc["slower", "on"] == ["m1"] and ch.loc["faster", "on"] == ["m2"] and not ch["holds"].any()


def test_a_change_on_every_machine_is_claimed():
    frame = pd.DataFrame([_row("2.15", 100, 98, 102), _row("2.16", 150, 147, 153, keras="3"),
                          _row("2.15", 200, 198, 202, machine="m2"), _row("2.16", 400, 396, 404, machine="m2", keras="3")])
    ch = vreport.changes(frame, "default")
    assert ch["holds"].all() and ch.ratio.iloc[0] == pytest.approx(np.median([1.5, 2.0]))
    assert "1 release-to-release change cleared the intervals and the between-run spread on every machine" in (
        vreport.finding(frame))


def test_finding_names_a_release_that_did_not_install():
    frame = pd.DataFrame([_row("2.20", 100, 98, 102, keras="3"),
                          {"machine": "m1", "release": "2.21", "status": "failed", "reason": "install failed: x"}])
    text = vreport.finding(frame)
    assert "2.21 (install failed: x)" in text
    fig, alt = vreport.fig_latency(frame)
    assert "2.20" in alt and "cnn_seed" in alt


# --------------------------------------------------------------------------- the stage end to end

@pytest.mark.slow
def test_stage_with_the_current_environment_and_a_fake_second_release(data_env, tmp_path):
    """Two releases (the study's environment, and the same interpreter labelled as another release), one that
    failed to install; the second run resumes: no child runs again and the rows are the same."""
    cur = versions.study_release()
    cur.kerases = ("3",)
    fake = versions.Release("2.99", sys.executable, "study", info={"tensorflow": "2.99.0"}, kerases=("3",))
    broken = versions.Release("2.98", None, "built", reason="install failed: no wheel")
    kw = dict(runs=1, paths=("predict", "call", "tf.function", "tflite"), onednn_off_paths=(), budget_s=0.05,
              rss_calls=(1, 3), n_parity=8, out_dir=tmp_path / "res", machine="smoke", data_dir=data_env,
              progress=None)
    df = versions.run([cur, fake, broken], ["logreg", "cnn_seed"], **kw)  # one child per release, both models
    assert list(df.columns) == versions.COLUMNS
    assert df[df.release == "2.98"].reason.iloc[0] == "install failed: no wheel"
    ok = df[df.release != "2.98"]
    assert len(ok) == 16 and (ok.status == "ok").all(), ok[["release", "model", "path", "reason"]]
    rss = ok.dropna(subset=["rss_n_mb"])
    assert set(rss.model) == {"logreg"} and set(rss.path) == {"predict"} and set(rss.rss_n_calls) == {3}, \
        "RSS is read on the first model of each process only"
    assert (ok.parity == "pass").all() and (ok.median_us > 0).all()
    assert all((tmp_path / "res" / f).exists() for f in ok.samples_file)
    log = (tmp_path / "res" / "versions.runs.jsonl").read_text()
    again = versions.run([cur, fake, broken], ["logreg", "cnn_seed"], **kw)
    assert (tmp_path / "res" / "versions.runs.jsonl").read_text() == log, "a finished child is not run again"
    pd.testing.assert_frame_equal(again.drop(columns="date"), df.drop(columns="date"))
    meta = json.loads((tmp_path / "res" / "versions.meta.json").read_text())
    assert meta["releases"]["2.98"]["reason"] == "install failed: no wheel"


@pytest.mark.slow
def test_versions_notebook_quick(data_env, tmp_path):
    from nbrun import run_notebook
    # every path of the version child, in this environment (QUICK=1 itself times four of them)
    run_notebook("07_versions.py", tmp_path, {"versions": {"paths": list(versions.PATHS)}}, data_dir=str(data_env),
                 machine="smoke")
    df = pd.read_csv(data_env / "results" / "smoke" / "versions.csv")
    assert set(df.model) == {"cnn_seed"} and len(set(df.release)) == 1
    assert (df.status == "ok").all(), df[["path", "keras", "onednn", "reason"]]
    assert set(df.path) == set(versions.PATHS) and set(df.onednn) == {"on", "off"}
