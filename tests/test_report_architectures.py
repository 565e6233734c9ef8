"""The architectures section: an application model against the plain ladder models bracketing its FLOPs."""
import numpy as np
import pandas as pd
import pytest

from overhead.ladder.models import APPLICATIONS
from overhead.report import analysis as A
from overhead.report.sections import architectures as arch

APP = "mobilenetv2_035_32px"
FLOPS = {"cnn_small": 1e6, APP: 2e6, "cnn_medium": 4e6, "logreg": 1e4}


def sweep(machine, us):
    """Rows of one machine: us[(model, backend)] = batch-1 median."""
    return pd.DataFrame([{"machine": machine, "model": m, "backend": b, "flops": FLOPS[m], "median_us": v}
                         for (m, b), v in us.items()])


def results(*frames, machines=None):
    s = pd.concat(frames, ignore_index=True)
    return A.Results(machine=s["machine"].iloc[0], machines=machines or list(dict.fromkeys(s["machine"])), sweep=s)


def test_the_ladder_names_its_applications():
    assert APP in APPLICATIONS and "efficientnetb0_32px" in APPLICATIONS and "cnn_small" not in APPLICATIONS


def test_plain_latency_is_interpolated_log_log_between_the_bracketing_models():
    rows = sweep("a", {("cnn_small", "litert"): 10.0, ("cnn_medium", "litert"): 40.0, ("logreg", "litert"): 1.0})
    us, below, above = arch.plain_at(rows, 2e6)
    assert (below, above) == ("cnn_small", "cnn_medium") and us == pytest.approx(20.0)
    assert arch.plain_at(rows, 1e7) is None and arch.plain_at(rows, 1e3) is None


def test_the_text_gives_the_ratio_range_the_overhead_share_and_the_engine_against_litert():
    us = {("cnn_small", "litert"): 10.0, ("cnn_medium", "litert"): 40.0, (APP, "litert"): 60.0,
          ("cnn_small", "numpy"): 20.0, ("cnn_medium", "numpy"): 80.0, (APP, "numpy"): 240.0,
          ("logreg", "tf.function"): 100.0, ("cnn_small", "tf.function"): 110.0, ("cnn_medium", "tf.function"): 140.0,
          (APP, "tf.function"): 500.0,
          ("logreg", "keras.predict"): 1000.0, ("cnn_small", "keras.predict"): 1010.0,
          ("cnn_medium", "keras.predict"): 1040.0, (APP, "keras.predict"): 1400.0}
    R = results(sweep("a", us), sweep("b", {("cnn_small", "litert"): 1.0}))
    t = arch.table(R)
    assert set(t["backend"]) == {"litert", "numpy", "tf.function", "keras.predict"} and set(t["machine"]) == {"a"}
    litert = t[t["backend"] == "litert"].iloc[0]
    assert litert["ratio"] == pytest.approx(3.0)  # 60 against 20 interpolated
    text = arch.text(R)
    assert text.startswith(f"On a, `{APP}` (2 MFLOP) takes ")
    assert "takes 1.4× (`keras.predict`) to 6× (`numpy`) the time of plain nets of its FLOPs" in text
    assert "(interpolated between `cnn_small` and `cnn_medium`)" in text
    # predict's overhead: (1400 - (500 - 100)) / 1400 on the app, (1010 - 10) / 1010 and (1040 - 40) / 1040 around it
    assert "`keras.predict`'s overhead is 71 % of a call on it, against 99 % and 96 % on those two." in text
    assert "The NumPy engine takes 4× LiteRT's time on it." in text
    assert text.endswith("Not measured on b: its sweep predates these models.")
    assert list(arch.reader_table(R).columns)[:4] == ["machine", "model", "FLOPs", "path"]


def test_no_application_model_says_not_measured():
    R = results(sweep("a", {("cnn_small", "litert"): 10.0, ("cnn_medium", "litert"): 40.0}))
    assert arch.text(R).startswith("*Not measured in this run:*") and not len(arch.reader_table(R))


# ---------------------------------------------------------------- apps.csv: causes grouped once ----
def apps_rows(machine="a"):
    r = lambda fam, be, parity, status, reason: {"machine": machine, "family": fam, "backend": be, "parity": parity,
                                                 "status": status, "reason": reason}
    hs = "unsupported layer Activation '{}': activation 'hard_silu'. numpy.plain supports: Conv2D, Dense"
    return pd.DataFrame([r("V3Small", "numpy", "pass", "ok", ""), r("V3Large", "numpy", "pass", "ok", ""),
                         r("V3Small", "numpy.plain", "", "skipped", hs.format("activation")),
                         r("V3Large", "numpy.plain", "", "skipped", hs.format("activation_207")),
                         r("V3Small", "litert.int8", "fail", "ok", "parity: logit_rel_err 2.11 > 0.35"),
                         r("V3Large", "litert.int8", "fail", "ok", "parity: logit_rel_err 1.1 > 0.35")])


def test_one_cause_on_several_families_is_one_item_and_parity_misses_give_their_errors():
    R = A.Results(machine="a", machines=["a", "b"], sweep=pd.DataFrame(), extra={"apps": apps_rows()})
    text = arch.families_text(R)
    assert text.endswith("Not checked on b (no `apps.csv`: run `make apps` there).")
    assert ("`numpy.plain` on V3Small, V3Large (skipped: unsupported layer Activation 'activation': "
            "activation 'hard_silu')") in text
    assert "activation_207" not in text and "numpy.plain supports" not in text
    assert "`litert.int8` on V3Small (2.11), V3Large (1.1) (differs: parity: logit_rel_err above 0.35)" in text


def test_the_published_apps_text_names_each_cause_once():
    """On the committed apps.csv files: Keras's layer numbering is gone and no path lists one cause twice."""
    import re
    from pathlib import Path

    from overhead.report.loading import load_results
    res = load_results(Path(__file__).resolve().parents[1] / "data" / "results")
    if res.get("apps") is None:
        pytest.skip("no apps.csv committed")
    R = A.Results(machine=res["machines"][0], machines=res["machines"], sweep=pd.DataFrame(), extra={"apps": res["apps"]})
    text = arch.families_text(R)
    assert not re.search(r"'[A-Za-z]\w*_\d+'", text)
    for machine_text in text.split("On ")[1:]:
        seen = set()
        for paths, cause in re.findall(r"((?:`[\w.]+`(?:, )?)+) on [^;(]+\((?:skipped|failed|differs): ([^;]+?)\)[;.]",
                                       machine_text):
            for path in re.findall(r"`([\w.]+)`", paths):
                assert (path, cause) not in seen, (path, cause)
                seen.add((path, cause))
        assert seen, "no failing or skipped path found in the text"


# ---------------------------------------------------------------- enginebench.csv ----
def bench_row(machine, blas, model, numpy_us, litert_us=100.0, tf_us=1000.0, spread=0.05, err=0.0, floor_us=None):
    q = lambda us: {"q25": us * (1 - spread), "q75": us * (1 + spread)}
    row = {"machine": machine, "model": model, "batch": 1, "threads": 1, "blas": blas, "blas_kernel": "SkylakeX",
           "numpy_us": numpy_us, "litert_us": litert_us, "tf_function_us": tf_us, "err_numpy": err, "tol": 1e-4,
           "flops": 2e7}
    paths = (("numpy", numpy_us), ("litert", litert_us), ("tf_function", tf_us))
    if floor_us is not None:
        row["numpy_floor_us"] = floor_us
        paths += (("numpy_floor", floor_us),)
    for k, us in paths:
        row[f"{k}_q25_us"], row[f"{k}_q75_us"] = q(us)["q25"], q(us)["q75"]
    return row


def test_engine_text_counts_targets_met_on_the_whole_band_and_names_noise_and_misses():
    e = pd.DataFrame([bench_row("a", "OPENBLAS_CORETYPE unset", "EfficientNetB0", 250.0),
                      bench_row("a", "OPENBLAS_CORETYPE unset", "MobileNetV2", 295.0),   # band 2.67-3.26: noise
                      bench_row("a", "OPENBLAS_CORETYPE unset", "Xception", 500.0, err=1.0),
                      bench_row("a", "OPENBLAS_CORETYPE unset", "mlp_tiny", 5.0)])   # a ladder case: not a family
    R = A.Results(machine="a", machines=["a", "b"], sweep=pd.DataFrame(), extra={"enginebench": e})
    text = arch.engine_text(R)
    assert text.startswith("On a with OPENBLAS_CORETYPE unset (OpenBLAS's SkylakeX kernels), at batch 1 on 1 thread")
    assert "takes 2.5× (EfficientNetB0) to 5× (Xception) LiteRT's time" in text
    assert "within 3× of LiteRT on 1 of 3 families; within the calls' noise of it on MobileNetV2 (2.95×); " \
           "above it on Xception (5×)" in text
    assert "at or below `tf.function` on 3 of 3 families" in text
    assert text.endswith("Its output left the tolerance on Xception. Not measured on b (no `enginebench.csv`: "
                         "run `make bench` there).")
    t = arch.engine_table(R)
    assert len(t) == 3 and t["engine / LiteRT (band: verdict)"].iloc[1].endswith(": noise)")
    assert (t["NumPy floor / LiteRT (band)"] == "not measured").all()  # a file from before the floor


def test_engine_text_gives_the_numpy_floor_and_calls_a_miss_above_it_beyond_numpy():
    e = pd.DataFrame([bench_row("a", "OPENBLAS_CORETYPE unset", "MobileNetV2", 400.0, floor_us=270.0),  # reachable
                      bench_row("a", "OPENBLAS_CORETYPE unset", "Xception", 600.0, floor_us=350.0),     # floor > 3x
                      bench_row("a", "OPENBLAS_CORETYPE unset", "ResNet50", 200.0, floor_us=150.0),
                      bench_row("a", "OPENBLAS_CORETYPE unset", "DenseNet121", 1300.0, tf_us=1000.0, floor_us=1200.0)])
    R = A.Results(machine="a", machines=["a"], sweep=pd.DataFrame(), extra={"enginebench": e})
    text = arch.engine_text(R)
    assert "within 3× of LiteRT on 1 of 4 families; above it on MobileNetV2 (4×; its NumPy floor 2.7×); " \
           "above it, and so are NumPy's GEMMs, depthwise einsums and activations alone, on Xception (6×; its NumPy floor 3.5×), " \
           "DenseNet121 (13×; its NumPy floor 12×)" in text
    assert "at or below `tf.function` on 3 of 4 families; above it, and so are NumPy's GEMMs, depthwise einsums " \
           "and activations alone, on DenseNet121 (1.3×; its NumPy floor 1.2×)." in text
    assert "takes 1.5× (ResNet50) to 12× (DenseNet121) LiteRT's time, 58 %–92 % of the engine's." in text
    assert "ladder" not in text  # no ladder rows in the file
    t = arch.engine_table(R)
    assert t["engine / LiteRT (band: verdict)"].iloc[1].endswith(": beyond NumPy)")
    assert t["NumPy floor / LiteRT (band)"].iloc[0] == "2.7× (2.44–2.98)"


def test_no_enginebench_says_not_measured():
    R = A.Results(machine="a", machines=["a"], sweep=pd.DataFrame())
    assert "enginebench.csv" in arch.engine_text(R) and not len(arch.engine_table(R))


def test_the_ladders_small_models_get_the_engine_and_its_floor_against_litert():
    rows = [bench_row("a", "OPENBLAS_CORETYPE unset", "MobileNetV2", 400.0, floor_us=270.0),
            bench_row("a", "OPENBLAS_CORETYPE unset", "mlp_tiny", 6.0, litert_us=2.0, floor_us=1.5),
            bench_row("a", "OPENBLAS_CORETYPE unset", "resnet18_224px", 9000.0, floor_us=None)]
    for r, flops in zip(rows, (2e7, 5e4, 3.6e9)):
        r["flops"] = flops
    R = A.Results(machine="a", machines=["a"], sweep=pd.DataFrame(), extra={"enginebench": pd.DataFrame(rows)})
    assert arch.ladder_floor_text(R) == ("On the ladder's small models (a, OPENBLAS_CORETYPE unset) the engine takes "
                                         "3× on mlp_tiny (floor 0.75×) LiteRT's time.")
    assert arch.ladder_floor_text(R) in arch.engine_text(R)


def test_the_published_enginebench_gives_each_measured_floor():
    """On the committed enginebench.csv files: every family row with a measured floor shows it in the table, the
    text gives the floor for its machine, and a 'beyond NumPy' verdict has its floor's whole band above the goal."""
    from pathlib import Path

    from overhead.report.loading import load_results
    res = load_results(Path(__file__).resolve().parents[1] / "data" / "results")
    e = res.get("enginebench")
    if e is None or "numpy_floor_us" not in e or not e["numpy_floor_us"].notna().any():
        pytest.skip("no committed enginebench.csv with a NumPy floor")
    R = A.Results(machine=res["machines"][0], machines=res["machines"], sweep=pd.DataFrame(),
                  extra={"enginebench": e})
    rows, table, text = arch.engine_rows(R), arch.engine_table(R), arch.engine_text(R)
    measured = rows["numpy_floor_us"].notna().to_numpy()
    assert measured.any()
    assert (table["NumPy floor / LiteRT (band)"][measured] != "not measured").all()
    for machine in rows[measured]["machine"].unique():
        assert f"On {machine} with" in text and "Its NumPy floor there" in text
    for r in rows[rows["verdict_litert"] == "beyond NumPy"].to_dict("records"):
        assert r["band_floor_litert"][0] > 3
    for r in rows[rows["verdict_tf_function"] == "beyond NumPy"].to_dict("records"):
        assert r["band_floor_tf_function"][0] > 1


def test_a_floor_median_above_the_engines_is_named_noise_or_no_floor():
    e = pd.DataFrame([bench_row("a", "OPENBLAS_CORETYPE unset", "ResNet50", 200.0, floor_us=150.0),
                      bench_row("a", "OPENBLAS_CORETYPE unset", "EfficientNetB0", 200.0, floor_us=210.0),  # bands overlap
                      bench_row("a", "OPENBLAS_CORETYPE unset", "MobileNetV2", 200.0, floor_us=300.0, spread=0.01)])
    R = A.Results(machine="a", machines=["a"], sweep=pd.DataFrame(), extra={"enginebench": e})
    text = arch.engine_text(R)
    assert "75 %–150 % of the engine's; its median is above the engine's on EfficientNetB0 (1.05× the engine's " \
           "time: the calls' noise, their bands overlap), MobileNetV2 (1.5× the engine's time: no floor there)." in text
