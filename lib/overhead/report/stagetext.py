"""The measured sentences the stage notebooks print under their tables (markdown strings).

Every number comes from the frame passed in; nothing here measures.
"""
import pandas as pd

STARTUP_CONTRAST = ("keras.predict", "tf.function", "litert", "onnxruntime")
PIPELINE_SHOWN = ("numpy", "keras.predict", "tf.function", "litert")


def startup(summary: pd.DataFrame, contrast=STARTUP_CONTRAST) -> str:
    """Per model: the quickest first prediction, and each contrast backend against the NumPy engine."""
    lines = []
    for model, g in summary.groupby("model"):
        s = g.set_index("backend")
        fastest = s["start_to_first_pred_s"].idxmin()
        lines.append(f"**{model}**: the quickest first prediction is {fastest} "
                     f"({s.loc[fastest, 'start_to_first_pred_s']:.2f} s after process start, "
                     f"{s.loc[fastest, 'rss_after_first_call_mb']:.0f} MB).")
        for b in contrast:
            if b in s.index and "numpy" in s.index and b != fastest:
                n = s.loc["numpy"]
                r = s.loc[b, "start_to_first_pred_s"] / n["start_to_first_pred_s"]
                lines.append(f"- {b}: {s.loc[b, 'start_to_first_pred_s']:.2f} s ({r:.1f}x numpy's "
                             f"{n['start_to_first_pred_s']:.2f} s), of which import "
                             f"{s.loc[b, 'import_s']:.2f} s, load {s.loc[b, 'load_s']:.2f} s, first call "
                             f"{s.loc[b, 'first_call_s']:.3f} s; {s.loc[b, 'rss_after_first_call_mb']:.0f} MB "
                             f"vs {n['rss_after_first_call_mb']:.0f} MB; the first prediction "
                             f"costs {s.loc[b, 'cold_over_steady']:,.0f} steady calls.")
    return "\n".join(lines)


def pipeline(us: pd.DataFrame, share: pd.DataFrame, shown=PIPELINE_SHOWN) -> str:
    """Per model: the share outside inference, and each shown backend's stages (from stages.pipeline_pivots)."""
    lines = []
    for model in us.index.get_level_values(0).unique():
        u, s = us.loc[model], share.loc[model]
        outside = 1 - s["inference"]
        lines.append(f"**{model}**: decode + preprocess + postprocess take {outside.min():.0%}–{outside.max():.0%} "
                     f"of the whole call depending on the backend.")
        for b in [b for b in shown if b in u.index]:
            lines.append(f"- {b}: {u.loc[b].sum():,.0f} µs in total, inference {s.loc[b, 'inference']:.0%}, "
                         f"decode {u.loc[b, 'decode']:,.0f} µs, preprocess {u.loc[b, 'preprocess']:,.0f} µs, "
                         f"postprocess {u.loc[b, 'postprocess']:,.1f} µs")
    return "\n".join(lines)


NOISE_NOTE = ("Where the sum is close to the *mean* of the plain calls, the gap is this machine's noise "
              "(preemptions make the mean exceed the median, and a sample weighs the time of the call it lands "
              "in, so the buckets estimate a mean); elsewhere it is what the method did not account for. Read "
              "these rows for their shares rather than their absolute values.")


def breakdown(summary: pd.DataFrame, pivot: pd.DataFrame) -> str:
    """One bullet per decomposed (model, backend): the three largest buckets and the check against the median."""
    ok = summary[summary.status == "ok"] if len(summary) else summary
    lines = []
    for r in ok.itertuples():
        p = pivot.loc[(r.model, r.backend)].drop(["sum", "measured median"]).dropna().sort_values(ascending=False)
        top = ", ".join(f"{b} {v:,.0f} µs ({v / r.sum_us:.0%})" for b, v in p.head(3).items())
        verdict = "within" if r.within_10pct else "**outside**"
        lines.append(f"- **{r.backend}** on {r.model}: median {r.measured_median_us:,.0f} µs per call; the buckets "
                     f"sum to {r.sum_us:,.0f} µs ({r.discrepancy_pct:+.1f} %, {verdict} the 10 % target; "
                     f"{r.discrepancy_vs_mean_pct:+.1f} % against the mean of the plain calls). Largest: {top}. "
                     f"One call runs {r.python_calls:,.0f} Python functions and {r.builtin_calls:,.0f} builtins; "
                     f"under cProfile it takes {r.cprofile_us / r.measured_median_us:.1f}x as long.")
    bad = ok[~ok.within_10pct.astype(bool)] if len(ok) else ok
    if len(bad):
        lines.append(f"\n{len(bad)} decomposition(s) miss the 10 % target against the median. {NOISE_NOTE}")
    return "\n".join(lines)
