"""Section "Where the time goes: the per-call decomposition": the largest bucket of each decomposition (sentence
and table). Its figure, shared with the pipeline stage notebook, is ``overhead.report.plots.fig_breakdown``."""
from __future__ import annotations

import html

import pandas as pd

from overhead.report.fmt import (
    code,
    fmt_pct,
    fmt_us,
    not_measured,
    primary,
    small_model,
)


def _breakdown_rows(R):
    b = primary(R, "breakdown")
    if not len(b):
        return None
    buckets = [c for c in b.columns if c not in ("machine", "model", "backend", "measured_median_us")]
    b = b.drop_duplicates(["model", "backend"]).reset_index(drop=True)
    tot = b[buckets].sum(axis=1)
    top = b[buckets].idxmax(axis=1)
    return pd.DataFrame({"model": b["model"], "backend": b["backend"], "bucket": top,
                         "share": [b.loc[i, top[i]] / tot[i] for i in b.index], "total_us": tot,
                         "measured_us": b["measured_median_us"]})


def breakdown_text(R) -> str:
    """One sentence: the largest bucket of ``keras.predict`` on the small model (or the first decomposed row),
    and how many decompositions there are (all in ``breakdown_table``)."""
    t = _breakdown_rows(R)
    if t is None:
        return not_measured("per-call decomposition (breakdown.csv)")
    m = small_model(R)
    pick = t[(t["backend"] == "keras.predict") & (t["model"] == m)]
    r = (pick if len(pick) else t).iloc[0]
    others = ""
    for other in R.others():  # the same call decomposed on each other machine
        o = _breakdown_rows(R.on(other))
        o = o[(o["backend"] == r["backend"]) & (o["model"] == r["model"])] if o is not None else ()
        if len(o):
            o = o.iloc[0]
            same = "also " if o["bucket"] == r["bucket"] else ""
            others += f"; on {other} {same}{html.escape(str(o['bucket']))} ({fmt_pct(o['share'])})"
    return (f"Of a `{html.escape(str(r['backend']))}` call on {code(r['model'])} on {R.machine} "
            f"({fmt_us(r['total_us'])} decomposed; measured median {fmt_us(r['measured_us'])}), the largest bucket is "
            f"{html.escape(str(r['bucket']))} ({fmt_pct(r['share'])}){others}; the table gives the largest bucket of "
            f"each of the report machine's {len(t)} decompositions.")


def breakdown_table(R) -> pd.DataFrame:
    t = _breakdown_rows(R)
    if t is None:
        return pd.DataFrame()
    return pd.DataFrame({"model": t["model"], "backend": t["backend"], "largest bucket": t["bucket"],
                         "its share": [fmt_pct(x) for x in t["share"]], "decomposed": [fmt_us(x) for x in t["total_us"]],
                         "measured median": [fmt_us(x) for x in t["measured_us"]]})
