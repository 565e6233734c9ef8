"""Issue 19's report rules on fixtures: the not-identifiable rule, measured crossovers bracketed by the
ladder models either side, the TL;DR's word limit, the advice's accuracy cost, "the largest model" naming the
largest model of that sweep, between-runs stability beside pyperf's flag, and one float32 ceiling."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overhead.report import crossing, fmt, identify, loading, sentences
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
from overhead.report import analysis as A

FIXTURE = Path(__file__).parent / "fixtures"
PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "results"


@pytest.fixture(scope="module")
def R():
    return A.analyse(loading.load_results(FIXTURE / "results"), loading.load_models_meta(FIXTURE / "models"),
                     n_boot=20)


def _fit(**kw):
    base = {"backend": "p", "model": "two-term", "n_models": 11, "overhead_us": 100.0, "overhead_us_lo": 90.0,
            "overhead_us_hi": 120.0, "gflops": 50.0, "gflops_lo": 40.0, "gflops_hi": 60.0, "per_layer_us": 0.0,
            "per_layer_us_lo": 0.0, "per_layer_us_hi": 0.0}
    return pd.Series({**base, **kw})


# ---------------------------------------------------------------- not identifiable --------------------
def test_a_fit_on_fewer_than_five_models_or_with_a_wide_interval_is_not_identifiable():
    assert identify.identifiable(_fit())
    assert "fewer than 5" in identify.why_not(_fit(n_models=4))
    assert "gflops" in identify.why_not(_fit(gflops_lo=62.0, gflops_hi=2.35e17))     # the example
    assert "overhead" in identify.why_not(_fit(overhead_us_lo=5e-17))
    assert not identify.identifiable(_fit(model="per-layer", per_layer_us=3.0, per_layer_us_lo=1e-12,
                                          per_layer_us_hi=6.0))
    assert identify.interval_text(85.3, 62.0, 2.35e17, lambda v: f"{v:.3g}") == "85.3 (interval uninformative)"
    assert identify.interval_text(85.3, 62.0, 99.0, lambda v: f"{v:.3g}") == "85.3 [62, 99]"


def test_not_identifiable_fits_show_as_such_and_no_sentence_uses_them(R):
    R2 = A.analyse(loading.load_results(FIXTURE / "results"), loading.load_models_meta(FIXTURE / "models"), n_boot=20)
    planted = R2.fits.copy()
    i = planted.index[planted["backend"] == "tf1.session"][0]
    planted.loc[i, "n_models"] = 4                             # planted: as in the published run
    R2.fits = planted
    row = fits.fit_table(R2).loc["tf1.session"]
    assert row["identifiable"].startswith(identify.NOT_IDENTIFIABLE)
    assert row["fitted overhead per call [95 % CI]"] == "—" and row["fitted: overhead 10 % at"] == "—"
    assert fmt.crossover_of(R2, "tf1.session", 10) == identify.NOT_IDENTIFIABLE
    lead = fits.fits_lead(R2)
    assert "`tf1.session`" not in lead
    assert fmt.fmt_us(R2.fits.loc[i, "overhead_us"]) not in tldr.tldr(R2).replace(
        fmt.fmt_us(fmt.latency(R2, "cnn_seed", "tf1.session")), "")


# ---------------------------------------------------------------- measured crossovers -----------------
def _sweep(paths):
    """paths: {backend: {model: latency}} on a ladder m0..m5 of known FLOPs."""
    flops = {f"m{i}": 10.0 ** (3 + i) for i in range(6)}
    return pd.DataFrame([{"machine": "x", "model": m, "flops": flops[m], "backend": b, "median_us": us}
                         for b, d in paths.items() for m, us in d.items()])


def test_measured_crossover_is_interpolated_between_the_bracketing_models():
    lat = {"m0": 100.0, "m1": 110.0, "m2": 150.0, "m3": 400.0, "m4": 2000.0, "m5": 20000.0}
    sw = _sweep({"p": lat})
    c = crossing.crossover(sw, "p", 0.5)
    assert c["where"] == "inside" and (c["below_model"], c["above_model"]) == ("m2", "m3")   # 67 % → 25 %
    s2, s3 = 100 / 150, 100 / 400
    t = (np.log(s2) - np.log(0.5)) / (np.log(s2) - np.log(s3))
    assert c["flops"] == pytest.approx(10 ** (5 + t))
    assert 1e5 < c["flops"] < 1e6
    c10 = crossing.crossover(sw, "p", 0.1)
    assert (c10["below_model"], c10["above_model"]) == ("m3", "m4")
    assert tldr.cell(c10).endswith("(m3–m4)")


def test_beyond_names_the_largest_model_the_path_ran_on_not_the_ladder():
    sw = _sweep({"p": {"m0": 100.0, "m1": 101.0, "m2": 120.0, "m3": 150.0},               # 4 models only
                 "q": {f"m{i}": 10.0 for i in range(6)}})
    c = crossing.crossover(sw, "p", 0.1)
    assert c["where"] == "beyond" and c["largest_model"] == "m3"
    assert tldr.cell(c).startswith("beyond m3 (1 MFLOP")


def test_overhead_against_a_reference_keeps_a_cost_that_grows_with_depth():
    ref = {"m0": 100.0, "m1": 100.0, "m2": 110.0, "m3": 200.0, "m4": 1100.0, "m5": 10100.0}   # compute 0..10 ms
    eager = {m: ref[m] + 500.0 * (i + 1) for i, m in enumerate(ref)}                           # + 0.5 ms per layer
    sw = _sweep({"tf.function": ref, "eager": eager})
    curve = crossing.share_curve(sw, "eager", compute_ref="tf.function")
    expect = [(eager[m] - (ref[m] - 100.0)) / eager[m] for m in ref]
    assert curve["share"].to_numpy() == pytest.approx(expect)
    own = crossing.share_curve(sw, "eager")                       # its own lowest latency would under-count it
    assert own["share"].iloc[-1] < curve["share"].iloc[-1]


# ---------------------------------------------------------------- TL;DR --------------------------------
def test_tldr_answers_in_at_most_120_words_from_the_data(R):
    t = tldr.tldr(R)
    assert tldr.prose_words(t) <= tldr.MAX_WORDS
    assert len([x for x in t.splitlines() if x.strip() and not x.startswith("|")]) == 1   # one paragraph + a table
    assert t.startswith("**Yes")
    assert fmt.fmt_us(fmt.latency(R, "cnn_seed", "keras.predict")) in t
    assert fmt.fmt_us(fmt.latency(R, "cnn_seed", "numpy")) in t
    for call in ("`predict`", "`model(x)`", "`tf.function`"):
        assert f"| {call}: overhead below 50 % of a call at |" in t
    assert "Advice:" in t and t.count("*Overhead*") == 1


@pytest.mark.skipif(not (PUBLISHED / "intel-xeon-processor-2c" / "bench.csv").exists(), reason="no published run")
def test_tldr_of_the_published_run_is_short_and_brackets_tf_function():
    intel = PUBLISHED / "intel-xeon-processor-2c"  # the run the 0.3-0.4 GFLOP was read from
    res = loading.load_results(intel)
    R = A.analyse(res, loading.models_from_results(PUBLISHED, prefer=intel.name), n_boot=10)
    t = tldr.tldr(R)
    assert tldr.prose_words(t) <= tldr.MAX_WORDS
    sw = fmt.primary(R, "sweep")
    c10 = crossing.crossover(sw, "tf.function", 0.1, compute_ref=tldr.COMPUTE_REF)
    assert c10["where"] == "inside" and 2e8 < c10["flops"] < 5e8          # the 0.3–0.4 GFLOP
    assert f"(between {c10['below_model']} and {c10['above_model']})" in t
    kp = crossing.crossover(sw, "keras.predict", 0.5, compute_ref=tldr.COMPUTE_REF)
    assert kp["where"] == "beyond" and f"not reached: still {fmt.fmt_pct(kp['share_at_largest'])}" in t


def test_tldr_puts_every_machine_side_by_side():
    res = loading.load_results(FIXTURE / "results")
    other = res["bench"].assign(machine="second-machine-2c",
                                median_us=res["bench"]["median_us"] * 2, ci_lo_us=res["bench"]["ci_lo_us"] * 2,
                                ci_hi_us=res["bench"]["ci_hi_us"] * 2)
    res = {**res, "bench": pd.concat([res["bench"], other], ignore_index=True)}
    R = A.analyse(res, loading.load_models_meta(FIXTURE / "models"), n_boot=5)
    t = tldr.tldr(R)
    head = next(x for x in t.splitlines() if x.startswith("| measured"))
    assert head.count("`") == 4 and "`second-machine-2c`" in head
    kp = fmt.latency(R, "cnn_seed", "keras.predict")
    assert fmt.fmt_us(kp) in t and fmt.fmt_us(2 * kp) in t


def test_word_count_ignores_markup():
    assert sentences.words("**Yes.** | `a` | b |\n|---|---|") == 3


# ---------------------------------------------------------------- advice -------------------------------
def test_advice_shows_int8_accuracy_beside_the_speed(R):
    cost = advice.accuracy_cost(R, "cnn_seed", "litert.int8")
    assert "top-1 agreement 99 %" in cost and "logit error 0.03" in cost         # the fixture's planted values
    assert "int8 speed depends on the CPU's int8 units" in cost
    assert "of all checked inputs" in cost          # issue 22: over ALL inputs, not only the decisive ones
    assert advice.accuracy_cost(R, "cnn_seed", "numpy").startswith("none (float32")
    a = advice.advice(R)
    int8 = a[a["_best"].astype(str).str.contains("int8")]
    assert len(int8) and int8["accuracy cost"].str.contains("top-1 agreement").all()
    html = advice.advice_markdown(a)
    assert html.count("<th ") == len(advice.COLUMNS) and 'class="advice"' in html
    assert "x_calib" in html and "calibration" in html                  # the int8 snippet's input is explained
    R.bench.loc[(R.bench["model"] == "cnn_seed") & (R.bench["backend"] == "litert.int8"),
                ["top1_decisive", "n_decisive"]] = [0.97, 240]
    assert "top-1 agreement 97 % on 240 decisive inputs" in advice.accuracy_cost(R, "cnn_seed", "litert.int8")


def test_every_advice_row_names_its_model_and_tf_free_rows_weigh_litert_and_ort(R):
    a = advice.advice(R)
    assert a["situation"].str.contains("`").all()
    no_tf = a[a["situation"].str.startswith("no TensorFlow")].iloc[0]
    assert "litert" in no_tf["fastest (measured)"] and "onnxruntime" in no_tf["fastest (measured)"]


def test_large_model_row_names_the_tf_paths_not_measured_there(R):
    res = loading.load_results(FIXTURE / "results")
    b = res["bench"]
    res = {**res, "bench": b[~((b["backend"] == "tf.savedmodel") & (b["model"] == "resnet18_224px"))]}
    R2 = A.analyse(res, loading.load_models_meta(FIXTURE / "models"), n_boot=5)
    row = advice.advice(R2).iloc[1]
    assert "resnet18_224px" in row["situation"]
    stay = row["staying in TF/Keras"]
    assert "not measured on this model:" in stay and "`tf.savedmodel`" in stay.split("not measured on this model:")[1]
    assert "tf1.session" not in stay          # a TF1 session is never the TF advice (issue 22)


# ---------------------------------------------------------------- largest model of that sweep ---------
def test_threads_sentence_names_the_largest_model_swept_over_threads(R):
    t = R.scaling
    big = t.loc[t["flops"].idxmax(), "model"]
    assert f"largest model swept over threads (`{big}`" in threads.threads_text(R)


def test_threads_sentence_names_the_paths_that_get_slower(R):
    facts, big = threads.thread_split(R, R.machine)
    text = threads.threads_text(R)
    for b in big.loc[big["verdict"] == "slower", "backend"]:
        assert f"`{b}` " in text.split("get slower")[1].split(";")[0]
    assert " 1× " not in text


def test_who_pays_chain_adds_up_to_keras_predict(R):
    w = whopays.walk(R)
    assert list(w["backend"]) == list(whopays.CHAIN)
    assert w["median_us"].iloc[0] + w["delta_us"].iloc[1:].sum() == pytest.approx(
        fmt.latency(R, "cnn_seed", "keras.predict"))
    assert w["share"].sum() == pytest.approx(1.0)
    br = whopays.branches(R).set_index("backend")
    assert br.loc["tf1.session", "anchor"] == "tf.function" and br.loc["tf_keras.predict", "anchor"] == "keras.predict"


# ---------------------------------------------------------------- stability ---------------------------
def test_runs_that_agree_are_stable_and_runs_that_disagree_are_not(tmp_path):
    rng = np.random.default_rng(0)
    agree = np.concatenate([rng.normal(100, 3, 200) for _ in range(3)])
    apart = np.concatenate([rng.normal(100, 3, 200), rng.normal(100, 3, 200), rng.normal(120, 3, 200)])
    close = np.concatenate([rng.normal(100, 3, 200), rng.normal(103, 3, 200), rng.normal(100, 3, 200)])  # 3 % < 5 %
    for name, v in (("agree", agree), ("apart", apart), ("close", close)):
        np.savez(tmp_path / f"{name}.npz", samples_ns=v, run_lengths=np.array([200, 200, 200]))
    assert stability.from_samples(tmp_path / "agree.npz") == 0.0
    assert stability.from_samples(tmp_path / "apart.npz") == 1.0
    assert stability.from_samples(tmp_path / "close.npz") == 0.0
    np.savez(tmp_path / "one.npz", samples_ns=agree[:200], run_lengths=np.array([200]))
    assert np.isnan(stability.from_samples(tmp_path / "one.npz"))


def test_stability_reads_the_new_columns_and_tolerates_old_files():
    new = pd.DataFrame({"backend": ["a", "b"], "unstable": [False, True], "unstable_pyperf": [True, True],
                        "jitter": [0.2, 0.4], "median_us": [1.0, 1.0]})
    s = stability.summary(new)
    assert s["between_runs"] == 0.5 and s["pyperf"] == 1.0 and s["jitter_source"] == "jitter"
    old = pd.DataFrame({"backend": ["a"], "unstable": [True], "median_us": [10.0], "p99_us": [15.0]})
    s = stability.summary(old)
    assert np.isnan(s["between_runs"]) and s["between_runs_source"] == "not recorded" and s["pyperf"] == 1.0
    assert s["jitter_median"] == pytest.approx(0.5)
    assert "not recorded" in stability.text(s)
    assert "not recorded" in stability.table(old).iloc[0]["unstable (between runs)"]


# ---------------------------------------------------------------- one float32 ceiling ------------------
def test_the_float32_ceiling_is_the_best_measured_gemm_and_a_peak_below_it_is_no_bound(R):
    c = ceilings.ceiling(R, 2)
    g = ceilings.gemm_table(R)
    assert c["gflops"] == g[g["threads"] == 2]["gflops"].max()
    R.meta = {**R.meta, "ceilings": {"ceilings": {"fp32_peak_gflops_1core": c["gflops"] / 2 * 0.9,
                                                  "clock_is_assumption": True, "clock_source": "cpu MHz"}}}
    t = ceilings.text(R)
    assert "no bound" in t and "nominal" in t
    assert ceilings.table(R).loc[2, "GEMM above the stated peak"].startswith("yes")
    f = R.fits.dropna(subset=["peak_gflops"])
    assert (f["peak_gflops"] >= c["gflops"] - 1e-9).all()          # shares are taken against that ceiling


def test_a_tie_gives_each_co_winners_accuracy_cost():
    """The rule may print float32 and int8 paths as co-winners: the reader may take either, so both costs show."""
    from overhead.report import wins
    R = type("R", (), {})()
    costs = {"litert": "none (float32; logit error 1e-07)",
             "litert.int8": "top-1 agreement 97.5 % of all checked inputs; logit error 0.04"}
    d = wins.Decision("batch 1", winners=["litert", "litert.int8"], candidates=["litert", "litert.int8", "numpy"])
    real = advice.accuracy_cost
    try:
        advice.accuracy_cost = lambda R, model, b, units_here=True: costs[b]
        row = advice._row("one request", "latency", ["litert", "litert.int8", "numpy"],
                          pd.Series({"litert": 20.0, "litert.int8": 21.0, "numpy": 30.0}), str, R=R,
                          model="cnn_seed", d=d)
    finally:
        advice.accuracy_cost = real
    assert row["accuracy cost"] == "`litert`: " + costs["litert"] + " · `litert.int8`: " + costs["litert.int8"]
    assert row["_cost_short"] == "`litert`: none, `litert.int8`: top-1 agreement 97.5 % of all checked inputs"
    table = pd.DataFrame([dict(row, situation="first"), row])
    assert "(accuracy cost: `litert`: none, `litert.int8`: top-1 agreement" in advice.lead(table)
