"""overhead.plots: colours, PNG + SVG output, labelled axes, legends clear of the data (Agg backend)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from overhead import analysis as A  # noqa: E402
from overhead import plots as P  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures"
BACKENDS = ["numpy", "keras.predict", "keras.predict_on_batch", "keras.call", "tf.function", "tf.function.xla",
            "tf.savedmodel", "litert", "litert.builtin", "litert.fp16", "litert.dynamic_int8", "litert.int8",
            "onnxruntime"]


@pytest.fixture(scope="module")
def R():
    return A.analyse(A.load_results(FIXTURE / "results"), n_boot=10)


def test_every_backend_has_its_own_colour_in_its_family_hue():
    assert P.BACKEND_ORDER == BACKENDS
    assert set(P.BACKEND_COLORS) == set(BACKENDS)
    assert len(set(P.BACKEND_COLORS.values())) == len(BACKENDS)
    rgb = {b: mcolors.to_rgb(c) for b, c in P.BACKEND_COLORS.items()}
    assert rgb["numpy"] == (0.0, 0.0, 0.0)
    for b, (r, g, bl) in rgb.items():
        if b.startswith("keras"):
            assert r > g and r > bl, b          # reds / oranges
        elif b.startswith("tf."):
            assert bl > r and bl > g, b         # blues
        elif b.startswith("litert"):
            assert g > r and g > bl, b          # greens
        elif b == "onnxruntime":
            assert r > g and bl > g, b          # purple


def test_unknown_backend_gets_a_stable_fallback_colour_and_sorts_last():
    c = P.color_for("my.new.backend")
    assert c == P.color_for("my.new.backend") and c in P.FALLBACK_COLORS
    assert P.order_backends(["zzz", "litert", "numpy"]) == ["numpy", "litert", "zzz"]


def test_save_writes_png_and_svg(tmp_path):
    fig = P._fig(3, 2)
    fig.add_subplot().plot([1, 2], [1, 2])
    paths = P.save(fig, "tiny", tmp_path / "figs")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths["svg"].read_text()[:2000]


@pytest.fixture(scope="module")
def figures(R, tmp_path_factory):
    d = tmp_path_factory.mktemp("figs")
    return d, _figures(R, d)


def _figures(R, d):
    M = R["machine"]
    vs = R["vs_numpy"]
    return {
        "overhead_vs_compute": P.fig_overhead_vs_compute(R["sweep"], R["fits"], 90.0, machine=M, figures_dir=d),
        "overhead_share": P.fig_overhead_share(R["sweep"], R["fits"], machine=M, figures_dir=d),
        "batch_size": P.fig_batch(R["batch"], machine=M, figures_dir=d),
        "threads": P.fig_threads(R["scaling"], machine=M, figures_dir=d),
        "cold_start": P.fig_cold_start(R["startup"], "cnn_seed", machine=M, figures_dir=d),
        "pipeline": P.fig_pipeline(R["pipeline"], "cnn_seed", machine=M, figures_dir=d),
        "breakdown": P.fig_breakdown(R["breakdown"], "cnn_seed", machine=M, figures_dir=d),
        "slowdown_vs_numpy": P.fig_slowdown(A.pivot(vs, "slowdown", P.order_backends(vs["backend"]), M),
                                            figures_dir=d),
    }


def test_every_figure_writes_png_and_svg_with_labelled_axes(figures):
    d, figs = figures
    for name, fig in figs.items():
        assert (d / f"{name}.png").stat().st_size > 1000, name
        assert (d / f"{name}.svg").stat().st_size > 1000, name
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert any(ax.get_xlabel() for ax in axes) and any(ax.get_ylabel() or ax.get_yticklabels()
                                                           for ax in axes), name
    ax = figs["overhead_vs_compute"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "FLOP" in ax.get_xlabel() and "latency" in ax.get_ylabel()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legends_sit_outside_the_plotting_area(figures):
    for name in ("overhead_vs_compute", "overhead_share", "threads", "batch_size", "pipeline", "breakdown"):
        fig = figures[1][name]
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        legends = fig.legends
        assert legends, name
        for leg in legends:
            box = leg.get_window_extent(r)
            for ax in fig.axes:
                assert not _overlap(box, ax.get_window_extent(r)), name
            assert box.x1 <= fig.bbox.x1 + 1 and box.y0 >= -1, name   # inside the canvas


def test_figure_functions_survive_missing_data(tmp_path):
    empty = pd.DataFrame()
    for fig in (P.fig_cold_start(empty), P.fig_pipeline(empty), P.fig_breakdown(empty), P.fig_threads(empty),
                P.fig_batch(empty), P.fig_slowdown(empty)):
        assert "not" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts) or fig.axes[0].texts
    P.save(P.fig_pipeline(empty), "empty", tmp_path)
    assert (tmp_path / "empty.png").exists()
