"""The report's "Under load" functions on a small fixture table (loadgen.csv columns)."""
import json

import numpy as np
import pandas as pd
import pytest

from overhead.experiments.loadgen import COLUMNS
from overhead.report import underload, underload_http


def _row(**kw):
    base = {"machine": "box", "model": "m", "transport": "inproc", "strategy": "thread", "workers": 1, "threads": 1,
            "batching": "", "status": "ok", "reason": "", "parity": "pass", "bound_ms": 10.0,
            "batch_hist": json.dumps({"1": 100})}
    return {**base, **kw}


def _ss(path, p50, p90=None, **kw):
    return _row(scenario="SingleStream", role="single-stream", path=path, p50_us=p50, p90_us=p90 or 1.2 * p50,
                p99_us=2 * p50, validity="VALID", **kw)


def _srv(path, qps, valid, p50=100.0, p99=1000.0, **kw):
    kw = {"duration_s": 10.4, "phase": "confirm", "achieved_qps": qps, **kw}  # long confirming runs unless a test says otherwise
    return _row(scenario="Server", role="bisection", path=path, target_qps=qps, p50_us=p50,
                p99_us=p99, validity="VALID" if valid else "INVALID", **kw)


@pytest.fixture
def table():
    rows = [
        _ss("noop", 7.0), _ss("litert", 20.0), _ss("numpy", 30.0), _ss("keras.predict", 40_000.0),
        _ss("litert", 15.0, threads=2), _ss("numpy", 25.0, threads=2),
        _ss("noop", 900.0, transport="http"), _ss("litert", 950.0, transport="http"),
        _ss("numpy", 960.0, transport="http"),
        # Server bisections: litert tops out at 2000, numpy at 4000 (it sustains more), keras.predict never VALID
        _srv("litert", 1000, True), _srv("litert", 2000, True, p99=8000), _srv("litert", 2200, False, p99=30_000),
        _srv("numpy", 1000, True), _srv("numpy", 4000, True, p99=9000), _srv("numpy", 4400, False, p99=50_000),
        _srv("keras.predict", 12, False, p99=60_000),
        # strategies and batching
        _srv("numpy", 3000, True, strategy="threads", workers=2), _srv("numpy", 3300, False, strategy="threads", workers=2),
        _srv("numpy", 7000, True, strategy="processes", workers=2),
        _srv("numpy", 9000, True, strategy="batching", batching="D=1ms,B=8", batch_hist=json.dumps({"1": 10, "4": 10})),
        # a path whose answers were wrong under load: out of the capacity, flagged in the table
        _srv("test.wrong", 5000, True, status="failed", reason="parity under load: logit_rel_err 1.4 > 0.001"),
        _ss("test.wrong", 10.0, status="failed", reason="parity under load: logit_rel_err 1.4 > 0.001"),
    ]
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def test_mlperf_table_has_single_stream_p90_and_server_max_qps(table):
    t = underload.mlperf_table(table).set_index("path")
    assert t.loc["litert", "ss_p90_us"] == pytest.approx(24.0) and t.loc["litert", "ss_p90_us_t2"] == pytest.approx(18.0)
    assert t.loc["litert", "max_qps"] == 2000 and t.loc["numpy", "max_qps"] == 4000
    assert t.loc["keras.predict", "max_qps"] == 0.0  # bisected, never VALID
    assert "noop" not in t.index
    assert t.loc["test.wrong", "parity_under_load"] == "fail" and np.isnan(t.loc["test.wrong", "ss_p90_us"])
    assert (t.drop("test.wrong")["parity_under_load"] == "pass").all()


def test_sentence_says_the_fastest_path_changes_under_load(table):
    text = underload.under_load_sentence(table)
    assert text.startswith("Under load the fastest path changes:")
    assert "`litert` is the fastest alone" in text and "`numpy` sustains the most load (4,000 queries/s" in text
    assert "test.wrong" not in text
    same = table[table["path"] != "numpy"]
    assert underload.under_load_sentence(same).startswith("Under load the fastest path stays the same")
    assert "cannot" in underload.under_load_sentence(table[table["scenario"] == "SingleStream"])


def test_http_share_from_the_noop_model(table):
    s = underload_http.http_share(table).set_index("path")
    assert set(s.index) == {"litert", "numpy"}
    lit = s.loc["litert"]
    assert lit["loadgen_sut_us"] == 7.0 and lit["http_us"] == 893.0
    assert lit["model_us"] == 13.0 and lit["framework_us"] == 0.0  # litert is the fastest: all model
    assert s.loc["numpy", "framework_us"] == 10.0
    shares = s[[c for c in s.columns if c.endswith("_share")]]
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert lit["http_share"] > 0.9 and lit["measured_us"] == 950.0
    assert underload_http.http_share(table[table["transport"] == "inproc"]).empty


def test_strategy_and_batching_tables(table):
    st = underload.strategy_table(table)
    assert st.loc[("m", "numpy"), "thread"] == 4000 and st.loc[("m", "numpy"), "threads x2"] == 3000
    assert st.loc[("m", "numpy"), "processes x2"] == 7000
    bt = underload.batching_table(table).iloc[0]
    assert bt["max_qps"] == 9000 and bt["mean_batch"] == pytest.approx(2.5)
    page = underload.strategy_reader_table(table).set_index(["model", "path"])
    assert page.loc[("m", "numpy"), "processes x2 (QPS)"] == "7,000" and page.loc[("m", "numpy"), "thread (QPS)"] == "4,000"
    assert underload.batching_reader_table(table).iloc[0]["Server max (QPS)"] == "9,000"


def test_a_configuration_without_a_maximum_says_why_on_the_page():
    frame = pd.DataFrame([_srv("numpy", 100, False), _srv("litert", 500, True, duration_s=0.5, phase="steer"),
                          _srv("litert", 500, False)]).reindex(columns=COLUMNS)
    page = underload.strategy_reader_table(frame).set_index("path")["thread (QPS)"]
    assert page["numpy"] == "no load held" and page["litert"] == "none held 10 s"


def test_figures_draw_and_say_when_empty(table):
    fig = underload.fig_hockey_stick(table)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) >= 6
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["numpy", "keras.predict", "litert"] or set(labels) == {"numpy", "keras.predict", "litert"}
    bar = underload_http.fig_http_share(underload_http.http_share(table))
    assert len(bar.axes[0].patches) == 2 * 4
    empty = underload.fig_hockey_stick(table[table["scenario"] == "SingleStream"])
    assert "no Server runs" in empty.axes[0].texts[0].get_text()


def test_short_runs_are_upper_bounds_never_maxima(table):
    """The first published runs: 0.5 s Server points, no phase column. Their maxima are upper bounds."""
    old = table.drop(columns=["phase"]).assign(duration_s=0.54)
    t = underload.mlperf_table(old).set_index("path")
    assert np.isnan(t.loc["litert", "max_qps"]) and t.loc["litert", "upper_bound_qps"] == 2000
    assert t.loc["litert", "max_kind"].startswith("short-run upper bound (runs of 0.54 s < 10 s)")
    assert t.loc["keras.predict", "max_qps"] == 0.0  # nothing held, short or long
    assert "upper bounds only" in underload.under_load_sentence(old)
    # a long run at 1,000 QPS and short ones above it: 1,000 is the maximum, the short 2,000 is not
    mixed = table.copy()
    short = (mixed["path"] == "litert") & (mixed["target_qps"] > 1000)
    mixed.loc[short, ["duration_s", "phase"]] = [0.5, "steer"]
    assert underload.mlperf_table(mixed).set_index("path").loc["litert", "max_qps"] == 1000


def test_a_short_run_maximum_that_fails_when_run_long_is_no_figure(table):
    """keras.predict_on_batch on the Zen 3 VM: short runs held 681 QPS, 10 s runs at 681, 545 and 436 failed."""
    refuted = table[table["path"] != "litert"].copy()
    refuted = pd.concat([refuted, pd.DataFrame([
        _srv("litert", 405, True, duration_s=2.6, phase="steer"), _srv("litert", 681, True, duration_s=1.5, phase="steer"),
        _srv("litert", 742, False, duration_s=1.4, phase="steer"),
        _srv("litert", 681, False, p99=24_800), _srv("litert", 545, False, p99=14_100), _srv("litert", 436, False, p99=38_100),
    ])], ignore_index=True)
    t = underload.mlperf_table(refuted).set_index("path")
    assert np.isnan(t.loc["litert", "max_qps"]) and np.isnan(t.loc["litert", "upper_bound_qps"])
    assert t.loc["litert", "max_kind"] == "none held 10 s: long runs at 436-681 QPS failed (short runs held up to 681)"
    assert t.loc["numpy", "max_kind"] == "maximum"


def test_a_flagged_maximum_is_not_published(table):
    flagged = table.copy()
    at = (flagged["path"] == "numpy") & (flagged["target_qps"] == 4000) & (flagged["strategy"] == "thread")
    flagged.loc[at, ["status", "reason"]] = ["flagged", "capacity bound broken"]
    cap = underload.server_capacity(flagged).set_index("path")
    assert cap.loc["numpy", "max_qps"] == 1000 and cap.loc["numpy", "flagged"] == 1


def test_sentence_names_co_winners_when_maxima_are_within_the_step(table):
    close = table.copy()
    close.loc[(close["path"] == "numpy") & (close["target_qps"] == 4000), "target_qps"] = 2200.0
    close.loc[(close["path"] == "numpy") & (close["target_qps"] == 4400), "target_qps"] = 2500.0
    text = underload.under_load_sentence(close)
    assert "a tie of `numpy`, `litert`" in text and "stays the same" in text


def _http(payload, workers, p50, **kw):
    return _ss("noop", p50, transport="http", payload=payload, server_workers=workers, **kw)


def test_http_table_and_the_lead_sentence(table):
    rows = [_http("json", 1, 600.0), _http("binary", 1, 300.0),
            _srv("noop", 1200, True, transport="http", payload="binary", server_workers=1, p50=320.0, p99=900.0),
            _srv("noop", 600, True, transport="http", payload="binary", server_workers=1, p50=310.0, p99=700.0,
                 phase="steer", duration_s=0.5),
            _srv("noop", 1400, False, transport="http", payload="binary", server_workers=1, achieved_qps=1300.0,
                 conn_split="2"),
            _row(scenario="Server", role="wrk", path="noop", transport="http", payload="binary", server_workers=1,
                 client="wrk", clients=1, p50_us=250.0, p99_us=400.0, achieved_qps=3500.0),
            _row(scenario="Server", role="wrk", path="noop", transport="http", payload="binary", server_workers=1,
                 client="wrk", clients=8, p50_us=2000.0, p99_us=4000.0, achieved_qps=1500.0),
            _row(scenario="Server", role="wrk", path="noop", transport="http", payload="json", server_workers=1,
                 client="wrk", status="skipped", reason="wrk is not installed")]
    frame = pd.concat([table, pd.DataFrame(rows)], ignore_index=True).reindex(columns=COLUMNS)
    h = underload_http.http_table(frame).set_index("payload")
    assert set(h.index) == {"pydantic JSON", "plain JSON", "binary float32"}  # no payload column: pydantic JSON
    b = h.loc["binary float32"]
    assert b["max_qps"] == 1200 and b["half_qps"] == 600 and b["p99_at_half_us"] == 700.0
    assert b["wrk_c1_p50_us"] == 250.0 and b["wrk_qps"] == 1500.0 and b["loadgen_over_wrk"] == pytest.approx(0.8)
    assert "wrk is not installed" in h.loc["plain JSON", "wrk_note"]
    page = underload_http.http_reader_table(frame).set_index("payload")
    assert page.loc["binary float32", "LoadGen Server max (QPS)"] == "1,200"
    assert page.loc["binary float32", "p99 at half the max (ms)"] == "0.7"
    assert page.loc["binary float32", "Server max / wrk max (×)"] == "0.8"
    # saturation against saturation: the 1,400 QPS run fell short (1,300 achieved), wrk's maximum is 1,500
    assert page.loc["binary float32", "LoadGen connections per worker"] == "2"
    assert b["peak_qps"] == 1300.0 and b["peak_saturated"] and page.loc["binary float32", "LoadGen peak (req/s)"] == "1,300"
    check = underload_http.http_cross_check(underload_http.http_table(frame))
    assert "pushed 0.867x with 1 uvicorn worker the requests per second wrk did" in check and "within 2x everywhere" in check
    assert "is 0.8-0.8x wrk's maximum" not in check and "is 0.8x wrk's maximum" in check
    assert "wrk is not installed" in page.loc["plain JSON", "wrk note"]
    text = underload_http.lead_sentence(frame)
    # pydantic JSON: 900 - 7 us over HTTP against litert's 20 us in process; binary: 293 us
    assert text.startswith("Behind a web service the payload, not the framework, sets the floor for m: a "
                           "pydantic JSON request costs 893 µs over HTTP, 44.6x the lowest single-query p50 measured in process (`litert`")
    assert "(binary float32: 293 µs)" in text
    assert text.endswith("(binary float32: 293 µs).")  # no tf.function measured: no claim about the framework
    tf = pd.concat([frame, pd.DataFrame([_ss("tf.function", 25.0)])], ignore_index=True).reindex(columns=COLUMNS)
    assert "the lowest in-process p50 by more than the cheapest HTTP round trip (at most 5 µs)" in \
        underload_http.lead_sentence(tf)
    big = pd.concat([frame, pd.DataFrame([_ss("litert", 5000.0, model="big"), _ss("tf.function", 9000.0, model="big"),
                                          _ss("tf.function", 25.0)])], ignore_index=True).reindex(columns=COLUMNS)
    assert "the framework matters again from big on, where `tf.function` costs 4 ms more" in underload_http.lead_sentence(big)
    assert underload_http.lead_sentence(big).endswith("more than the binary float32 round trip.")
    # tf.function 500 us above litert on the smallest model itself, above the binary round trip (293 us): no "again"
    small = pd.concat([frame, pd.DataFrame([_ss("tf.function", 520.0)])], ignore_index=True).reindex(columns=COLUMNS)
    text = underload_http.lead_sentence(small)
    assert "again" not in text and text.endswith(
        "; yet on m `tf.function` already costs 500 µs more per query than `litert`, more than the binary float32 round trip.")


def test_a_capacity_is_bracketed_by_the_lowest_failing_rate_above_it(table):
    """The advice's interval for a Server maximum: [the maximum, the lowest failing rate above it]."""
    cap = underload.server_capacity(table).set_index("path")
    assert cap.loc["litert", "max_qps"] == 2000 and cap.loc["litert", "fail_above_qps"] == 2200
    assert cap.loc["numpy", "fail_above_qps"] == 4400
    assert cap.loc["keras.predict", "fail_above_qps"] == 12, "no load held: its capacity is below the lowest rate tried"


def test_the_cross_check_names_settings_outside_2x_and_why_older_runs_can_be():
    t = pd.DataFrame({"payload": ["plain JSON", "plain JSON"], "server_workers": [1, 2], "peak_over_wrk": [0.9, 0.43],
                      "peak_saturated": [True, True], "loadgen_over_wrk": [0.6, 0.3]})
    text = underload_http.http_cross_check(t)
    assert "0.9x with 1 uvicorn worker and 0.43x with 2 uvicorn workers" in text
    assert "outside 2x: plain JSON with 2 workers (0.43x)." in text and "predate the client's balanced" in text
    balanced = underload_http.http_cross_check(t.assign(conn_split=["2", "2+2"]))
    assert "outside 2x" in balanced and "predate" not in balanced
    assert "is 0.3-0.6x wrk's maximum" in text


def test_a_rerun_of_the_stage_gives_each_path_its_between_run_spread():
    import types

    from overhead.report.sections import loadgen as lgsec
    from overhead.report.sections.advice import _capacity_frame

    def run(qps_a, qps_b):
        return pd.DataFrame([_srv("a", qps_a, True, machine="m1"), _srv("a", qps_a * 1.25, False, machine="m1"),
                             _srv("b", qps_b, True, machine="m1"), _srv("b", qps_b * 1.25, False, machine="m1")]
                            ).reindex(columns=COLUMNS)
    tables = {"loadgen": run(1000, 600), "loadgen_repeat": run(1050, 1000)}
    R = types.SimpleNamespace(every=lambda name: tables.get(name, pd.DataFrame()))
    spreads = lgsec.rerun_spread(R)
    sp = spreads.set_index("path")["spread"]
    assert sp["a"] == pytest.approx(0.05) and sp["b"] == pytest.approx(1000 / 600 - 1)
    assert lgsec.capacity_spread(spreads, "m1", "m", "b")[0] == pytest.approx(2 / 3)
    assert lgsec.capacity_spread(spreads, "m2", "m", "b") == (pytest.approx(2 / 3), "m1"), "borrowed from the rerun machine"
    assert lgsec.capacity_spread(spreads, "m1", "m", "zzz") == (0.0, "")
    text = lgsec.repeat_text(R)
    assert "at most 1.67x (`b`: 1,000 then 600 QPS)" in text
    # a's bracket [1000, 1250] clears b's [600, 750], but b's runs moved 67 %: a 1.67x gap is inside it -> a tie
    from overhead.report import wins
    d = wins.decide(_capacity_frame([("m1", tables["loadgen"])], "m", R), higher_better=True)
    assert d.winners == ["a", "b"]
    assert wins.decide(_capacity_frame([("m1", tables["loadgen"])], "m"), higher_better=True).winners == ["a"]
    assert "Not measured" in lgsec.repeat_text(types.SimpleNamespace(every=lambda name: pd.DataFrame()))
