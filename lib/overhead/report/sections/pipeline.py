"""Section "Pipeline: from PNG to label": the share of time outside inference (sentence) and the stage times of
every path on one model (table and finding). Its figure, shared with the pipeline stage notebook, is
``overhead.report.plots.fig_pipeline``."""
from __future__ import annotations

import pandas as pd

from overhead.report.fmt import (
    by_path,
    code,
    fmt_pct,
    fmt_us,
    model_in,
    not_measured,
)


def pipeline_text(R) -> str:
    """The range of the share outside inference on the report machine, then on each other machine (named)."""
    p = R.mine("pipeline")
    if not len(p):
        return not_measured("pipeline measurement (pipeline.csv)")
    lo, hi = p.loc[p["non_inference_share"].idxmin()], p.loc[p["non_inference_share"].idxmax()]
    text = ("From PNG bytes to a label, the share of time outside inference ranges from "
            f"{fmt_pct(lo['non_inference_share'])} ({code(lo.backend)}, {code(lo.model)}) to "
            f"{fmt_pct(hi['non_inference_share'])} ({code(hi.backend)}, {code(hi.model)}) on {R.machine}")
    for m in R.others("pipeline"):
        q = R.on(m).mine("pipeline")
        text += (f"; {fmt_pct(q['non_inference_share'].min())} to {fmt_pct(q['non_inference_share'].max())} "
                 f"on {m}")
    return text + "."


def pipeline_table(R, model: str | None = None) -> pd.DataFrame:
    p = R.mine("pipeline")
    if not len(p):
        return pd.DataFrame()
    model = model_in(p, model, R)
    p = by_path(p[p["model"] == model])
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
