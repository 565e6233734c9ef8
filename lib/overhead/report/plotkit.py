"""Figure plumbing shared by the report's figure modules: a pyplot-free Figure, PNG + SVG saving, axis
formatters, legends outside the data, the empty-figure placeholder and small multiples by backend family."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from overhead.report.style import by_family

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "overhead"      # reproducible SVG ids


PNG_DPI = 100          # a 12-13 in wide figure is ~1250 px: sharp on a 1280 px page, small in the HTML


def _quantize(path: Path) -> None:
    """Re-encode a PNG with an adaptive 256-colour palette (figures have few colours; ~3× smaller)."""
    try:
        from PIL import Image
    except ImportError:          # Pillow comes with matplotlib; without it the PNG stays as written
        return
    with Image.open(path) as im:
        pal = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(path, optimize=True)


def save(fig: Figure, name: str, figures_dir) -> dict:
    """Write ``<figures_dir>/<name>.png`` (``PNG_DPI``, palette) and ``.svg``; returns their paths."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{name}.png", "svg": out / f"{name}.svg"}
    fig.savefig(paths["png"], dpi=PNG_DPI, metadata={"Software": None})
    _quantize(paths["png"])
    fig.savefig(paths["svg"], metadata={"Date": None})
    return paths


def describe(fig: Figure, alt: str, caption: str) -> Figure:
    """Attach the figure's alt text (what it shows) and caption (its finding), both computed from its data."""
    fig.overhead_description = (alt, caption)
    return fig


def description(fig: Figure, name: str) -> tuple[str, str]:
    """``(alt, caption)`` of a figure: the ones ``describe`` attached, else its titles (never empty)."""
    got = getattr(fig, "overhead_description", None)
    if got and got[0]:
        return got
    titles = [t for t in [fig.get_suptitle()]
              + [ax.get_title() for ax in fig.axes] + [t.get_text() for ax in fig.axes for t in ax.texts] if t]
    text = "; ".join(dict.fromkeys(" ".join(t.split()) for t in titles)) or name.replace("_", " ")
    return f"Figure: {text}", ""


def figure_html(png: bytes, alt: str, caption: str = "", width: int | None = None) -> str:
    """An embedded PNG with its alt text and a caption under it (one self-contained ``<figure>``)."""
    import base64
    import html
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    w = f' width="{int(width)}"' if width else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="report-figure"><img src="{src}" alt="{html.escape(alt, quote=True)}"{w}>'
            f"{cap}</figure>")


def publish(fig: Figure, name: str, figures_dir, alt: str | None = None, caption: str | None = None):
    """Save the figure and return it for the notebook as HTML: the PNG with its alt text and caption (from
    ``describe``, or the arguments)."""
    from IPython.display import HTML
    paths = save(fig, name, figures_dir)
    d_alt, d_cap = description(fig, name)
    return HTML(figure_html(paths["png"].read_bytes(), alt or d_alt, caption if caption is not None else d_cap,
                            min(int(fig.get_figwidth() * 96), 1150)))


def _fig(w, h, **kw) -> Figure:
    fig = Figure(figsize=(w, h), layout="constrained", **kw)
    FigureCanvasAgg(fig)          # a renderer without pyplot (works under any backend)
    return fig


def _si(unit):
    def fmt(x, _pos=None):
        for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= f:
                return f"{x / f:g} {p}{unit}"
        return f"{x:g} {unit}"
    return FuncFormatter(fmt)


def _us(x, _pos=None):
    if x >= 1e6:
        return f"{x / 1e6:g} s"
    if x >= 1e3:
        return f"{x / 1e3:g} ms"
    return f"{x:g} µs"


def _legend_right(ax, handles=None, labels=None, title="backend"):
    """One legend right of the axes; in as many columns as the figure's height needs (~25 paths fit)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    rows = max(4, int(ax.figure.get_figheight() * 72 / 13) - 3)
    ax.figure.legend(handles, labels, loc="outside right upper", title=title, fontsize="small",
                     title_fontsize="small", frameon=False, ncols=int(np.ceil(len(labels) / rows)) or 1)


def _empty(msg: str) -> Figure:
    fig = _fig(6, 1.5)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, msg, ha="center", va="center")
    return fig




def family_grid(backends, width=12.0, panel_h=3.2, ncols=3, sharey=True):
    """Small multiples: one panel per backend family present in ``backends``.

    Returns ``(fig, [(family, [backends], ax), ...])``; unused panels are hidden."""
    groups = list(by_family(backends).items())
    ncols = max(1, min(ncols, len(groups)))
    nrows = int(np.ceil(len(groups) / ncols))
    fig = _fig(width, panel_h * nrows + 0.8)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[len(groups):]:
        ax.set_visible(False)
    return fig, [(fam, names, flat[i]) for i, (fam, names) in enumerate(groups)]


def panel_legend(ax, fontsize="x-small"):
    h, lab = ax.get_legend_handles_labels()
    if h:
        ax.legend(h, lab, fontsize=fontsize, loc="best", frameon=True, framealpha=0.85)


def flops_axis(ax):
    """A log FLOPs x axis with a label every two decades (readable on narrow small-multiple panels)."""
    ax.xaxis.set_major_locator(LogLocator(base=100))
    ax.xaxis.set_major_formatter(_si("FLOP"))
    ax.xaxis.set_minor_formatter(NullFormatter())
