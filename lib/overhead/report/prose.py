"""Generated prose of the report's main sections: every number in it is computed from ``R``
(an ``analysis.Results``). Measured numbers are called "measured", fitted ones "fitted"."""
from __future__ import annotations

import html

import numpy as np

from overhead.report import answer, identify, latency, text
from overhead.report.fmt import (  # noqa: F401
    SIGNIFICANT_X,
    SMALL_MODEL,
    code,
    fmt_flops,
    fmt_pct,
    fmt_us,
    fmt_x,
    not_measured,
    primary,
    ratio,
    small_model,
    tf_paths,
)
from overhead.report.fmt import latency as lat

# fmt_pct and small_model are re-exported for the report notebook (prose.fmt_pct, prose.small_model)

SAME_X = 1.5     # two paths see "the same overhead" when their latencies are within this factor


def small_model_phrase(m) -> str:
    """"the seed's small CNN" only when it is the seed's model; otherwise say which model stands in."""
    return "the seed's small CNN" if m == SMALL_MODEL else "the smallest model measured (the seed's CNN is absent)"


def _verdict(R, m) -> str:
    slow = {b: ratio(R, m, b, "numpy") for b in tf_paths(R)}
    kp = slow.get("keras.predict", np.nan)
    sig = primary(R, "vs_numpy")
    sig = sig[(sig["model"] == m) & (sig["backend"] == "keras.predict")]["significant"] if len(sig) else sig
    if np.isfinite(kp) and kp >= SIGNIFICANT_X and len(sig) and sig.any():
        return "**Yes — for small models Keras/TensorFlow's per-call overhead makes it many times slower than NumPy.**"
    if any(v >= SIGNIFICANT_X for v in slow.values()):
        return "**Partly — some TensorFlow paths are markedly slower than NumPy on small models, others not.**"
    if not slow:
        return "**Not answered — no TensorFlow path ran ok in this run.**"
    return "**No — on this machine TensorFlow is not markedly slower than NumPy, even on small models.**"


def numpy_split(R, m) -> str:
    """How much of NumPy's advantage over ``keras.predict`` is NumPy itself (``numpy.plain``) and how much the
    engine's engineering (``numpy`` over ``numpy.plain``), as shares of the log ratio."""
    kp, eng, plain = (lat(R, m, b) for b in ("keras.predict", "numpy", "numpy.plain"))
    if not all(np.isfinite([kp, eng, plain])) or kp <= eng:
        return ""
    total = np.log(kp / eng)
    itself = float(np.clip(np.log(kp / plain) / total, 0, 1))
    return (f"Plain NumPy (`numpy.plain`, a page of NumPy with no engine) measured {fmt_us(plain)}: of NumPy's "
            f"{fmt_x(kp / eng)} advantage over `keras.predict`, {fmt_pct(itself)} (on a log scale, "
            f"{fmt_x(kp / plain)}) is NumPy itself and {fmt_pct(1 - itself)} ({fmt_x(plain / eng)}) the engine's "
            "engineering.")


def tldr(R) -> str:
    """The short answer (``overhead.report.answer.tldr``: at most 120 words, measured points only)."""
    return answer.tldr(R)


# ---------------------------------------------------------------- the latency model ----------------------
def fits_lead(R) -> str:
    """The latency-model section's finding in one sentence: how many fits are identifiable and, among them,
    the range of fitted fixed costs (non-identifiable fits are never used in a sentence)."""
    f = primary(R, "fits")
    if not len(f):
        return not_measured("benchmark (bench.csv)")
    good = f[[identify.identifiable(r) for _, r in f.iterrows()]]
    lo = good.loc[good["overhead_us"].idxmin()] if len(good) else None
    hi = good.loc[good["overhead_us"].idxmax()] if len(good) else None
    return text.render("fits_lead", n=len(f), n_ok=len(good), min_models=identify.MIN_MODELS,
                       max_span=identify.MAX_SPAN, lo=lo, hi=hi)


def overhead_text(R) -> str:
    """How each backend's latency model was chosen (for the collapsed details of the section)."""
    f = primary(R, "fits")
    if not len(f):
        return not_measured("benchmark (bench.csv)")
    rich = f[f["model"] == "per-layer"]
    return (f"Each backend's latency model was chosen by its leave-one-model-out error (a model is fitted "
            f"without one ladder model, then predicts it): the two-term model (overhead + FLOPs / throughput) "
            f"unless its error exceeds {fmt_pct(latency.MATERIAL)} and adding a per-layer cost cuts it by at least "
            f"{fmt_pct(latency.RICHER_GAIN)}. {len(f) - len(rich)} of {len(f)} backends keep the two-term model, "
            f"{len(rich)} take the per-layer model.")


def misses_table(R):
    """Every measured point the chosen model misses by more than ``latency.MISS``, worst first."""
    import pandas as pd
    res = primary(R, "resid")
    bad = latency.misses(res) if len(res) else pd.DataFrame()
    if not len(bad):
        return pd.DataFrame()
    return pd.DataFrame({"backend": bad["backend"], "model": bad["model"],
                         "fitted": [fmt_us(x) for x in bad["fitted_us"]],
                         "measured": [fmt_us(x) for x in bad["measured_us"]],
                         "error": [f"{100 * x:+.0f} %" for x in bad["rel_err"]]})


def misses_text(R) -> str:
    """One sentence: how many measured points the chosen models miss by more than ``latency.MISS``."""
    res = primary(R, "resid")
    if not len(res):
        return ""
    bad = latency.misses(res)
    lim = fmt_pct(latency.MISS)
    if not len(bad):
        return f"No fitted latency misses a measured one by more than {lim}."
    worst = bad.iloc[0]
    return (f"The chosen models miss {len(bad)} of {len(res)} measured points by more than {lim} (worst: "
            f"{code(worst['backend'])} on {code(worst['model'])}, fitted {fmt_us(worst['fitted_us'])}, measured "
            f"{fmt_us(worst['measured_us'])}); the table lists them all.")


# ---------------------------------------------------------------- parity -------------------------------
def parity_text(R) -> str:
    st = primary(R, "status")
    if not len(st):
        return not_measured("benchmark (bench.csv)")
    n_ok, n_all = int(st["ok"].sum()), int(st[["ok", "failed", "skipped"]].sum().sum())
    b = R.bench[R.bench["machine"] == R.machine] if R.bench is not None else None
    rows_ok = int((b["status"].astype(str) == "ok").sum()) if b is not None else 0
    quant = st["backend"].str.contains("int8|fp16", regex=True)
    fl = st[~quant]
    out = (f"{n_ok} of {n_all} model × backend combinations ran and matched the Keras reference (every one of their "
           f"{rows_ok} ok rows of {len(b) if b is not None else 0} checked before timing); failed: "
           f"{int(st['failed'].sum())}, never run (skipped at every batch size): {int(st['skipped'].sum())}. "
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


# ---------------------------------------------------------------- your models --------------------------
def extra_models_text(R, names) -> str:
    s = primary(R, "sweep")
    out = []
    for n in names:
        if not len(s) or n not in set(s["model"]):
            out.append(f"- Your model {code(n)}: no ok result at batch 1 in this run.")
            continue
        row = s[s["model"] == n]
        best = row.loc[row["median_us"].idxmin()]
        out.append(f"- Your model {code(n)} ({fmt_flops(best['flops'])}): fastest path {code(best['backend'])} at "
                   f"{fmt_us(best['median_us'])} (measured); `keras.predict` takes "
                   f"{fmt_x(ratio(R, n, 'keras.predict', 'numpy'))} the NumPy engine's time.")
    return "\n".join(out)

