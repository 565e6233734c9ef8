"""Appendix "Distortion check": how much interleaving a path's calls with the NumPy engine's changes its timing
(sentence, finding and table, from ``distortion.csv``)."""
from __future__ import annotations

import pandas as pd

from overhead.report.fmt import (
    NOT_MEASURED,
    code,
    fmt_us,
    fmt_x,
    g3,
    have,
)


def distortion_text(R) -> str:
    d = have(R, "distortion")
    if d is None:
        return NOT_MEASURED.format("distortion.csv")
    text = f"{len(d)} measurements on {R.machine} of how one path's timing is disturbed by another (table below)"
    for m in R.others("distortion"):
        o = R.on(m).mine("distortion")
        text += (f"; on {m} interleaving changes a median by {fmt_x(o['ratio'].min())} to {fmt_x(o['ratio'].max())}, "
                 f"{int(((o['ratio'] - 1).abs() <= 0.1).sum())} of {len(o)} within 10 %")
    return text + "."


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
