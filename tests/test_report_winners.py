"""Issue 22 on fixtures: the effort-ranked advice (smallest change first, reduced precision with its accuracy cost
over all inputs and where it reverses, the TF1 session last and labelled), the claims x machines table naming
the machines where a claim holds, cold-start and memory winners only beyond the noise, and the tally."""
from pathlib import Path

import pandas as pd
import pytest

from overhead.report import wins
from overhead.report.sections import advice, advice_effort, claims, startup
from overhead.report import analysis as A
from overhead.report import loading

FIXTURE = Path(__file__).parent / "fixtures"


def _two_machines(slower_litert=False):
    """The fixture's run plus a planted second machine: TF paths 1.5x slower, LiteRT float unchanged or 4x slower."""
    res = loading.load_results(FIXTURE / "results")
    b = res["bench"]
    o = b.assign(machine="other-2c")
    tf = o["backend"].str.startswith(("keras", "tf"))
    scale = pd.Series(1.0, index=o.index)
    scale[tf] = 1.5
    if slower_litert:
        scale[o["backend"] == "litert"] = 4.0
    for c in ("median_us", "ci_lo_us", "ci_hi_us"):
        o[c] = o[c] * scale
    st = res["startup"]
    res = {**res, "bench": pd.concat([b, o], ignore_index=True),
           "startup": pd.concat([st, st.assign(machine="other-2c")], ignore_index=True)}
    return A.analyse(res, loading.load_models_meta(FIXTURE / "models"), n_boot=5)


@pytest.fixture(scope="module")
def R2():
    return _two_machines()


def test_the_effort_ladder_puts_the_smallest_change_first_and_the_tf1_session_last(R2):
    t = advice_effort.effort_ladder(R2, "cnn_seed")
    steps = list(t["step"])
    assert steps[0].startswith("1.") and steps[-1].startswith("TF1-style")
    assert list(t["path"]).index("`keras.predict_on_batch`") < list(t["path"]).index("`tf.function`") \
        < list(t["path"]).index("`litert`")
    assert {"synthetic-fixture-2c", "other-2c"} <= set(t.columns)
    assert "needs `tf.compat.v1` and a private API" in t.iloc[-1]["caveats"]


def test_reduced_precision_shows_its_accuracy_cost_over_all_inputs(R2):
    b = R2.bench
    m = (b["model"] == "cnn_seed") & (b["backend"] == "litert.int8")
    b.loc[m, ["top1_agree", "accuracy", "ref_accuracy"]] = [0.984, 0.7556, 0.7683]   # the numbers
    cost = advice_effort.accuracy_all(R2, "cnn_seed", "litert.int8")
    assert "top-1 agreement 98.4 % of all checked inputs" in cost and "1.27 points lower" in cost
    assert "`other-2c`" in cost


def test_reduced_precision_names_where_it_reverses():
    R = _two_machines(slower_litert=False)
    b = R.sweep
    m = (b["machine"] == "other-2c") & (b["model"] == "cnn_seed") & (b["backend"] == "litert.int8")
    lit = b[(b["machine"] == "other-2c") & (b["model"] == "cnn_seed") & (b["backend"] == "litert")].iloc[0]
    for c in ("median_us", "ci_lo_us", "ci_hi_us"):
        b.loc[m, c] = lit[c] * 4                       # int8 4x slower than float LiteRT there (as on the Intel run)
    rev = advice_effort.reversals(R, "cnn_seed", "litert.int8")
    assert any("not faster than float `litert` on `other-2c`" in x for x in rev)
    assert not any("`synthetic-fixture-2c`" in x and "not faster" in x for x in rev)


def test_claims_by_machine_names_the_machines_where_a_verdict_holds():
    R = _two_machines(slower_litert=True)
    t = claims.by_machine(R)
    assert {"synthetic-fixture-2c", "other-2c", "holds on"} <= set(t.columns)
    assert set(t["synthetic-fixture-2c"]) <= set(claims.VERDICTS)
    lite = t[t["claim (our paraphrase)"].str.contains("LiteRT")].iloc[0]
    if lite["synthetic-fixture-2c"] != lite["other-2c"]:
        assert lite["holds on"].endswith(" only") or lite["holds on"] == "no machine"
    md = claims.by_machine_markdown(t)
    assert "| `synthetic-fixture-2c` | `other-2c` | holds on |" in md
    assert "rank correlation" not in md and "pairs agree" not in md


def test_cold_start_and_memory_winners_tie_within_the_repetitions(R2):
    raw = R2.raw["startup"]
    text = startup.startup_text(R2)
    ok = raw[(raw["status"].astype(str) == "ok") & (raw["model"] == "cnn_seed")]
    d = wins.decide(wins.from_repetitions(ok, "start_to_first_pred_s"))
    assert ("a tie between" in text.split("Quickest start")[1].split(";")[0]) == d.tie
    assert "the range of the repetitions as interval" in text


def test_every_winner_question_is_tallied(R2):
    R2.decisions = {}
    advice.advice(R2)
    n = wins.tally(R2)
    assert n["questions"] >= 5 and n["n"] >= n["ties"] >= 0
