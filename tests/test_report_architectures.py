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
