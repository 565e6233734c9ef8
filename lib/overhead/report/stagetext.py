"""The measured sentences the stage notebooks print under their tables (markdown strings).

Every number comes from the frame passed in; nothing here measures. The sentences live in Jinja2 templates
(``report/templates/stage_*.md.j2``); the functions below only gather the facts, one finding per bullet. No
``overhead.report`` module is imported, so editing the report never re-runs the start-up and pipeline stages.
"""
from functools import lru_cache
from pathlib import Path

import pandas as pd

STARTUP_CONTRAST = ("keras.predict", "tf.function", "litert", "onnxruntime")
PIPELINE_SHOWN = ("numpy", "keras.predict", "tf.function", "litert")
TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _env():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(s2=lambda v: f"{v:.2f}", s3=lambda v: f"{v:.3f}", x1=lambda v: f"{v:.1f}x",
                       mb=lambda v: f"{v:.0f}", us=lambda v: f"{v:,.0f}", us1=lambda v: f"{v:,.1f}",
                       pct=lambda v: f"{v:.0%}", n=lambda v: f"{v:,.0f}", pm=lambda v: f"{v:+.1f}")
    return env


def _render(name: str, **facts) -> str:
    return _env().get_template(f"{name}.md.j2").render(**facts).strip()


def startup(summary: pd.DataFrame, contrast=STARTUP_CONTRAST) -> str:
    """Per model: the quickest first prediction, and each contrast backend against the NumPy engine."""
    models = []
    for model, g in summary.groupby("model"):
        s = g.set_index("backend")
        fastest = s["start_to_first_pred_s"].idxmin()
        rows = [{"backend": b, "row": s.loc[b], "ratio": s.loc[b, "start_to_first_pred_s"]
                 / s.loc["numpy", "start_to_first_pred_s"]}
                for b in contrast if b in s.index and "numpy" in s.index and b != fastest]
        models.append({"model": model, "fastest": fastest, "best": s.loc[fastest],
                       "numpy": s.loc["numpy"] if "numpy" in s.index else None, "rows": rows})
    return _render("stage_startup", models=models)


def pipeline(us: pd.DataFrame, share: pd.DataFrame, shown=PIPELINE_SHOWN) -> str:
    """Per model: the share outside inference, and each shown backend's stages (from stages.pipeline_pivots)."""
    models = []
    for model in us.index.get_level_values(0).unique():
        u, s = us.loc[model], share.loc[model]
        outside = 1 - s["inference"]
        models.append({"model": model, "lo": outside.min(), "hi": outside.max(),
                       "rows": [{"backend": b, "total": u.loc[b].sum(), "inference": s.loc[b, "inference"],
                                 "stage": u.loc[b]} for b in shown if b in u.index]})
    return _render("stage_pipeline", models=models)


NOISE_NOTE = ("Where the sum is close to the *mean* of the plain calls, the gap is this machine's noise "
              "(preemptions make the mean exceed the median, and a sample weighs the time of the call it lands "
              "in, so the buckets estimate a mean); elsewhere it is what the method did not account for. Read "
              "these rows for their shares rather than their absolute values.")


def breakdown(summary: pd.DataFrame, pivot: pd.DataFrame) -> str:
    """One bullet per decomposed (model, backend): the three largest buckets and the check against the median."""
    ok = summary[summary.status == "ok"] if len(summary) else summary
    rows = []
    for r in ok.itertuples():
        p = pivot.loc[(r.model, r.backend)].drop(["sum", "measured median"]).dropna().sort_values(ascending=False)
        rows.append({"r": r, "top": [(b, v, v / r.sum_us) for b, v in p.head(3).items()]})
    bad = ok[~ok.within_10pct.astype(bool)] if len(ok) else ok
    return _render("stage_breakdown", rows=rows, n_bad=len(bad), note=NOISE_NOTE)
