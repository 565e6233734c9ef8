import pandas as pd
import pytest

from overhead.base.config import ROOT
from overhead.report.sections import ceilings

BENCH = ROOT / "tests" / "fixtures" / "results" / "bench.csv"


def _bench():
    rows = []
    for backend, us in (("numpy", 100.0), ("onnxruntime", 50.0), ("litert.int8", 10.0)):
        for batch in (1, 4):
            rows.append({"machine": "m", "model": "big", "flops": 2e6, "backend": backend, "batch": batch,
                         "threads": 1, "status": "ok", "median_us": us * batch / (2 if batch == 4 else 1)})
    rows.append({"machine": "m", "model": "big", "flops": 2e6, "backend": "keras.call", "batch": 1,
                 "threads": 1, "status": "failed", "median_us": 1.0})
    return pd.DataFrame(rows)


CEIL = pd.DataFrame({"machine": ["m"] * 3, "library": ["numpy", "onnxruntime", "numpy"], "n": [256, 512, 256],
                     "threads": [1, 1, 2], "gflops": [100.0, 150.0, 190.0], "status": ["ok"] * 3})
SUMMARY = {"fp32_peak_gflops_1core": 200.0, "clock_is_assumption": True, "int8_peak_gops": 5000.0,
           "int8_derivation": "AMX-INT8: 1024 MACs"}


def test_achieved_rate_is_flops_times_batch_over_median():
    a = ceilings.achieved(_bench())
    assert "keras.call" not in set(a["backend"])  # failed rows never count
    numpy = a[a["backend"] == "numpy"].iloc[0]
    assert numpy["batch"] == 4 and numpy["gflops"] == pytest.approx(2e6 * 4 / (200.0 * 1e3))  # best batch
    one = ceilings.achieved(_bench(), batch=1)
    assert one.set_index("backend").loc["onnxruntime", "gflops"] == pytest.approx(2e6 / 50e3)
    assert a.set_index("backend")["reduced_precision"].to_dict() == {
        "numpy": False, "onnxruntime": False, "litert.int8": True}


def test_ceiling_lines_and_shares():
    lines = ceilings.ceiling_lines(CEIL, SUMMARY, 1)
    assert lines["measured"][0] == 150.0 and "onnxruntime" in lines["measured"][1]
    assert lines["theoretical"][0] == 200.0 and "nominal clock" in lines["theoretical"][1]
    assert "no bound" not in lines["theoretical"][1]                  # 150 measured < 200 stated
    above = ceilings.ceiling_lines(CEIL, {**SUMMARY, "fp32_peak_gflops_1core": 100.0}, 1)
    assert "below the measured GEMM: no bound" in above["theoretical"][1]
    assert ceilings.ceiling_lines(CEIL, SUMMARY, 2)["theoretical"][0] == 400.0
    assert ceilings.ceiling_lines(None, None, 1) == {"measured": None, "theoretical": None}
    assert "5000 GOP/s" in ceilings.reduced_note(SUMMARY) and "no int8 ceiling" in ceilings.reduced_note({})


def test_figure_draws_both_ceilings_and_hollow_reduced_precision(tmp_path):
    fig = ceilings.fig_roofline(_bench(), CEIL, SUMMARY, figures_dir=tmp_path)
    ax = fig.axes[0]
    flat = {tuple(line.get_ydata())[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1}
    assert {150.0, 200.0} <= flat
    int8 = [ln for ln in ax.get_lines() if ln.get_label().startswith("litert.int8")][0]
    assert int8.get_markerfacecolor() == "none" and "reduced precision" in int8.get_label()
    assert (tmp_path / "roofline.png").stat().st_size > 0 and (tmp_path / "roofline.svg").exists()


def test_figure_from_the_fixture_bench_without_ceilings():
    bench = pd.read_csv(BENCH)
    fig = ceilings.fig_roofline(bench)
    assert len(fig.axes) == bench["threads"].nunique()
    assert all(len(ax.get_lines()) > 0 for ax in fig.axes)
