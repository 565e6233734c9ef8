"""Which fitted numbers mean something: a fit on fewer than ``MIN_MODELS`` models, or one whose 95 % interval
spans more than ``MAX_SPAN`` times (upper end / lower end) on any of its parameters, is *not identifiable from
these data*: it is shown as such and no sentence uses it."""
from __future__ import annotations

import numpy as np

MIN_MODELS = 5
MAX_SPAN = 10.0
NOT_IDENTIFIABLE = "not identifiable from these data"


def span(lo, hi) -> float:
    """hi / lo of an interval (inf when the lower end is ≤ 0 or either end is missing)."""
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0:
        return np.inf
    return hi / lo


def _params(fit) -> list:
    keys = ["overhead_us", "gflops"]
    if str(fit.get("model", "")) == "per-layer":
        keys.append("per_layer_us")
    return keys


def why_not(fit) -> str:
    """'' when the fit is identifiable, else the reason in words (fewer models, or the widest interval)."""
    if fit is None:
        return "no fit"
    n = fit.get("n_models", fit.get("n", 0))
    if not np.isfinite(float(n)) or int(n) < MIN_MODELS:
        return f"fitted on {int(n) if np.isfinite(float(n)) else 0} models (fewer than {MIN_MODELS})"
    if not np.isfinite(float(fit.get("overhead_us", np.nan))):
        return "the fit did not converge"
    for k in _params(fit):
        s = span(fit.get(f"{k}_lo", np.nan), fit.get(f"{k}_hi", np.nan))
        if s > MAX_SPAN:
            return f"the 95 % interval of {k.replace('_us', '').replace('_', ' ')} spans more than {MAX_SPAN:g}×"
    return ""


def identifiable(fit) -> bool:
    """True when the fit is on ≥ ``MIN_MODELS`` models and every parameter's interval spans ≤ ``MAX_SPAN``×."""
    return why_not(fit) == ""


def interval_text(value, lo, hi, fmt) -> str:
    """'v [lo, hi]' for an informative interval; the bare value marked when the interval spans > MAX_SPAN×."""
    if span(lo, hi) > MAX_SPAN:
        return f"{fmt(value)} (interval uninformative)"
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"
