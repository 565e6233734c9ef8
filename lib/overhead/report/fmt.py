"""Number formatting and look-ups shared by the report's sections (pure functions of ``R``,
an ``analysis.Results``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import analysis, identify
from overhead.report.style import order_backends

SMALL_MODEL = "cnn_seed"                # "the small CNN" of the seed article
SIGNIFICANT_X = 2.0                     # "markedly slower" = at least this many times the latency
FAST_REF = ("numpy", "litert")          # the references of the key-numbers table


# ---------------------------------------------------------------- formatting ---------------------------
def fmt_us(us) -> str:
    if us is None or not np.isfinite(us):
        return "n/a"
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def fmt_flops(f) -> str:
    if f is None or not np.isfinite(f):
        return "n/a"
    for s, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if f >= s:
            return f"{f / s:.3g} {p}FLOP"
    return f"{f:.3g} FLOP"


def fmt_x(r) -> str:
    if r is None or not np.isfinite(r):
        return "n/a"
    if r >= 1000:  # three significant figures, as everywhere on the page
        return f"{float(f'{r:.3g}'):,.0f}×"
    return f"{r:.0f}×" if r >= 100 else f"{r:.2g}×"


def fmt_pct(s) -> str:
    if s is None or not np.isfinite(s):
        return "n/a"
    return f"{100 * s:.1g} %" if abs(s) < 0.01 else f"{100 * s:.0f} %"


def code(name) -> str:
    return f"`{name}`"


def not_measured(what: str) -> str:
    return f"*Not measured:* no {what} in this run's results (the stage did not run or failed)."


# ---------------------------------------------------------------- lookups ------------------------------
def primary(R, key) -> pd.DataFrame:
    """Table ``key`` of ``R`` (an ``analysis.Results``) on the report's machine."""
    return R.mine(key)


def fit_of(R, backend):
    f = primary(R, "fits")
    f = f[f["backend"] == backend] if len(f) else f
    return f.iloc[0] if len(f) else None


def latency(R, model, backend):
    s = primary(R, "sweep")
    s = s[(s["model"] == model) & (s["backend"] == backend)] if len(s) else s
    return float(s["median_us"].iloc[0]) if len(s) else np.nan


def ratio(R, model, backend, ref):
    return latency(R, model, backend) / latency(R, model, ref)


def small_model(R) -> str | None:
    s = primary(R, "sweep")
    if not len(s):
        return None
    return SMALL_MODEL if SMALL_MODEL in set(s["model"]) else s.sort_values("flops")["model"].iloc[0]


def ladder(R) -> pd.DataFrame:
    s = primary(R, "sweep")
    return s.drop_duplicates("model").sort_values("flops")[["model", "flops"]] if len(s) else s


def where_in_ladder(R, flops) -> str:
    """Place a FLOP count among the measured models, in words."""
    lad = ladder(R)
    if not len(lad) or not np.isfinite(flops):
        return "n/a"
    below = lad[lad["flops"] <= flops]
    above = lad[lad["flops"] > flops]
    if not len(below):
        return f"below the smallest model ({code(above['model'].iloc[0])})"
    if not len(above):
        last = below.iloc[-1]
        return f"beyond the largest model measured ({code(last['model'])}, {fmt_flops(last['flops'])})"
    return f"between {code(below['model'].iloc[-1])} and {code(above['model'].iloc[0])}"


def largest_common(sweep, backends, n=1):
    """The largest model(s) on which every one of ``backends`` ran ok (None / [] if there is none)."""
    ok_all = sweep[sweep["backend"].isin(backends)].groupby("model")["backend"].nunique()
    models = ok_all[ok_all == len(set(backends))].index
    big = sweep[sweep["model"].isin(models)].drop_duplicates("model").nlargest(n, "flops")["model"].tolist()
    return (big[0] if big else None) if n == 1 else big


def tf_paths(R) -> list:
    f = primary(R, "fits")
    return [b for b in analysis.TF_PATHS if len(f) and b in set(f["backend"])]


def path_range(R, backend) -> pd.DataFrame:
    """The models ``backend`` ran on (batch 1, main threads), FLOPs order: the range its sentences may use."""
    s = primary(R, "sweep")
    s = s[s["backend"] == backend] if len(s) and backend is not None else s.iloc[0:0] if len(s) else s
    return s.drop_duplicates("model").sort_values("flops")[["model", "flops"]] if len(s) else s


def where_text(R, flops, where, lo=np.nan, hi=np.nan, backend=None) -> str:
    """A fitted crossover in words: the FLOPs with its interval when inside the models the path ran on, else
    where it lies — "beyond the largest model *this path* ran on", named (``backend``; the ladder without it)."""
    lad = path_range(R, backend) if backend is not None else ladder(R)
    if not len(lad):
        lad = ladder(R)
    if where == "beyond" and len(lad):
        last = lad.iloc[-1]
        who = "it ran on" if backend is not None else "measured"
        return f"beyond the largest model {who} ({code(last['model'])}, {fmt_flops(last['flops'])})"
    if where == "below" and len(lad):
        return f"below the smallest model measured ({code(lad['model'].iloc[0])})"
    if where != "inside":
        return "n/a"
    ci = ""
    if np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi / lo <= 10:
        ci = f", 95 % interval {fmt_flops(lo)}–{fmt_flops(hi)}"
    return f"{fmt_flops(flops)} ({where_in_ladder(R, flops)}{ci})"


def crossover_of(R, backend, share=10) -> str:
    """The *fitted* crossover of ``backend`` at ``share`` % overhead, in words (see ``where_text``); "not
    identifiable from these data" when its fit is not (``overhead.report.identify``)."""
    f = fit_of(R, backend)
    if f is None:
        return "n/a"
    if not identify.identifiable(f):
        return identify.NOT_IDENTIFIABLE
    k = f"cross{share}_flops"
    return where_text(R, f[k], f[f"cross{share}_where"], f.get(f"{k}_lo", np.nan), f.get(f"{k}_hi", np.nan),
                      backend=backend)


def g3(v) -> str:
    """A number with three significant figures ('' for missing)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def by_path(t: pd.DataFrame) -> pd.DataFrame:
    """``t``'s rows in the one backend order (``style.order_backends``)."""
    return t.set_index("backend").loc[order_backends(t["backend"])].reset_index()


def model_in(t: pd.DataFrame, model, R) -> str:
    """``model`` when ``t`` has it, else the small model when it does, else ``t``'s first model."""
    present = set(t["model"])
    return model if model in present else (small_model(R) if small_model(R) in present else t["model"].iloc[0])


NOT_MEASURED = "*Not measured in this run:* no `{}` in the results."   # .format(the missing file)


def have(R, name) -> pd.DataFrame | None:
    """The report machine's rows of an optional result table, or None when the run has none."""
    t = R.mine(name)
    return t if len(t) else None
