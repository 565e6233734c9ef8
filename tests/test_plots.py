"""The report's figures (overhead.report.plots and the section modules) and style: one colour per backend for all of DESIGN.md's names, PNG + SVG
output, labelled axes, small multiples by family, legends clear of the data (Agg backend)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from overhead.base import paths  # noqa: E402
from overhead.report import analysis as A  # noqa: E402
from overhead.report import loading, plotkit  # noqa: E402
from overhead.report import plots as P  # noqa: E402
from overhead.report import style as S  # noqa: E402
from overhead.report.sections import batch, fits, idle_gap, slowdown, threads, whopays  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures"
DESIGN_NAMES = list(paths.NAMES)


@pytest.fixture(scope="module")
def R():
    return A.analyse(loading.load_results(FIXTURE / "results"), loading.load_models_meta(FIXTURE / "models"),
                     n_boot=10)


def test_every_backend_of_the_design_has_its_own_colour_in_its_family_hue():
    assert sorted(S.BACKEND_ORDER) == sorted(DESIGN_NAMES)
    assert len(set(S.BACKEND_COLORS.values())) == len(DESIGN_NAMES)
    assert list(S.FAMILIES) == ["Keras 3 / TensorFlow", "Keras 2 (tf_keras)", "Keras on JAX / NumPy, JAX", "LiteRT",
                                "other runtimes", "NumPy"]
    rgb = {b: mcolors.to_rgb(c) for b, c in S.BACKEND_COLORS.items()}
    assert rgb["numpy"] == (0.0, 0.0, 0.0)
    for b in S.FAMILIES["LiteRT"]:
        r, g, bl = rgb[b[0]]
        assert g > r and g > bl, b                   # greens
    for b in ("tf.function", "tf.function.xla", "tf1.session"):
        r, g, bl = rgb[b]
        assert bl > r and bl > g, b                  # blues
    for b, _ in S.FAMILIES["Keras 2 (tf_keras)"]:
        r, g, bl = rgb[b]
        assert r > g > bl, b                         # oranges


def test_unknown_backend_gets_a_stable_fallback_colour_and_sorts_last():
    c = S.color_for("my.new.backend")
    assert c == S.color_for("my.new.backend") and c in S.FALLBACK_COLORS
    assert S.order_backends(["zzz", "litert", "numpy", "keras.call"]) == ["keras.call", "litert", "numpy", "zzz"]
    assert S.family_of("zzz") == S.OTHER_FAMILY and S.marker_for("zzz") == "*"
    assert list(S.by_family(["numpy", "litert.int8", "zzz"])) == ["LiteRT", "NumPy", S.OTHER_FAMILY]


def test_save_writes_png_and_svg(tmp_path):
    fig = plotkit._fig(3, 2)
    fig.add_subplot().plot([1, 2], [1, 2])
    paths = plotkit.save(fig, "tiny", tmp_path / "figs")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths["svg"].read_text()[:2000]


@pytest.fixture(scope="module")
def figures(R, tmp_path_factory):
    d = tmp_path_factory.mktemp("figs")
    M = R.machine
    vs = R.vs_numpy
    return d, {
        "overhead_vs_compute": fits.fig_overhead_vs_compute(R.sweep, R.fits, 90.0, machine=M, figures_dir=d),
        "who_pays": whopays.fig_who_pays(whopays.walk(R), figures_dir=d),
        "batch_size": batch.fig_batch(R.batch, machine=M, figures_dir=d),
        "threads": threads.fig_threads(R.scaling, machine=M, figures_dir=d),
        "idle_gap": idle_gap.fig_idle_gap(R.extra["idle_gap"], machine=M, figures_dir=d),
        "cold_start": P.fig_cold_start(R.startup, "cnn_seed", machine=M, figures_dir=d),
        "pipeline": P.fig_pipeline(R.pipeline, "cnn_seed", machine=M, figures_dir=d),
        "breakdown": P.fig_breakdown(R.breakdown, "cnn_seed", machine=M, figures_dir=d),
        "slowdown_vs_numpy": slowdown.fig_slowdown(A.pivot(vs, "slowdown", S.order_backends(vs["backend"]), M),
                                            figures_dir=d),
    }


def test_every_figure_writes_png_and_svg_with_labelled_axes(figures):
    d, figs = figures
    for name, fig in figs.items():
        assert (d / f"{name}.png").stat().st_size > 1000, name
        assert (d / f"{name}.svg").stat().st_size > 1000, name
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()]
        labelled = any(ax.get_xlabel() for ax in axes) or fig._supxlabel is not None
        assert labelled, name


def test_main_figure_is_small_multiples_by_family_with_every_backend(figures, R):
    fig = figures[1]["overhead_vs_compute"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(S.by_family(R.sweep["backend"].unique()))
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in panels)
    labels = {t.get_text() for ax in panels if ax.get_legend() for t in ax.get_legend().get_texts()}
    assert set(R.sweep["backend"]) <= labels
    assert "FLOP" in fig._supxlabel.get_text() and "latency" in fig._supylabel.get_text()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_figure_legends_sit_outside_the_plotting_area(figures):
    for name in ("pipeline", "breakdown", "idle_gap"):
        fig = figures[1][name]
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        assert fig.legends, name
        for leg in fig.legends:
            box = leg.get_window_extent(r)
            for ax in fig.axes:
                assert not _overlap(box, ax.get_window_extent(r)), name
            assert box.x1 <= fig.bbox.x1 + 1 and box.y0 >= -1, name   # inside the canvas


def test_figure_functions_survive_missing_data(tmp_path):
    empty = pd.DataFrame()
    for fig in (P.fig_cold_start(empty), P.fig_pipeline(empty), P.fig_breakdown(empty), threads.fig_threads(empty),
                batch.fig_batch(empty), slowdown.fig_slowdown(empty), whopays.fig_who_pays(empty),
                idle_gap.fig_idle_gap(None), fits.fig_overhead_vs_compute(empty, empty)):
        assert fig.axes[0].texts
    plotkit.save(P.fig_pipeline(empty), "empty", tmp_path)
    assert (tmp_path / "empty.png").exists()


# figures the report publishes
PUBLISHED = ("overhead_vs_compute", "who_pays", "batch_size", "threads", "idle_gap", "cold_start", "pipeline",
             "breakdown", "slowdown_vs_numpy")


def test_every_published_figure_carries_alt_text_and_a_finding_with_numbers(figures):
    _d, figs = figures
    for name in PUBLISHED:
        alt, caption = plotkit.description(figs[name], name)
        assert alt and not alt.startswith("Figure:"), name          # attached by describe, not the fallback
        assert any(ch.isdigit() for ch in caption), (name, caption)  # a computed finding, not a title


def test_publish_embeds_the_png_with_alt_and_caption(tmp_path):
    fig = plotkit._fig(3, 2)
    fig.add_subplot().plot([1, 2], [1, 2])
    plotkit.describe(fig, "a line <rising>", "It rises 2× between 1 and 2.")
    html = plotkit.publish(fig, "tiny", tmp_path).data
    assert 'alt="a line &lt;rising&gt;"' in html and "<figcaption>It rises 2× between 1 and 2.</figcaption>" in html
    assert 'src="data:image/png;base64,' in html


def test_a_figure_without_a_description_falls_back_to_its_titles(tmp_path):
    fig = plotkit._fig(3, 2)
    fig.add_subplot().set_title("Panel title")
    fig.suptitle("Whole figure")
    alt, caption = plotkit.description(fig, "x")
    assert alt == "Figure: Whole figure; Panel title" and caption == ""


def test_idle_gap_axis_shows_only_the_measured_gaps(figures):
    _d, figs = figures
    for ax in figs["idle_gap"].axes:
        if ax.get_visible() and ax.get_xlabel():
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert min(ticks) >= 0, ticks
