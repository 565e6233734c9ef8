"""The between-run spread of the TF paths, explained (or not): the section over ``spread.csv``.

``spread.csv`` (:mod:`overhead.experiments.spread`) has one row per fresh process x path under one variant of
the process start-up (as is, oneDNN off, pinned, another allocator, huge pages, no ASLR). Here, per machine,
variant and path: the processes, the median of their run medians, the spread between them -- max/min of the
run medians and their MAD relative to the median -- and how much of a run its first tenth of values exceeds
(warm-up), and the spread of the runs' last tenths alone (is it warm-up or the whole run?). A variant
*collapses* the spread when its relative MAD and its max/min excess are both at most :data:`COLLAPSE` of the
as-is ones on every path that both measured, and the as-is spread exceeds :data:`NOISE` (otherwise there was nothing to collapse); it is
*ruled out* when it does not; with fewer than :data:`MIN_PROCESSES` processes per path neither is claimed.
Pure functions of the table; the figure shows every process's median.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import sentences as T
from overhead.report.fmt import fmt_pct, fmt_us, fmt_x

BASELINE = "as is"
COLLAPSE = 0.5  # a variant's relative MAD at most this share of the as-is one, on every path
NOISE = 0.05  # as-is MAD within this share of the median and max/min within 1 + 2 x this: the runs agree
MIN_PROCESSES = 5  # a verdict on a variant needs at least this many processes per path (and as is)
MIN_SHOWN = 2  # a spread is shown from this many processes


def _rel_mad(v: np.ndarray) -> float:
    med = np.median(v)
    return float(np.median(np.abs(v - med)) / med) if med > 0 else np.nan


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per machine x variant x path: ``processes``, ``median_us`` (of the run medians), ``spread_x``
    (max/min), ``mad_rel`` (MAD / median), ``warmup`` (median over processes of first tenth / whole run - 1),
    ``status`` ("measured" or why not)."""
    cols = ["machine", "variant", "backend", "processes", "median_us", "spread_x", "mad_rel", "warmup",
            "late_spread_x", "load1", "status"]
    if frame is None or not len(frame):
        return pd.DataFrame(columns=cols)
    out = []
    order = list(dict.fromkeys(frame["variant"]))
    for (machine, variant), g in frame.groupby(["machine", "variant"], sort=False):
        ok = g[g["status"] == "ok"]
        if not len(ok):
            why = next((str(r) for r in g["reason"] if isinstance(r, str) and r), str(g["status"].iloc[0]))
            out.append({"machine": machine, "variant": variant, "backend": None, "processes": 0, "status": why})
            continue
        for backend, b in ok.groupby("backend", sort=False):
            m = b["median_us"].to_numpy(float)
            late = b["last_us"].to_numpy(float) if "last_us" in b else np.full(len(m), np.nan)
            load = b["load1"].to_numpy(float) if "load1" in b else np.full(len(m), np.nan)
            out.append({"machine": machine, "variant": variant, "backend": backend, "processes": len(m),
                        "median_us": float(np.median(m)), "spread_x": float(m.max() / m.min()),
                        "mad_rel": _rel_mad(m),
                        "warmup": float(np.median(b["first_us"].to_numpy(float) / m - 1)),
                        "late_spread_x": float(np.nanmax(late) / np.nanmin(late)) if np.isfinite(late).any()
                        else np.nan,
                        "load1": float(np.nanmedian(load)) if np.isfinite(load).any() else np.nan,
                        "status": "measured"})
    s = pd.DataFrame(out).reindex(columns=cols)
    s["_v"] = s["variant"].map({v: i for i, v in enumerate(order)})
    return s.sort_values(["machine", "_v"], kind="stable").drop(columns="_v").reset_index(drop=True)


def _agree(rows: pd.DataFrame) -> bool:
    """Runs agree on every path: small MAD (the bulk) and small max/min (a minority mode, which MAD misses)."""
    return bool(((rows["mad_rel"] <= NOISE) & (rows["spread_x"] <= 1 + 2 * NOISE)).all())


def verdicts(summ: pd.DataFrame) -> pd.DataFrame:
    """Per machine x variant (other than as is): its relative MAD and max/min (median over paths), the as-is
    ones, and ``collapses`` (True / False; None when it could not be judged, with ``why``)."""
    rows = []
    for machine, g in summ.groupby("machine", sort=False):
        base = g[(g["variant"] == BASELINE) & (g["processes"] >= MIN_SHOWN)].set_index("backend")
        for variant, v in g[g["variant"] != BASELINE].groupby("variant", sort=False):
            v = v[v["processes"] >= MIN_SHOWN].set_index("backend")
            both = base.index.intersection(v.index)
            enough = len(both) and min(base.loc[both, "processes"].min(), v.loc[both, "processes"].min()) >= MIN_PROCESSES
            row = {"machine": machine, "variant": variant, "paths": len(both),
                   "mad_rel": float(v.loc[both, "mad_rel"].median()) if len(both) else np.nan,
                   "spread_x": float(v.loc[both, "spread_x"].median()) if len(both) else np.nan,
                   "base_mad_rel": float(base.loc[both, "mad_rel"].median()) if len(both) else np.nan,
                   "base_spread_x": float(base.loc[both, "spread_x"].median()) if len(both) else np.nan,
                   "level": float((v.loc[both, "median_us"] / base.loc[both, "median_us"]).median())
                   if len(both) else np.nan}
            if not len(both):
                unavailable = [s for s in g.loc[g["variant"] == variant, "status"] if s != "measured"]
                row.update(collapses=None, why=str(unavailable[0]) if unavailable else
                           f"fewer than {MIN_SHOWN} processes per path")
            elif not enough:
                row.update(collapses=None, why=f"fewer than {MIN_PROCESSES} processes per path")
            elif _agree(base.loc[both]):
                row.update(collapses=None, why="as is, the processes already agree")
            else:
                narrower = ((v.loc[both, "mad_rel"] <= COLLAPSE * base.loc[both, "mad_rel"])
                            & (v.loc[both, "spread_x"] - 1 <= COLLAPSE * (base.loc[both, "spread_x"] - 1)))
                row.update(collapses=bool(narrower.all()), why="")
            rows.append(row)
    return pd.DataFrame(rows)


def facts(summ: pd.DataFrame) -> list[dict]:
    """Per machine, what the finding sentence needs."""
    out = []
    ver = verdicts(summ)
    for machine, g in summ.groupby("machine", sort=False):
        base = g[(g["variant"] == BASELINE) & (g["processes"] >= MIN_SHOWN)]
        v = ver[ver["machine"] == machine] if len(ver) else ver
        judged = v[v["collapses"].notna()] if len(v) else v
        out.append({"machine": machine, "measured": bool(len(base)),
                    "processes": int(base["processes"].min()) if len(base) else 0,
                    "paths": [str(b) for b in base["backend"]],
                    "base_spread_x": float(base["spread_x"].median()) if len(base) else np.nan,
                    "base_mad_rel": float(base["mad_rel"].median()) if len(base) else np.nan,
                    "base_warmup": float(base["warmup"].median()) if len(base) else np.nan,
                    "base_late_spread_x": float(base["late_spread_x"].median()) if len(base) else np.nan,
                    "load1": float(g["load1"].median()) if g["load1"].notna().any() else np.nan,
                    "judged": bool(len(base)) and int(base["processes"].min()) >= MIN_PROCESSES,
                    "min_processes": MIN_PROCESSES,
                    "agree": bool(len(base)) and _agree(base),
                    "noise": NOISE, "collapse": COLLAPSE,
                    "causes": judged[judged["collapses"] == True].to_dict("records") if len(judged) else [],  # noqa: E712
                    "ruled_out": judged[judged["collapses"] == False].to_dict("records") if len(judged) else [],  # noqa: E712
                    "unjudged": v[v["collapses"].isna()].to_dict("records") if len(v) else []})
    return out


def text(summ: pd.DataFrame) -> str:
    """The section's finding: one paragraph per machine (templates/spread.md.j2)."""
    got = facts(summ)
    if not got:
        return T.render("spread", machines=[])
    return T.render("spread", machines=got)


def section_text(R) -> str:
    """The registry's renderer (``overhead.base.tables``): :func:`text` over every machine's spread.csv in ``R``."""
    frame = R.raw.get("spread")
    return text(summary(frame)) if frame is not None and len(frame) else "*Not measured in this run:* no `spread.csv` in the results."


def table(summ: pd.DataFrame) -> pd.DataFrame:
    """The summary for a reader: units in the headers, three significant figures."""
    if not len(summ):
        return pd.DataFrame()
    t = pd.DataFrame({
        "machine": summ["machine"], "variant": summ["variant"], "path": summ["backend"].fillna("—"),
        "processes": summ["processes"].astype(int),
        "median of run medians": summ["median_us"].map(fmt_us),
        "max / min of run medians": summ["spread_x"].map(lambda x: f"{x:.3g}×" if np.isfinite(x) else "n/a"),
        "MAD of run medians": summ["mad_rel"].map(lambda x: f"{100 * x:.3g} %" if np.isfinite(x) else "n/a"),
        "first tenth over run": summ["warmup"].map(lambda x: f"{100 * x:+.3g} %" if np.isfinite(x) else "n/a"),
        "max / min of last tenths": summ["late_spread_x"].map(lambda x: f"{x:.3g}×" if np.isfinite(x) else "n/a"),
        "status": summ["status"]})
    return t


def figure(frame: pd.DataFrame):
    """Every process's run median per variant (x) and path (colour), one panel per machine; returns
    (Figure, alt text computed from the table)."""
    from matplotlib.ticker import FuncFormatter

    from overhead.report import plotkit  # lazy: matplotlib only when a figure is drawn

    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    if not len(ok):
        return plotkit._empty("no between-run spread measurements"), "No between-run spread measurements."
    machines = list(dict.fromkeys(ok["machine"]))
    backends = list(dict.fromkeys(ok["backend"]))
    fig = plotkit._fig(10, 3.6 * len(machines) + 0.6)
    axes = fig.subplots(len(machines), 1, squeeze=False)[:, 0]
    width = 0.8 / max(len(backends), 1)
    rng = np.random.default_rng(0)
    alts = []
    for ax, machine in zip(axes, machines):
        mine = ok[ok["machine"] == machine]
        variants = list(dict.fromkeys(mine["variant"]))
        for j, b in enumerate(backends):
            for i, v in enumerate(variants):
                m = mine[(mine["variant"] == v) & (mine["backend"] == b)]["median_us"].to_numpy(float)
                xs = i - 0.4 + width * (j + 0.5) + rng.uniform(-width / 4, width / 4, len(m))
                ax.scatter(xs, m, s=18, color=f"C{j}", label=b if i == 0 and ax is axes[0] else None, alpha=0.8)
                if len(m):
                    ax.hlines(np.median(m), i - 0.4 + width * j, i - 0.4 + width * (j + 1), color=f"C{j}", lw=2)
        ax.set_xticks(range(len(variants)), variants)
        ax.set_ylabel("run median per call (log)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(plotkit._us))
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda y, pos: plotkit._us(y) if f"{y:.0e}"[0] in "25" else ""))  # label 2 and 5 between decades
        ax.set_title(f"{machine}: one dot per fresh process, bar = median", fontsize="medium")
        summ = summary(mine)
        base = summ[summ["variant"] == BASELINE]
        by_variant = summ.groupby("variant")["mad_rel"].median().sort_values()
        alts.append(f"on {machine}, as is, the run medians spread "
                    f"{fmt_x(float(base['spread_x'].median())) if len(base) else 'n/a'} (max/min, median over paths) "
                    f"and the narrowest variant is {by_variant.index[0]} (MAD {fmt_pct(float(by_variant.iloc[0]))} "
                    "of the median)")
    plotkit._legend_right(axes[0], title="path")
    fig.suptitle("Fresh processes of the TF paths at batch 1 under each start-up variant")
    alt = (f"Dot plot of each fresh process's median call time in µs for {', '.join(backends)} under each "
           f"start-up variant; " + "; ".join(alts) + ".")
    return fig, alt
