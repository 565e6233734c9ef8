"""Appendix "Key numbers per path": measured latency and ratios on the small model, the fitted overhead and the
measured 10 % crossover per path, with one finding sentence."""
from __future__ import annotations

import pandas as pd

from overhead.report import analysis, crossing, identify
from overhead.report.fmt import (
    FAST_REF,
    fmt_us,
    fmt_x,
    latency,
    primary,
    ratio,
    small_model,
)
from overhead.report.sections import tldr
from overhead.report.style import order_backends


def key_numbers(R) -> pd.DataFrame:
    """Per backend on the small model: measured latency, ratios to NumPy / LiteRT, fitted overhead, crossover."""
    f = primary(R, "fits")
    m = small_model(R)
    rows = []
    for b in order_backends(f["backend"]) if len(f) else []:
        r = f[f["backend"] == b].iloc[0]
        row = {"backend": b, f"measured latency, {m}": fmt_us(latency(R, m, b))}
        for ref in FAST_REF:
            row[f"× {ref} (measured)"] = fmt_x(ratio(R, m, b, ref))
        row["fitted overhead per call [95 % CI]"] = (
            identify.interval_text(r["overhead_us"], r["overhead_us_lo"], r["overhead_us_hi"], fmt_us)
            if identify.identifiable(r) else identify.NOT_IDENTIFIABLE)
        c = crossing.crossover(primary(R, "sweep"), b, 0.1,
                               compute_ref=tldr.COMPUTE_REF if b in analysis.TF_PATHS else None)
        row["overhead < 10 % of a call (measured)"] = tldr.cell(c)
        rows.append(row)
    return pd.DataFrame(rows).set_index("backend") if rows else pd.DataFrame()


def key_numbers_finding(R) -> str:
    """One sentence over the key-numbers table: the measured range on the small model and how many paths' overhead
    falls below 10 % of a call inside the ladder."""
    f, s, m = primary(R, "fits"), primary(R, "sweep"), small_model(R)
    if not len(f) or not len(s):
        return ""
    g = s[s["model"] == m]
    if not len(g):
        return ""
    lo, hi = g.loc[g["median_us"].idxmin()], g.loc[g["median_us"].idxmax()]
    inside = sum(crossing.crossover(s, b, 0.1, compute_ref=tldr.COMPUTE_REF if b in analysis.TF_PATHS else None)
                 ["where"] == "inside" for b in f["backend"].unique())
    return (f"On `{m}` on {R.machine} the {len(g)} paths measure from {fmt_us(lo['median_us'])} (`{lo['backend']}`) to "
            f"{fmt_us(hi['median_us'])} (`{hi['backend']}`); for {inside} of {f['backend'].nunique()} paths the "
            f"overhead falls below 10 % of a call inside the ladder; for the other {f['backend'].nunique() - inside} "
            f"it is still 10 % or more at the largest model they ran.")
