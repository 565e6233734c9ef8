"""One call, several sections: the same path on the same model is timed by several experiments, each in its own
fresh processes and setting, so their medians differ. This module gathers them side by side with the context of
each, so a reader can see why (the sweep's median is the one every comparison uses)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report.fmt import code, fmt_us, fmt_x, small_model

# section -> how that section times a call (the reason its number differs)
CONTEXTS = {
    "sweep": ("Timing sweep", "batch-1 median over ≥ 3 fresh processes, paths interleaved in rounds, warm-up "
                              "discarded; every comparison between paths uses it"),
    "idle_gap": ("Sparse traffic, no gap", "back-to-back calls in the idle-gap experiment's own processes "
                                           "(fewer calls: its interval is wide)"),
    "breakdown": ("Per-call decomposition", "plain calls in the decomposition's process, timed between the "
                                            "profiled ones"),
    "pipeline": ("Pipeline stage: inference", "the inference stage of PNG-to-label calls, after decode and "
                                              "preprocess in the same loop (caches warm with its own data)"),
    "startup": ("Cold start: steady state", "calls after the first one in each cold-start process (a few calls, "
                                            "median of 3+ fresh processes)"),
}


def contexts(R, backend: str = "keras.predict", model: str | None = None) -> pd.DataFrame:
    """``section, context, median_us, ratio`` (to the sweep's median) of ``backend`` on ``model`` (default: the
    small model) on the report's machine, from every table that timed it; empty when the sweep lacks it."""
    model = model or small_model(R)
    threads = (R.threads or {}).get(R.machine, 1)
    rows = []

    def add(key, value):
        if value is not None and np.isfinite(value):
            rows.append({"section": CONTEXTS[key][0], "context": CONTEXTS[key][1], "median_us": float(value)})

    def pick(t, col, **eq):
        if t is None or not len(t) or col not in t:
            return None
        m = pd.Series(True, index=t.index)
        for k, v in eq.items():
            if k in t:
                m &= t[k] == v
        return float(t.loc[m, col].median()) if m.any() else None

    add("sweep", pick(R.mine("sweep"), "median_us", model=model, backend=backend))
    ig = R.mine("idle_gap")
    add("idle_gap", pick(ig[ig["gap_ms"] == 0] if len(ig) else ig, "median_us", model=model, backend=backend,
                         threads=threads))
    add("breakdown", pick(R.mine("breakdown"), "measured_median_us", model=model, backend=backend))
    add("pipeline", pick(R.mine("pipeline"), "inference", model=model, backend=backend))
    add("startup", pick(R.mine("startup"), "steady_median_us", model=model, backend=backend))
    out = pd.DataFrame(rows, columns=["section", "context", "median_us"])
    if not len(out) or out["section"].iloc[0] != CONTEXTS["sweep"][0]:
        return pd.DataFrame(columns=["section", "context", "median_us", "ratio"])
    out["ratio"] = out["median_us"] / out["median_us"].iloc[0]
    out.attrs.update(model=model, backend=backend, machine=R.machine)
    return out


def text(t: pd.DataFrame) -> str:
    """One sentence: the range of the medians and the sections at its ends."""
    if len(t) < 2:
        return ""
    lo, hi = t.loc[t["median_us"].idxmin()], t.loc[t["median_us"].idxmax()]
    where = f" on {t.attrs['machine']}" if t.attrs.get("machine") else ""
    return (f"{code(t.attrs.get('backend'))} on {code(t.attrs.get('model'))}{where} is timed in {len(t)} sections: from "
            f"{fmt_us(lo['median_us'])} ({lo['section'].lower()}) to {fmt_us(hi['median_us'])} "
            f"({hi['section'].lower()}), a {fmt_x(hi['median_us'] / lo['median_us'])} spread that comes from how "
            f"each section times the call (each in its own processes and setting); comparisons between paths use "
            f"the timing sweep's {fmt_us(t['median_us'].iloc[0])}.")


def table(t: pd.DataFrame) -> pd.DataFrame:
    if not len(t):
        return pd.DataFrame()
    return pd.DataFrame({"section": t["section"], "how the call is timed there": t["context"],
                         "median per call": [fmt_us(v) for v in t["median_us"]],
                         "vs the sweep": [fmt_x(v) for v in t["ratio"]]})
