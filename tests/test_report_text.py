"""The report's prose, claims, advice and who-pays section on the synthetic fixture: numbers from the results,
each prose fix of issue 13, nothing crashes when backends or stages are missing."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overhead.report import analysis as A
from overhead.report import fmt, loading
from overhead.report.sections import (
    advice,
    advice_effort,
    appendix,
    batch,
    breakdown,
    ceilings,
    claims,
    distortion,
    fits,
    idle_gap,
    key_numbers,
    loadgen,
    memory_loop,
    method,
    parity,
    pipeline,
    reconcile,
    slowdown,
    stability,
    startup,
    threads,
    tldr,
    whopays,
)
from overhead.report.sections import claims as C

FIXTURE = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def res():
    return loading.load_results(FIXTURE / "results")


@pytest.fixture(scope="module")
def models():
    return loading.load_models_meta(FIXTURE / "models")


@pytest.fixture(scope="module")
def R(res, models):
    return A.analyse(res, models, n_boot=20)


def _latency(R, model, backend):
    s = R.sweep.set_index(["model", "backend"])["median_us"]
    return s[(model, backend)]


# ---------------------------------------------------------------- TL;DR -------------------------------
def test_tldr_numbers_come_from_the_results_and_are_labelled(R):
    text = tldr.tldr(R)
    kp, npy = (_latency(R, "cnn_seed", b) for b in ("keras.predict", "numpy"))
    assert text.startswith("**Yes")
    assert fmt.fmt_x(kp / npy) in text and fmt.fmt_us(kp) in text
    assert "measured" in text and "fitted" not in text      # the TL;DR uses measured points only
    assert "the seed's small CNN (`cnn_seed`" in text


def test_seed_cnn_is_named_only_when_it_is_the_model_shown(res, models):
    r = dict(res)
    r["bench"] = res["bench"][res["bench"]["model"] != "cnn_seed"]
    R2 = A.analyse(r, models, n_boot=5)
    text = tldr.tldr(R2)
    assert "the seed's small CNN" not in text and "`logreg`" in text
    assert "smallest model measured" in text


def test_report_text_survives_missing_backends_and_stages(res, models):
    r = dict(res)
    r["bench"] = res["bench"][~res["bench"]["backend"].isin(
        ["numpy", "litert", "keras.predict", "tf1.session", "keras.jax.predict", "numpy.plain"])]
    r["startup"] = r["pipeline"] = r["breakdown"] = r["idle_gap"] = r["memory_loop"] = None
    R2 = A.analyse(r, models, n_boot=5)
    assert "n/a" not in tldr.tldr(R2).split("\n")[0]
    for text in (fits.overhead_text(R2), parity.parity_text(R2), whopays.text(R2), batch.batch_text(R2),
                 threads.threads_text(R2), method.method(R2, r, 5), method.limitations(R2, r, models, ["startup"])):
        assert isinstance(text, str) and text
    assert set(C.claims(R2)["verdict"]) <= set(C.VERDICTS)
    adv = advice.advice(R2)
    assert len(adv) == len(advice.SITUATIONS)
    assert adv.iloc[3]["situation"].startswith("cold start") and adv.iloc[3]["fastest (measured)"] == \
        "not measured in this run"
    for text in (idle_gap.idle_gap_text(R2), memory_loop.memory_loop_text(R2)):
        assert text.startswith("*Not measured in this run:*")
    empty = A.analyse({"machines": []}, n_boot=5)
    assert tldr.tldr(empty).startswith("*Not measured:*")
    assert C.claims(empty)["verdict"].eq("not measured").all()
    assert whopays.text(empty).startswith("*Not measured:*")


# ---------------------------------------------------------------- prose fixes -------------------------
def test_parity_text_counts_combinations_and_rows_separately(R):
    text = parity.parity_text(R)
    b = R.bench
    combos = b.drop_duplicates(["model", "backend"])
    assert f"of {len(combos)} model × backend combinations" in text
    assert f"{int((b['status'] == 'ok').sum())} ok rows of {len(b)}" in text
    assert "on trained models" in text


def test_limitations_count_combinations_and_rows(R, res, models):
    text = method.limitations(R, res, models, [])
    bad = R.bench[R.bench["status"] != "ok"]
    n_combo = len(bad.drop_duplicates(["model", "backend"]))
    assert f"- {n_combo} model × backend combinations have rows that are not ok" in text
    counts = bad["status"].value_counts()
    assert f"{counts['failed']} failed, {counts['skipped']} skipped rows" in text and n_combo < len(bad)


def test_breakdown_sentence_names_each_model_and_backend_once(R):
    text = breakdown.breakdown_text(R)
    assert "`keras.predict` call on `cnn_seed`" in text
    t = breakdown.breakdown_table(R)
    assert len(t) == len(t.drop_duplicates(["model", "backend"]))
    assert set(R.breakdown["backend"]) == set(t["backend"])


def test_method_states_the_interval_method_and_the_unstable_share(R, res):
    text = method.method(R, res, 20)
    assert "95 % interval: bootstrap over runs and values" in text
    n = int(R.sweep["unstable"].astype(str).eq("True").sum())
    assert f"{n} of {len(R.sweep)} ok batch-1 measurements" in text and "std >= 10 % of mean" in text
    assert "3 fresh worker processes" in text


def test_claims_name_the_article_by_title_and_test_the_session_claim(R):
    cl = C.claims(R)
    assert len(cl) == 8 and set(cl["verdict"]) <= set(C.VERDICTS)
    assert "Is TensorFlow 2.0 (CPU) inference significantly slower" in C.ARTICLE
    assert "/" not in C.ARTICLE.replace("TensorFlow/NumPy", "")            # a title, not a path
    ses = cl[cl["claim (our paraphrase)"].str.contains("session management")].iloc[0]
    # fixture: tf1.session 60 µs vs keras.predict 40 ms: a session run pays a tiny share of predict's excess
    assert ses["verdict"] == "not supported" and "`tf1.session`" in ses["numbers"]
    assert cl["verdict"].iloc[0] == "supported"
    md = C.claims_markdown(cl)
    assert md.count("\n") == len(cl) + 1


# ---------------------------------------------------------------- who pays ---------------------------
def test_who_pays_walk_labels_each_step_and_names_the_heaviest(R):
    w = whopays.walk(R)
    assert list(w["backend"]) == list(whopays.CHAIN)
    kp, pob = _latency(R, "cnn_seed", "keras.predict"), _latency(R, "cnn_seed", "keras.predict_on_batch")
    step = w.set_index("backend").loc["keras.predict"]
    assert step["delta_us"] == pytest.approx(kp - pob) and step["layer"] == whopays.LAYER["keras.predict"]
    assert whopays.heaviest(w)["backend"] == "keras.predict"
    text = whopays.text(R)
    assert fmt.fmt_us(kp - pob) in text and "side branches" in text
    assert "`tf1.session`" in whopays.branches_text(R) and "| side branch |" in whopays.branches_text(R)


def test_who_pays_skips_missing_paths_and_says_so(res, models):
    r = dict(res)
    r["bench"] = res["bench"][~res["bench"]["backend"].isin(["keras.predict_on_batch", "tf_keras.predict"])]
    R2 = A.analyse(r, models, n_boot=5)
    w = whopays.walk(R2)
    assert "keras.predict_on_batch" not in set(w["backend"])
    row = w.set_index("backend").loc["keras.predict"]
    assert row["prev"] == "tf.function" and "intermediate paths not measured" in row["layer"]
    assert "Not measured in this run: `keras.predict_on_batch`." in whopays.text(R2)
    assert "`tf_keras.predict`" not in whopays.text(R2)


# ---------------------------------------------------------------- advice ------------------------------
def test_advice_picks_the_known_best_paths(R):
    a = advice.advice(R)
    small = R.sweep[R.sweep["model"] == "cnn_seed"].set_index("backend")["median_us"].sort_values()
    row = a.iloc[0]
    assert row["situation"] == "small model (`cnn_seed`), single requests"
    assert row["fastest (measured)"] == f"`{small.index[0]}` ({fmt.fmt_us(small.iloc[0])})"
    in_tf = [b for b in small.index if b in advice.TF2][0]
    assert row["staying in TF/Keras"].startswith(f"`{in_tf}`")
    assert "tf1.session" not in row["staying in TF/Keras"]
    assert row["one-line change"] == advice.one_line(small.index[0])
    assert a.iloc[3]["fastest (measured)"].startswith("`numpy`")          # planted: 0.12 s import, 120 MB
    assert a.iloc[4]["fastest (measured)"].startswith("`numpy`")
    no_tf = a.iloc[5]
    assert no_tf["_best"] in advice.NO_TF and no_tf["staying in TF/Keras"] == "—"
    html = advice.advice_markdown(a)
    assert "_best" not in html and html.count("<tr>") == len(advice.SITUATIONS) + 1
    assert sum(x.startswith("- **") for x in advice.summary(a).splitlines()) == 3


def test_advice_best_path_follows_the_data():
    """A fixture where a known path is fastest: it is named, with its one-line change."""
    rows = [{"machine": "m", "model": "cnn_seed", "flops": 1e6, "backend": b, "batch": 1, "threads": 1,
             "status": "ok", "reason": "", "median_us": us, "ci_lo_us": us, "ci_hi_us": us}
            for b, us in {"keras.predict": 5000.0, "keras.call": 400.0, "tf.function": 90.0, "litert": 12.0,
                          "numpy": 20.0, "onnxruntime": 15.0}.items()]
    R = A.analyse({"bench": pd.DataFrame(rows), "machines": ["m"]}, n_boot=0)
    a = advice.advice(R).iloc[0]
    assert (a["fastest (measured)"], a["staying in TF/Keras"]) == ("`litert` (12 µs)", "`tf.function` (90 µs)")
    assert "TFLiteConverter" in a["one-line change"] and "Interpreter" in a["one-line change"]


def test_code_appendix_shows_the_recorded_code_else_the_catalogue_snippet_and_never_fails():
    recorded = {"keras.call": {"where": "overhead.backends.keras_tf._prep_keras",
                               "source": "def _prep_keras(path, batch, threads, artifacts, how):\n    ..."},
                "numpy": {"where": "", "source": "", "reason": "OSError: could not get source code"}}
    text = appendix.code_appendix(["keras.call", "litert", "numpy", "no.such.backend"], recorded)
    assert "Timed code (`overhead.backends.keras_tf._prep_keras`)" in text and "def _prep_keras" in text
    assert "not timed by this run" in text and "Interpreter(" in text            # litert: its snippet
    assert "no source recorded: OSError" in text and appendix.PREDATES not in text
    assert "see the appendix for `no.such.backend` (no runnable snippet)" in text
    old = appendix.code_appendix(["keras.call", "numpy.plain"])     # a run from before source recording
    assert old.count(appendix.PREDATES) == 1 and "y = model(x, training=False)" in old and "def " not in old
    assert "a page of NumPy" in old


def test_tables_for_display(R):
    ft = fits.fit_table(R)
    assert ft.loc["keras.call", "model"] == "per-layer" and ft.loc["numpy", "fitted cost per layer"] == "—"
    assert ft.loc["keras.predict", "fitted: overhead 10 % at"].startswith("beyond")
    kn = key_numbers.key_numbers(R)
    assert kn.loc["numpy", "measured latency, cnn_seed"] == fmt.fmt_us(_latency(R, "cnn_seed", "numpy"))


def test_formatting_helpers():
    assert fmt.fmt_us(12.345) == "12.3 µs" and fmt.fmt_us(4560) == "4.56 ms" and fmt.fmt_us(2.5e6) == "2.5 s"
    assert fmt.fmt_flops(1.2e6) == "1.2 MFLOP" and fmt.fmt_flops(3.6e9) == "3.6 GFLOP"
    assert fmt.fmt_x(178.2) == "178×" and fmt.fmt_x(2.345) == "2.3×"
    assert fmt.fmt_pct(0.5) == "50 %" and fmt.fmt_pct(0.004) == "0.4 %"
    assert fmt.fmt_us(float("nan")) == "n/a"


def test_optional_sections_render_from_the_files(R):
    idle = idle_gap.idle_gap_text(R)
    assert "after 100 ms of idleness" in idle and "thread count" in idle
    mem = memory_loop.memory_loop_text(R)
    assert "grows most for `keras.predict`" in mem
    ceil = ceilings.text(R)
    assert "best GEMM measured in this run, 90 GFLOP/s (`numpy`, n = 1024)" in ceil      # planted
    assert "theoretical peak of 160 GFLOP/s" in ceil and "56 % of" in ceil
    assert distortion.distortion_text(R).startswith("*Not measured in this run:*")


def test_meta_table_shows_the_isa_flags():
    res = {"meta": {"m": {"bench": {"machine": "m", "cpu_model": "X", "isa_flags": ["avx2", "avx512f", "amx_tile"],
                                    "secret_extra": 1}}}}
    t = method.meta_table(res, "m")
    assert t.loc["isa_flags", "value"] == "avx2 avx512f amx_tile" and "secret_extra" not in t.index


def test_idle_gap_names_clear_changes_per_machine_and_counts_the_rest_as_ties():
    def row(machine, backend, gap, med, half=1.0):
        return {"machine": machine, "model": "m", "backend": backend, "threads": 1, "gap_ms": gap, "median_us": med,
                "ci_lo_us": med - half, "ci_hi_us": med + half, "status": "ok"}
    rows = [row("a", "x", 0, 10), row("a", "y", 0, 12), row("a", "x", 100, 30), row("a", "y", 100, 13),  # clear
            row("b", "x", 0, 10), row("b", "y", 0, 12), row("b", "x", 100, 14, 3), row("b", "y", 100, 13, 3)]  # tie
    R = A.Results(machine="b", machines=["a", "b"])
    R.extra["idle_gap"] = pd.DataFrame(rows)
    text = idle_gap.idle_gap_text(R)
    on_b, on_a = text.split("On a, ")
    assert on_b.startswith("On b, after 100 ms of idleness a batch-1 call costs 1.1× to 1.4×")
    assert "does not change beyond the intervals (1 other change within the intervals: ties)" in on_b
    assert "changes beyond the intervals in 1 of 1 settings: `y` instead of `x` on `m`, 1 thread, after 100 ms." in on_a


def test_memory_loop_names_each_machine():
    rows = [{"machine": m, "backend": b, "calls": c, "rss_mb": r, "status": "ok"}
            for m, b, c, r in [("a", "x", 1, 100), ("a", "x", 2000, 150), ("a", "y", 1, 100), ("a", "y", 2000, 100.5),
                               ("b", "x", 1, 100), ("b", "x", 2000, 100.2), ("b", "y", 1, 100), ("b", "y", 2000, 90)]]
    R = A.Results(machine="b", machines=["a", "b"])
    R.extra["memory_loop"] = pd.DataFrame(rows)
    assert memory_loop.memory_loop_text(R) == (
        "Over 2,000 calls, resident memory grows most for `x` (+0.2 MB, measured on b); 1 of 2 paths stay within 1 MB "
        "(table below); on a most for `x` (+50.0 MB over 2,000 calls), 1 of 2 within 1 MB.")
