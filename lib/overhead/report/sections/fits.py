"""Section "Where does overhead stop mattering?": the fitted latency models (lead sentence, how each model was
chosen, the fit table, the measured points a fit misses) and the overhead-versus-compute figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from overhead.report import captions, identify, latency, sentences
from overhead.report.fmt import (
    code,
    crossover_of,
    fmt_flops,
    fmt_pct,
    fmt_us,
    not_measured,
    primary,
)
from overhead.report.plotkit import (
    _empty,
    _us,
    describe,
    family_grid,
    flops_axis,
    panel_legend,
    save,
)
from overhead.report.style import color_for, marker_for, order_backends


def fits_lead(R) -> str:
    """The latency-model section's finding in one sentence: how many fits are identifiable and, among them,
    the range of fitted fixed costs (non-identifiable fits are never used in a sentence)."""
    f = primary(R, "fits")
    if not len(f):
        return not_measured("benchmark (bench.csv)")
    good = f[[identify.identifiable(r) for _, r in f.iterrows()]]
    lo = good.loc[good["overhead_us"].idxmin()] if len(good) else None
    hi = good.loc[good["overhead_us"].idxmax()] if len(good) else None
    return sentences.render("fits_lead", machine=R.machine, n=len(f), n_ok=len(good), min_models=identify.MIN_MODELS,
                       max_span=identify.MAX_SPAN, lo=lo, hi=hi)


def overhead_text(R) -> str:
    """How each backend's latency model was chosen (for the collapsed details of the section)."""
    f = primary(R, "fits")
    if not len(f):
        return not_measured("benchmark (bench.csv)")
    rich = f[f["model"] == "per-layer"]
    return (f"Each backend's latency model was chosen by its leave-one-model-out error (a model is fitted "
            f"without one ladder model, then predicts it): the two-term model (overhead + FLOPs / throughput) "
            f"unless its error exceeds {fmt_pct(latency.MATERIAL)} and adding a per-layer cost cuts it by at least "
            f"{fmt_pct(latency.RICHER_GAIN)}. {len(f) - len(rich)} of {len(f)} backends keep the two-term model, "
            f"{len(rich)} take the per-layer model.")


def misses_table(R):
    """Every measured point the chosen model misses by more than ``latency.MISS``, worst first."""
    import pandas as pd
    res = primary(R, "resid")
    bad = latency.misses(res) if len(res) else pd.DataFrame()
    if not len(bad):
        return pd.DataFrame()
    return pd.DataFrame({"backend": bad["backend"], "model": bad["model"],
                         "fitted": [fmt_us(x) for x in bad["fitted_us"]],
                         "measured": [fmt_us(x) for x in bad["measured_us"]],
                         "error": [f"{100 * x:+.0f} %" for x in bad["rel_err"]]})


def misses_text(R) -> str:
    """One sentence: how many measured points the chosen models miss by more than ``latency.MISS``."""
    res = primary(R, "resid")
    if not len(res):
        return ""
    bad = latency.misses(res)
    lim = fmt_pct(latency.MISS)
    if not len(bad):
        return f"No fitted latency misses a measured one by more than {lim}."
    worst = bad.iloc[0]
    return (f"The chosen models miss {len(bad)} of {len(res)} measured points by more than {lim} (worst: "
            f"{code(worst['backend'])} on {code(worst['model'])}, fitted {fmt_us(worst['fitted_us'])}, measured "
            f"{fmt_us(worst['measured_us'])}); the table lists them all.")


def fit_table(R) -> pd.DataFrame:
    """The fits of the report's machine, formatted. A fit on < 5 models or with a 95 % interval spanning > 10×
    shows "not identifiable from these data" (and why) instead of its numbers; fitted crossovers are labelled
    fitted and placed on the models the path ran on."""
    f = primary(R, "fits")
    if not len(f):
        return pd.DataFrame()
    f = f.set_index("backend").loc[order_backends(f["backend"])]
    ok = {b: identify.identifiable(r) for b, r in f.iterrows()}
    na = identify.NOT_IDENTIFIABLE

    def ci(k, fmt):
        return [identify.interval_text(a, b, c, fmt) if ok[i] else "—"
                for i, a, b, c in zip(f.index, f[k], f[f"{k}_lo"], f[f"{k}_hi"])]

    def cross(b, share):
        r = f.loc[b]
        if not ok[b]:
            return "—"
        k = f"cross{share}_flops"
        if r[f"cross{share}_where"] != "inside":
            return crossover_of(R, b, share).replace("`", "").replace(" the largest model it ran on", "")
        lo, hi = r.get(f"{k}_lo", np.nan), r.get(f"{k}_hi", np.nan)
        band = (f" [{fmt_flops(lo)}–{fmt_flops(hi)}]" if np.isfinite(lo) and np.isfinite(hi) and lo > 0
                and hi / lo <= identify.MAX_SPAN else "")
        return fmt_flops(r[k]) + band
    t = pd.DataFrame({"models": f["n_models"], "model": f["model"],
                      "identifiable": ["yes" if ok[b] else f"{na}: {identify.why_not(r)}" for b, r in f.iterrows()],
                      "fitted overhead per call [95 % CI]": ci("overhead_us", fmt_us),
                      "fitted cost per layer": [(fmt_us(x) if ok[b] else "—") if k == "per-layer" else "—"
                                                for b, x, k in zip(f.index, f["per_layer_us"], f["model"])],
                      "fitted GFLOP/s [95 % CI]": ci("gflops", lambda g: f"{g:.3g}"),
                      "leave-one-out error": [
                          f"{fmt_pct(np.expm1(a))} → {fmt_pct(np.expm1(b))}" if np.isfinite(b) else fmt_pct(np.expm1(a))
                          for a, b in zip(f["loo_two_term"], f["loo_per_layer"])]}, index=f.index)
    for s in (50, 10):
        t[f"fitted: overhead {s} % at"] = [cross(b, s) for b in f.index]
    return t


def _fit_curve(ax, grid, fit_row, g, color):
    """The fitted latency of one backend: a line for the two-term model; for the per-layer model the fitted
    value at each measured model joined in FLOPs order (it depends on the layer count, not FLOPs alone)."""
    if fit_row is None or not np.isfinite(fit_row["overhead_us"]) or not identify.identifiable(fit_row):
        return                                 # a fit the data cannot pin down is not drawn
    if fit_row["model"] == "per-layer" and "layers" in g:
        gg = g.sort_values("flops")
        y = latency.predict_latency(gg["flops"], fit_row["overhead_us"], fit_row["gflops"], gg["layers"].fillna(0),
                                    fit_row["per_layer_us"])
        ax.plot(gg["flops"], y, color=color, lw=1.2, alpha=0.8, ls="-.")
    else:
        ax.plot(grid, latency.predict_latency(grid, fit_row["overhead_us"], fit_row["gflops"]), color=color, lw=1.2,
                alpha=0.8)


def _one(fits, b):
    f = fits[fits["backend"] == b] if len(fits) else fits
    return f.iloc[0] if len(f) else None


def fig_overhead_vs_compute(sweep: pd.DataFrame, fits: pd.DataFrame, peak_gflops: float | None = None,
                            machine: str | None = None, figures_dir=None, reference: str = "numpy") -> Figure:
    """Log-log latency per call against FLOPs, one panel per backend family: measured medians with their
    intervals (points), each backend's fitted model (lines; dash-dot: per-layer model), the NumPy engine in
    grey on every panel and the measured float32 GEMM rate (dashed)."""
    if machine is not None:
        sweep, fits = sweep[sweep["machine"] == machine], fits[fits["machine"] == machine]
    if not len(sweep):
        return _empty("no benchmark results")
    lo, hi = sweep["flops"].min() / 2, sweep["flops"].max() * 2
    grid = np.geomspace(lo, hi, 200)
    fig, panels = family_grid(sweep["backend"].unique(), width=13, panel_h=3.4)
    ref = sweep[sweep["backend"] == reference].sort_values("flops")
    for fam, names, ax in panels:
        if len(ref) and reference not in names:
            ax.plot(ref["flops"], ref["median_us"], color="0.65", lw=2.5, alpha=0.6, label=f"{reference} (measured)")
        for b in names:
            g = sweep[sweep["backend"] == b]
            c = color_for(b)
            ax.errorbar(g["flops"], g["median_us"], yerr=[(g["median_us"] - g["ci_lo_us"]).clip(lower=0), (g["ci_hi_us"] - g["median_us"]).clip(lower=0)],
                        fmt=marker_for(b), color=c, ms=4, lw=0, elinewidth=1, label=b, alpha=0.9)
            _fit_curve(ax, grid, _one(fits, b), g, c)
        if peak_gflops and np.isfinite(peak_gflops):
            ax.plot(grid, grid / (1e3 * peak_gflops), color="0.4", ls="--", lw=1,
                    label=f"GEMM rate ({peak_gflops:.0f} GFLOP/s)")
        ax.set(xscale="log", yscale="log", title=fam)
        flops_axis(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(_us))
        ax.yaxis.set_major_locator(LogLocator(base=10))
        panel_legend(ax)
    fig.supxlabel("work per call (FLOPs, batch 1)")
    fig.supylabel("median latency per call")
    fig.suptitle("Latency against model size by family: points measured (95 % interval), lines fitted "
                 "(identifiable fits only)")
    describe(fig, *captions.latency_panels(sweep, machine))
    if figures_dir is not None:
        save(fig, "overhead_vs_compute", figures_dir)
    return fig
