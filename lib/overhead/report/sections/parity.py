"""Appendix "Parity: does every path compute the same answer?": the parity sentence, the failed paths and the
per-path status table."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from overhead.base import paths
from overhead.report.fmt import (
    code,
    fmt_pct,
    not_measured,
    primary,
)
from overhead.report.style import order_backends


def parity_text(R) -> str:
    st = primary(R, "status")
    if not len(st):
        return not_measured("benchmark (bench.csv)")
    n_ok, n_all = int(st["ok"].sum()), int(st[["ok", "failed", "skipped"]].sum().sum())
    b = R.bench[R.bench["machine"] == R.machine] if R.bench is not None else None
    rows_ok = int((b["status"].astype(str) == "ok").sum()) if b is not None else 0
    quant = st["backend"].map(paths.reduced_precision).astype(bool)
    fl = st[~quant]
    others = ""
    for m in R.others():
        o = primary(R.on(m), "status")
        if len(o):
            others += (f"; on {m} {int(o['ok'].sum())} of {int(o[['ok', 'failed', 'skipped']].sum().sum())}, "
                       f"failed {int(o['failed'].sum())}")
    out = (f"On {R.machine}, {n_ok} of {n_all} model × backend combinations ran and matched the Keras reference "
           f"(every one of their {rows_ok} ok rows of {len(b) if b is not None else 0} checked before timing); failed: "
           f"{int(st['failed'].sum())}, never run (skipped at every batch size): {int(st['skipped'].sum())}{others}. "
           f"Float32 paths: largest max abs error {fl['max_abs_err'].max():.2g}, lowest top-1 agreement "
           f"{fmt_pct(fl['min_top1_agree'].min())}.")
    if "max_logit_rel_err" in st and st["max_logit_rel_err"].notna().any():
        out += f" Largest relative logit error of an ok row: {st['max_logit_rel_err'].max():.2g}."
    if quant.any():
        q = st[quant]
        drop = q["max_acc_drop"].max()
        out += (f" Reduced-precision paths: largest max abs error {q['max_abs_err'].max():.2g}"
                + (f", largest accuracy drop on trained models {100 * drop:.2g} percentage points." if np.isfinite(drop)
                   else "; no trained model to measure an accuracy drop on."))
    return out


def failed_paths_text(R) -> str:
    p = primary(R, "problems")
    if not len(p) or "failed" not in set(p["status"]):
        return "No path failed its parity check or crashed."
    f = p[p["status"] == "failed"].drop_duplicates(["backend", "model"])
    return ("Failed (excluded from fits and ratios): " + "; ".join(
        f"{code(r.backend)} on {code(r.model)} ({html.escape(str(r.reason))})" for r in f.itertuples()) + ".")


def status_view(R) -> pd.DataFrame:
    st = primary(R, "status")
    if not len(st):
        return st
    st = st.set_index("backend").loc[order_backends(st["backend"])].drop(columns="machine")
    return st.rename(columns={"max_acc_drop": "max accuracy drop (trained models)",
                              "min_top1_agree": "min top-1 agreement", "max_abs_err": "max abs error",
                              "max_logit_rel_err": "max logit rel. error"})
