"""The first screen: the answer in at most ``MAX_WORDS`` words, every number from ``R`` (an ``analysis.Results``).

Yes or no; the seed CNN's ``predict`` against the NumPy engine and the fastest path; the measured model size at
which the overhead of ``predict``, ``model(x)`` and a ``tf.function`` falls below 50 % and 10 % of a call,
bracketed by the ladder models either side (``overhead.report.crossing``); and the one-line advice.
Also the hero figure under it and, for ``make report MODEL=...``, what ran on the user's own models.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from overhead.report import captions, crossing, sentences, wins
from overhead.report.fmt import (
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
)
from overhead.report.plotkit import _empty, _fig, _us, describe, flops_axis, save
from overhead.report.style import TF_KERAS, color_for, marker_for, order_backends

MAX_WORDS = 120
CALLS = (("`predict`", "keras.predict"), ("`model(x)`", "keras.call"), ("`tf.function`", "tf.function"))
COMPUTE_REF = "tf.function"    # the same TF kernels with the least around them: its time beyond its fixed cost
                               # on a model is that model's compute (``crossing.share_curve``)


def verdict(R, m) -> str:
    """'Yes, for small models.' when `keras.predict` is ≥ SIGNIFICANT_X × the NumPy engine with separated
    intervals on the small model; 'Partly.' when only some TF path is; 'No.' otherwise."""
    vs = primary(R, "vs_numpy")
    vs = vs[vs["model"] == m] if len(vs) else vs
    if not len(vs):
        return "Not answered: no TensorFlow path and the NumPy engine ran ok on the same model."
    kp = vs[vs["backend"] == "keras.predict"]
    if len(kp) and kp["slowdown"].iloc[0] >= SIGNIFICANT_X and bool(kp["significant"].iloc[0]):
        return "Yes, for small models."
    tf = vs[vs["backend"].isin(TF_KERAS)]
    if len(tf) and (tf["slowdown"] >= SIGNIFICANT_X).any():
        return "Partly: some TensorFlow paths are markedly slower than NumPy on small models."
    return "No: on this machine TensorFlow is not markedly slower than NumPy."


def cell(c: dict) -> str:
    """One crossover in words: measured FLOPs bracketed by the two ladder models, or where it lies beyond."""
    if c.get("basis") == "not identifiable":
        return "not identifiable"
    mark = "†" if c.get("basis") == "fitted" else ""
    if c["where"] == "inside":
        return f"{fmt_flops(c['flops'])}{mark} ({c['below_model']}–{c['above_model']})"
    if c["where"] == "beyond":
        return f"beyond {c['largest_model']} ({fmt_flops(c['largest_flops'])}, its largest){mark}"
    return "not measured"


def fastest(R, model, among=None):
    sw = primary(R, "sweep")
    g = sw[sw["model"] == model] if len(sw) else sw
    if among is not None and len(g):
        g = g[g["backend"].isin(among)]
    if not len(g):
        return None, np.nan
    r = g.loc[g["median_us"].idxmin()]
    return r["backend"], float(r["median_us"])


def machines(R) -> list:
    """The machines with batch-1 results, the report's machine first."""
    sw = R.sweep
    have = list(dict.fromkeys(sw["machine"].astype(str))) if len(sw) else []
    return sorted(have, key=lambda m: (m != R.machine, m))


def _lat(sw, model, backend) -> float:
    g = sw[(sw["model"] == model) & (sw["backend"] == backend)]
    return float(g["median_us"].iloc[0]) if len(g) else np.nan


def crossing_cell(c: dict) -> str:
    """A measured crossover for the side-by-side table: FLOPs between two ladder models, or "not reached:
    still N % at <largest model>" — never a "beyond" that reads as the opposite."""
    if c["where"] == "inside":
        return f"{fmt_flops(c['flops'])} (between {c['below_model']} and {c['above_model']})"
    if c["where"] == "beyond":
        return f"not reached: still {fmt_pct(c['share_at_largest'])} at {c['largest_model']}"
    return "not measured"


def side_by_side(R) -> tuple[list, list]:
    """``(machines, rows)``: the TL;DR table, one column per machine (each at its own main thread count)."""
    ms = machines(R)
    m = small_model(R)
    rows = [{"row": f"`predict` on {code(m)}", "cells": []}, {"row": f"bare `tf.function` on {code(m)}", "cells": []},
            {"row": f"NumPy engine on {code(m)}", "cells": []}]
    for call, b in CALLS:
        for share in crossing.SHARES:
            rows.append({"row": f"{call}: overhead below {fmt_pct(share)} of a call at", "cells": [], "b": b,
                         "share": share})
    for mach in ms:
        sw = R.sweep[R.sweep["machine"].astype(str) == mach]
        kp, tf, npy = (_lat(sw, m, b) for b in ("keras.predict", "tf.function", "numpy"))
        rows[0]["cells"].append(fmt_us(kp) + (f" ({fmt_x(kp / npy)} NumPy)" if np.isfinite(kp / npy) else ""))
        rows[1]["cells"].append(fmt_us(tf) + (f" ({fmt_x(tf / npy)} NumPy)" if np.isfinite(tf / npy) else ""))
        rows[2]["cells"].append(fmt_us(npy))
        for r in rows[3:]:
            r["cells"].append(crossing_cell(crossing.crossover(sw, r["b"], r["share"], compute_ref=COMPUTE_REF)))
    return ms, rows


def _span(xs) -> str:
    xs = [x for x in xs if np.isfinite(x)]
    if not xs:
        return "n/a"
    lo, hi = min(xs), max(xs)
    return fmt_x(lo) if fmt_x(lo) == fmt_x(hi) else f"{fmt_x(lo)[:-1]}–{fmt_x(hi)}"


def lead(R, m, ms) -> str:
    """The first sentence: the verdict, then ``predict``'s cost on ``m`` against the NumPy engine over the
    machines (their range; each machine's numbers are in the table, so the sentence does not grow with them)."""
    ratios = []
    for mach in ms:
        sw = R.sweep[R.sweep["machine"].astype(str) == mach]
        ratios.append(_lat(sw, m, "keras.predict") / _lat(sw, m, "numpy"))
    out = f"**{verdict_all(R, m)}.**"
    if any(np.isfinite(ratios)):
        where = "every machine" if len(ms) > 1 else code(ms[0])
        out += (f" On {where}, a `predict` call on the seed's small CNN ({code(m)}, batch 1) takes "
                f"{_span(ratios)} the NumPy engine's time (table).")
    return out


def machine_verdicts(R, m) -> dict:
    """{machine: (slowdown of predict vs the NumPy engine on ``m``, separated intervals)}."""
    vs = R.vs_numpy
    out = {}
    for mach in machines(R):
        g = vs[(vs["machine"].astype(str) == mach) & (vs["model"] == m) & (vs["backend"] == "keras.predict")] \
            if len(vs) else vs
        if len(g):
            out[mach] = (float(g["slowdown"].iloc[0]), bool(g["significant"].iloc[0]))
    return out


def verdict_all(R, m) -> str:
    """'Yes, for small models' when ``predict`` is ≥ SIGNIFICANT_X × the NumPy engine with separated intervals
    on every machine; otherwise the machines where it holds are named."""
    v = machine_verdicts(R, m)
    if not v:
        return "Not answered: `predict` and the NumPy engine did not both run ok on the same model"
    yes = [mach for mach, (x, sig) in v.items() if x >= SIGNIFICANT_X and sig]
    if len(yes) == len(v):
        return "Yes, for small models"
    if yes:
        return "On " + ", ".join(code(x) for x in yes) + " only"
    return "No"


def smallest_fix(R, m):
    """The first of the smallest TF2 changes (``advice_effort.EFFORT`` order) that beats ``predict`` on every machine by
    the rule (``overhead.report.wins``): (backend, {machine: × faster than predict})."""
    sw = R.sweep
    for b in ("keras.predict_on_batch", "keras.call", "tf.function", "tf.function.xla"):
        rows = sw[(sw["model"] == m) & sw["backend"].isin([b, "keras.predict"])]
        d = wins.decide(wins.from_bench(rows), f"TL;DR: {b} against predict on {m}", R=R)
        if d.winners == [b]:
            return b, {mach: v["keras.predict"] / v[b] for mach, v in d.values.items() if b in v and
                       "keras.predict" in v}
    return None, {}


def fastest_all(R, m, among=None) -> wins.Decision:
    """The co-winners on ``m`` over every machine by the rule (``overhead.report.wins``)."""
    sw = R.sweep
    rows = sw[sw["model"] == m] if len(sw) else sw
    if among is not None and len(rows):
        rows = rows[rows["backend"].isin(among)]
    return wins.decide(wins.from_bench(rows), f"fastest path on {m}" + ("" if among is None else " (subset)"), R=R)


def advice_line(R, m) -> str:
    fix, xs = smallest_fix(R, m)
    d = fastest_all(R, m)
    out = ""
    if fix is not None and xs:
        out = f"the smallest change, {code(fix)} instead of `predict`, is {_span(list(xs.values()))} faster; "
    return out + f"the fastest path on {code(m)} is {wins.names(d)}."


def facts(R) -> dict | None:
    m = small_model(R)
    if m is None:
        return None
    ms, rows = side_by_side(R)
    return {"lead": lead(R, m, ms), "model": m, "machines": ms, "rows": rows, "advice": advice_line(R, m),
            "threads": {mach: R.threads.get(mach, "?") for mach in ms}, "definition": crossing.DEFINITION,
            "seed": m == SMALL_MODEL}


def prose_words(md: str) -> int:
    """Words of the TL;DR's sentences (its table rows not counted): at most ``MAX_WORDS``."""
    return sentences.words("\n".join(x for x in md.splitlines() if not x.lstrip().startswith("|")))


def tldr(R) -> str:
    """The TL;DR markdown: at most 3 sentences (≤ MAX_WORDS words, ``prose_words``) and one table with a
    column per machine."""
    f = facts(R)
    if f is None:
        return not_measured("benchmark (bench.csv)")
    md = sentences.render("tldr", **f)
    if not f["seed"]:
        md = md.replace("the seed's small CNN", "the smallest model measured (the seed's CNN is absent)")
    return md


HERO_CALLS = {"keras.predict": "model.predict", "keras.call": "model(x)", "tf.function": "tf.function"}


def fig_hero(sweep: pd.DataFrame, fits: pd.DataFrame | None = None, fastest: str | None = None,
             machine: str | None = None, figures_dir=None) -> Figure:
    if machine is not None and len(sweep):
        sweep = sweep[sweep["machine"] == machine]
        fits = fits[fits["machine"] == machine] if fits is not None and len(fits) else fits
    if not len(sweep):
        return _empty("no benchmark results")
    fig = _fig(12, 4.2)
    left, right = fig.subplots(1, 2)
    shown = [b for b in (*HERO_CALLS, "numpy", fastest) if b and b in set(sweep["backend"])]
    for b in dict.fromkeys(shown):
        g = sweep[sweep["backend"] == b].drop_duplicates("model").sort_values("flops")
        left.plot(g["flops"], g["median_us"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.5,
                  label=HERO_CALLS.get(b, b) + ("" if b in HERO_CALLS else " (measured)"))
    left.set(xscale="log", yscale="log", title="Measured latency per call (batch 1)")
    left.yaxis.set_major_formatter(FuncFormatter(_us))
    flops_axis(left)
    left.set_xlabel("work per call (FLOPs)")
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)  # below: no curve hidden
    top, last_share = 1.05, {}
    for b, name in HERO_CALLS.items():
        c = crossing.share_curve(sweep, b, compute_ref="tf.function")
        if not len(c):
            continue
        top = max(top, 1.05 * float(c["share"].max()))
        end = c.sort_values("flops").iloc[-1]
        last_share[name] = (end["model"] if "model" in c else f"{end['flops']:.3g} FLOP", float(end["share"]))
        right.plot(c["flops"], c["share"], color=color_for(b), marker=marker_for(b), ms=4, lw=1.5,
                   label=name)
        for s in crossing.SHARES:
            x = crossing.crossover(sweep, b, s, compute_ref="tf.function")
            if x["where"] == "inside":
                right.plot([x["flops"]], [s], marker="o", ms=9, mfc="none", mec=color_for(b), mew=1.6)
    for s in crossing.SHARES:
        right.axhline(s, color="0.5", ls=":", lw=1)
    right.set(xscale="log", ylim=(0, top), title="Overhead share of a call (circles: crossings)")
    right.set_ylabel("(latency − tf.function's compute) / latency", fontsize="small")
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    flops_axis(right)
    right.set_xlabel("work per call (FLOPs)")
    right.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
    describe(fig, *captions.hero(sweep, list(dict.fromkeys(shown)), last_share, machine, HERO_CALLS))
    if figures_dir is not None:
        save(fig, "hero", figures_dir)
    return fig


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


def user_model_outcomes(bench: pd.DataFrame, names, machine=None) -> pd.DataFrame:
    """For the user's own models: every path at the smallest batch and thread setting, ok with its measured
    median, or skipped / failed with the reason the run recorded."""
    cols = ["model", "backend", "status", "median_us", "logit_rel_err", "reason"]
    rows = bench if bench is not None else pd.DataFrame(columns=cols)
    rows = rows[rows["model"].isin(list(names))]
    if machine is not None and "machine" in rows:
        rows = rows[rows["machine"] == machine]
    if not len(rows):
        return pd.DataFrame(columns=cols)
    first = rows[(rows["batch"] == rows["batch"].min()) & (rows["threads"] == rows["threads"].min())]
    out = first.reindex(columns=cols).copy()
    out["reason"] = out["reason"].fillna("")
    order = {b: i for i, b in enumerate(order_backends(out["backend"].unique()))}
    return out.sort_values(["model", "backend"], key=lambda s: s.map(order) if s.name == "backend" else s,
                           kind="stable").reset_index(drop=True)
