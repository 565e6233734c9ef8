"""The effort ladder of the advice: every change from ``model.predict(x)`` ranked by effort — one call changed, a
compiled function, leaving TensorFlow, reduced precision (with its accuracy cost over all inputs and where it
reverses), TF1-style sessions last — each judged against ``predict`` by the wins rule on every machine."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.base import paths
from overhead.report import wins
from overhead.report.fmt import code, fmt_us, fmt_x, small_model
from overhead.report.sections.advice import in_words

EFFORT = paths.effort_ladder()  # (step, backends): each path's step is its catalogue entry's


def _machines(R) -> list:
    sw = R.sweep
    have = list(dict.fromkeys(sw["machine"].astype(str))) if len(sw) else []
    return sorted(have, key=lambda m: (m != R.machine, m))


def accuracy_all(R, model, backend) -> str:
    """A reduced-precision path's cost over ALL checked inputs (not only decisive ones), per machine: top-1
    agreement with Keras and the accuracy drop on real digits (``top1_agree``, ``accuracy``, ``ref_accuracy``)."""
    b = R.bench if R.bench is not None else pd.DataFrame()
    if not len(b):
        return "not recorded"
    parts = []
    for m in _machines(R):
        r = b[(b["machine"] == m) & (b["model"] == model) & (b["backend"] == backend) & (b["status"].astype(str) == "ok")]
        if not len(r):
            continue
        r = r.sort_values("batch").iloc[0]
        top1, acc, ref = (pd.to_numeric(pd.Series([r.get(c)]), errors="coerce").iloc[0]
                          for c in ("top1_agree", "accuracy", "ref_accuracy"))
        bits = []
        if np.isfinite(top1):
            bits.append(f"top-1 agreement {100 * top1:.3g} % of all checked inputs")
        if np.isfinite(acc) and np.isfinite(ref):
            drop = 100 * (ref - acc)
            bits.append("accuracy unchanged on real digits" if abs(drop) < 1e-9 else
                        f"accuracy {abs(drop):.3g} points {'lower' if drop > 0 else 'higher'} on real digits")
        if bits:
            parts.append(f"{code(m)}: " + ", ".join(bits))
    return "; ".join(parts) if parts else "not recorded"


def reversals(R, model, backend, against="litert") -> list:
    """Where a reduced-precision path is NOT faster than float ``against`` by the rule (machines), and where it
    is slower after the longest idle gap measured (idle_gap.csv, same model and threads)."""
    out = []
    sw = R.sweep
    for m in _machines(R):
        rows = sw[(sw["machine"] == m) & (sw["model"] == model) & sw["backend"].isin([backend, against])]
        d = wins.decide(wins.from_bench(rows))
        if backend in d.values.get(m, {}) and against in d.values.get(m, {}) and d.winners != [backend]:
            v = d.values[m]
            out.append(f"not faster than float {code(against)} on {code(m)} ({fmt_us(v[backend])} vs "
                       f"{fmt_us(v[against])})")
    idle = R.extra.get("idle_gap")
    if idle is not None and len(idle):
        ok = idle[(idle["status"].astype(str) == "ok") & (idle["backend"].isin([backend, against]))] \
            if "status" in idle else idle
        for m, g in ok.groupby("machine"):
            gap = g["gap_ms"].max()
            g = g[g["gap_ms"] == gap]
            worse = []
            for (mod, th), h in g.groupby(["model", "threads"]):
                v = h.set_index("backend")["median_us"]
                if backend in v and against in v and v[backend] > v[against]:
                    worse.append((v[backend] / v[against], mod, int(th)))
            if worse:
                x, mod, th = max(worse)
                out.append(f"slower than float {code(against)} after a {gap:g} ms idle gap on {code(m)} in "
                           f"{len(worse)} of {g.groupby(['model', 'threads']).ngroups} settings (worst "
                           f"{fmt_x(x)}, {code(mod)}, {th} thread{'s' if th != 1 else ''})")
    return out


def effort_ladder(R, model=None) -> pd.DataFrame:
    """What a TF2 user can do about ``predict`` on ``model`` (the small model), smallest change first: per step
    and path, the one-line change, its latency and speed-up over ``predict`` on every machine, whether it beats
    ``predict`` by the rule (``overhead.report.wins``) everywhere, and for reduced precision its accuracy cost
    over all inputs and where it reverses."""
    sw = R.sweep
    m = model or small_model(R)
    if not len(sw) or m is None:
        return pd.DataFrame()
    ms = _machines(R)
    rows = []
    for step, members in EFFORT:
        for b in members:
            here = sw[(sw["model"] == m) & sw["backend"].isin([b, "keras.predict"])]
            if b not in set(here["backend"]):
                continue
            d = wins.decide(wins.from_bench(here), f"advice: {b} against predict on {m}", R=R)
            row = {"step": step, "path": code(b), "change": in_words(b)}
            for mach in ms:
                v = d.values.get(mach, {})
                row[mach] = (f"{fmt_us(v[b])} ({fmt_x(v['keras.predict'] / v[b])} faster)"
                             if b in v and "keras.predict" in v else "not measured")
            won = [mach for mach in ms if d.per_machine.get(mach) == [b]]
            row["beats `predict` (rule)"] = ("on every machine" if d.winners == [b] else
                                             "on " + ", ".join(code(x) for x in won) + " only" if won else "tie")
            note = ""
            if paths.reduced_precision(b):
                note = "accuracy: " + accuracy_all(R, m, b)
                rev = reversals(R, m, b)
                if rev:
                    note += "; reverses: " + "; ".join(rev)
            elif b == "tf1.session":
                ran = sw[sw["backend"] == b]["model"].nunique()
                note = f"ran on {ran} of {sw['model'].nunique()} models; needs `tf.compat.v1` and a private API"
            row["caveats"] = note
            rows.append(row)
    return pd.DataFrame(rows)


def ladder_lead(t: pd.DataFrame, model) -> str:
    """The ladder's finding in one sentence: the first step that beats ``predict`` on every machine."""
    if t is None or not len(t):
        return "*Not measured:* no TensorFlow path beside `predict`."
    first = t[t["beats `predict` (rule)"] == "on every machine"]
    if not len(first):
        return f"No change beats `predict` on {code(model)} on every machine beyond the noise."
    r = first.iloc[0]
    return (f"The smallest change that beats `predict` on {code(model)} on every machine, beyond the intervals "
            f"and the between-run spread, is {r['path']} (step {r['step'].split('.')[0]}); the table lists every "
            "step with its cost per machine.")


def ladder_markdown(t: pd.DataFrame) -> str:
    """The effort ladder as an HTML table (code cells render, fits a 1280 px page)."""
    if t is None or not len(t):
        return ""
    import html as _html
    import re

    def cell(v):
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", _html.escape(str(v)))
    cols = list(t.columns)
    head = "".join(f"<th>{cell(c if c in ('step', 'path', 'change', 'caveats', 'beats `predict` (rule)') else f'`{c}`')}</th>"
                   for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in cols) + "</tr>" for r in t.to_dict("records"))
    return f'<table class="advice"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
