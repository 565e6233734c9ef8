"""Readable tables of the detail sections (cold start, pipeline, distortion, machine agreement) and the appendix
of raw tables: labels with units, three significant figures, no index column, each with one computed finding;
long raw tables are linked as CSV files, never dumped into the page."""
from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from overhead.report.fmt import code, fmt_pct, fmt_us, fmt_x, not_measured, small_model
from overhead.report.style import order_backends

SUMMARY_ROWS = 12        # a table in the page shows at most this many rows; the rest is in its CSV


def g3(v) -> str:
    """A number with three significant figures ('' for missing)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _by_path(t: pd.DataFrame) -> pd.DataFrame:
    return t.set_index("backend").loc[order_backends(t["backend"])].reset_index()


def _model_in(t: pd.DataFrame, model, R) -> str:
    """``model`` when ``t`` has it, else the small model when it does, else ``t``'s first model."""
    have = set(t["model"])
    return model if model in have else (small_model(R) if small_model(R) in have else t["model"].iloc[0])


def startup_table(R, model: str | None = None) -> pd.DataFrame:
    """Cold start of every path on one model (default: the small model)."""
    s = R.mine("startup")
    if not len(s):
        return pd.DataFrame()
    model = _model_in(s, model, R)
    s = _by_path(s[s["model"] == model])
    out = pd.DataFrame({"path": s["backend"],
                        "to first prediction (s)": s["start_to_first_pred_s"].map(g3),
                        "import (s)": s["import_s"].map(g3),
                        "convert (s)": s["convert_s"].map(g3),
                        "load (s)": s["load_s"].map(g3),
                        "first call (ms)": (s["first_call_s"] * 1e3).map(g3),
                        "steady call": s["steady_median_us"].map(fmt_us),
                        "first prediction / steady call (×)": s["cold_over_steady"].map(g3)})
    if "rss_after_first_call_mb" in s:
        out["memory after first call (MB)"] = s["rss_after_first_call_mb"].map(g3)
    if "reps" in s:
        out["processes"] = s["reps"].astype(int)
    out.attrs["model"] = model
    return out


def startup_finding(R, t: pd.DataFrame) -> str:
    s = R.mine("startup")
    if not len(t):
        return not_measured("cold-start measurement (startup.csv)")
    s = s[s["model"] == t.attrs["model"]]
    phases = {"import": "import_s", "conversion": "convert_s", "loading": "load_s", "first call": "first_call_s"}
    share = {k: float((s[c] / s["start_to_first_pred_s"]).median()) for k, c in phases.items() if c in s}
    top = max(share, key=share.get)
    return (f"On {code(t.attrs['model'])} ({len(t)} paths, one row each; every model is in `startup.csv`): the "
            f"largest start-up phase is the {top}, a median {fmt_pct(share[top])} of a path's time to its first "
            f"prediction, and that first prediction costs {fmt_x(s['cold_over_steady'].min())} to "
            f"{fmt_x(s['cold_over_steady'].max())} a steady call.")


def pipeline_table(R, model: str | None = None) -> pd.DataFrame:
    p = R.mine("pipeline")
    if not len(p):
        return pd.DataFrame()
    model = _model_in(p, model, R)
    p = _by_path(p[p["model"] == model])
    out = pd.DataFrame({"path": p["backend"]})
    for st in ("decode", "preprocess", "inference", "postprocess"):
        if st in p:
            out[st] = p[st].map(fmt_us)
    out["total"] = p["total_us"].map(fmt_us)
    out["outside inference"] = p["non_inference_share"].map(fmt_pct)
    out.attrs["model"] = model
    return out


def pipeline_finding(R, t: pd.DataFrame) -> str:
    if not len(t):
        return not_measured("pipeline measurement (pipeline.csv)")
    p = R.mine("pipeline")
    p = p[p["model"] == t.attrs["model"]]
    lo, hi = p.loc[p["total_us"].idxmin()], p.loc[p["total_us"].idxmax()]
    return (f"Stage medians on {code(t.attrs['model'])} ({len(t)} paths; every model in `pipeline.csv`): a whole "
            f"PNG-to-label call takes {fmt_us(lo['total_us'])} ({code(lo['backend'])}) to {fmt_us(hi['total_us'])} "
            f"({code(hi['backend'])}).")


def distortion_table(R) -> pd.DataFrame:
    d = R.mine("distortion")
    if not len(d):
        return pd.DataFrame()
    return pd.DataFrame({"model": d["model"], "path": d["backend"], "threads": d["threads"].astype(int),
                         "alone": d["alone_us"].map(fmt_us), "interleaved with numpy": d["interleaved_us"].map(fmt_us),
                         "interleaved / alone (×)": d["ratio"].map(g3),
                         "calls (alone / interleaved)": [f"{int(a):,} / {int(b):,}"
                                                         for a, b in zip(d["alone_n"], d["interleaved_n"])]})


def distortion_finding(R) -> str:
    d = R.mine("distortion")
    if not len(d):
        return ""
    lo, hi = d.loc[d["ratio"].idxmin()], d.loc[d["ratio"].idxmax()]
    within = int(((d["ratio"] - 1).abs() <= 0.1).sum())
    return (f"Interleaving a path's calls with the NumPy engine's changes its median by a factor of "
            f"{fmt_x(lo['ratio'])} ({code(lo['backend'])} on {code(lo['model'])}) to {fmt_x(hi['ratio'])} "
            f"({code(hi['backend'])} on {code(hi['model'])}); {within} of {len(d)} measurements stay within 10 %.")


def agreement_table(R, other: str) -> pd.DataFrame:
    """The pairs that disagree with ``other``, worst first, at most ``SUMMARY_ROWS`` (the rest: see the CSV)."""
    a = (R.agreement or {}).get(other)
    if not a or not len(a["table"]):
        return pd.DataFrame()
    bad = a["table"][~a["table"]["agree"]].copy()
    bad = bad.assign(off=np.abs(np.log(bad["rel_ratio"]))).sort_values("off", ascending=False).head(SUMMARY_ROWS)
    return pd.DataFrame({"model": bad["model"], "path": bad["backend"],
                         f"{R.machine}": bad["median_us_a"].map(fmt_us), f"{other}": bad["median_us_b"].map(fmt_us),
                         "ratio after the overall speed factor (×)": bad["rel_ratio"].map(g3)})


def agreement_finding(R, other: str) -> str:
    a = (R.agreement or {}).get(other)
    if not a:
        return ""
    t, s = a["table"], a["summary"]
    bad = t[~t["agree"]]
    if not len(bad):
        return f"All {s['n']} pairs agree with {code(other)} after its overall speed factor."
    w = bad.loc[np.abs(np.log(bad["rel_ratio"])).idxmax()]
    return (f"{len(bad)} of {s['n']} pairs differ between {code(R.machine)} and {code(other)} by more than 10 % beyond "
            f"both intervals after the overall speed factor ({fmt_x(s['median_ratio'])}); the worst, "
            f"{code(w['backend'])} on {code(w['model'])}, by {fmt_x(max(w['rel_ratio'], 1 / w['rel_ratio']))}. The "
            f"{min(len(bad), SUMMARY_ROWS)} largest differences:")


def raw_links(results_root, report_dir, machines=None) -> str:
    """Markdown: per machine, a relative link from the report to each committed result CSV, with its rows."""
    root, rep = Path(results_root), Path(report_dir)
    lines = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if machines and folder.name not in machines:
            continue
        links = []
        for csv in sorted(folder.glob("*.csv")):
            try:
                n = sum(1 for _ in csv.open()) - 1
            except OSError:
                continue
            rel = os.path.relpath(csv.resolve(), rep.resolve()).replace(os.sep, "/")
            links.append(f"[{html.escape(csv.name)}]({rel}) ({n:,} rows)")
        if links:
            lines.append(f"- {code(folder.name)}: " + ", ".join(links))
    if not lines:
        return "*No result files found.*"
    return ("Every table above is computed from these files (their metadata sits beside each as `.meta.json`; "
            "model names are shown under their current names, see `overhead/base/modelnames.py`):\n\n"
            + "\n".join(lines))
