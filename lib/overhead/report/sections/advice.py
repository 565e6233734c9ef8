"""What should you do? Per situation, the fastest path that passed parity in this run, its runner-up and the
least-overhead path that keeps you in TensorFlow/Keras, with the one-line change that gets you there (from the
catalogue, :mod:`overhead.base.paths`), and the note on FLOPs. The section's effort ladder is
:mod:`overhead.report.sections.advice_effort`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.base import paths
from overhead.report import underload, wins
from overhead.report.analysis import ACCURACY_MIN_REF
from overhead.report.analysis import ok as ok_rows
from overhead.report.fmt import code, fmt_flops, fmt_pct, fmt_us, primary, small_model
from overhead.report.sections.loadgen import capacity_spread, loadgen_machines, rerun_spread
from overhead.report.style import NO_TF, TF_KERAS

# "staying in TF/Keras" names TF2 paths only: a TF1-style session (compat.v1 + a private freezing API) is shown
# as what it is in the effort ladder, never as the TF advice
TF2 = tuple(b for b in TF_KERAS if b != "tf1.session")
SITUATIONS = ("small model, single requests", "large model, batch 1", "batch throughput",
              "cold start (serverless)", "memory-constrained", "no TensorFlow at serving time",
              "a service under load")


def in_words(backend: str) -> str:
    """The change from ``model.predict(x)`` to ``backend`` in words (the catalogue's ``change``)."""
    e = paths.entry(backend)
    return e.change if e else f"see the appendix for {code(backend)}"


def one_line(backend: str) -> str:
    """The change as runnable code (the catalogue's ``snippet``) when there is one, else in words."""
    e = paths.entry(backend)
    return code(e.snippet) if e and e.snippet else in_words(backend)


def _rank(values: pd.Series, higher_better=False) -> list:
    v = values.dropna()
    return list((v.sort_values(ascending=not higher_better)).index)


def _startup_mem(R, model):
    st = primary(R, "startup")
    if not len(st):
        return {}, {}, None
    used = model if model in set(st["model"]) else st["model"].iloc[0]
    s = st[st["model"] == used].set_index("backend")
    return (s["start_to_first_pred_s"].to_dict() if "start_to_first_pred_s" in s else {},
            s["rss_after_first_call_mb"].to_dict() if "rss_after_first_call_mb" in s else {}, used)


def int8_units(R) -> str:
    """The CPU's int8 units as the ceilings summary names them ('' when unknown)."""
    summ = R.meta.get("ceilings", {}) or {}
    summ = summ.get("ceilings") or summ.get("summary") or summ
    der = str(summ.get("int8_derivation", "") or "") if isinstance(summ, dict) else ""
    return der.split(":")[0].strip()


def accuracy_cost(R, model, backend, units_here: bool = True) -> str:
    """What the path costs in accuracy on ``model`` (batch 1, the main threads): float32 paths their logit
    error; reduced-precision paths top-1 agreement on decisive inputs and the logit error, beside which int8
    speed is said to depend on the CPU's int8 units."""
    b = R.bench if R.bench is not None else pd.DataFrame()
    if not len(b) or backend is None:
        return "n/a"
    r = b[(b["machine"] == R.machine) & (b["model"] == model) & (b["backend"] == backend)
          & (b["status"].astype(str) == "ok")]
    if not len(r):
        return "not recorded"
    r = r.sort_values("batch").iloc[0]
    err = pd.to_numeric(pd.Series([r.get("logit_rel_err")]), errors="coerce").iloc[0]
    err_txt = f"logit error {err:.2g}" if np.isfinite(err) else "logit error not recorded"
    if not paths.reduced_precision(backend):
        return f"none (float32; {err_txt})"
    top1 = pd.to_numeric(pd.Series([r.get("top1_decisive")]), errors="coerce").iloc[0]
    n = pd.to_numeric(pd.Series([r.get("n_decisive")]), errors="coerce").iloc[0]
    any_top1 = pd.to_numeric(pd.Series([r.get("top1_agree")]), errors="coerce").iloc[0]
    acc, ref = (pd.to_numeric(pd.Series([r.get(c)]), errors="coerce").iloc[0] for c in ("accuracy", "ref_accuracy"))
    parts = []
    if np.isfinite(any_top1):     # over ALL checked inputs first: the decisive ones alone flatter reduced precision
        parts.append(f"top-1 agreement {100 * any_top1:.3g} % of all checked inputs")
    if np.isfinite(top1) and np.isfinite(n):
        parts.append(f"top-1 agreement {fmt_pct(top1)} on {int(n)} decisive inputs")
    if np.isfinite(acc) and np.isfinite(ref) and ref >= ACCURACY_MIN_REF:
        drop = 100 * (ref - acc)
        parts.append("accuracy unchanged on real digits" if abs(drop) < 1e-9 else
                     f"accuracy {abs(drop):.3g} points {'lower' if drop > 0 else 'higher'} on real digits")
    agree = "; ".join(parts) if parts else "top-1 agreement not recorded"
    out = f"{agree}; {err_txt}"
    if paths.int8(backend):
        units = int8_units(R) if units_here else ""
        out += "; int8 speed depends on the CPU's int8 units" + (f" ({units} here)" if units else "")
    return out


def _row(situation, metric, ranked, value, fmt, R=None, model=None, not_there=(), d=None, d_tf=None,
         units_here=True):
    """One advice row: the fastest path with its accuracy cost, the fastest TF/Keras path (and the TF/Keras
    paths not measured on this model), and the change that gets you onto the fastest one. With ``d`` / ``d_tf``
    (``wins.Decision`` over every machine) the winners follow the rule: co-winners are printed as a tie."""
    if not ranked:
        return {"situation": situation, "fastest (measured)": "not measured in this run", "accuracy cost": "",
                "staying in TF/Keras": "", "one-line change": "", "_best": None, "_metric": metric, "_cost_short": ""}
    def show(n):
        return fmt(value[n]) if n in value.index else "not measured here"
    best = d.leader if d is not None and d.winners else ranked[0]
    tfk = [b for b in ranked if b in TF2]
    if d_tf is not None and d_tf.winners:
        stay = wins.names(d_tf, show)
    else:
        stay = f"{code(tfk[0])} ({fmt(value[tfk[0]])})" if tfk else "none ran ok"
    if not_there:
        stay += "; not measured on this model: " + ", ".join(code(b) for b in not_there)
    fastest = wins.names(d, show) if d is not None and d.winners else f"{code(best)} ({fmt(value[best])})"
    tied = d.winners if d is not None and d.tie else [best]
    costs = {b: accuracy_cost(R, model, b, units_here) if R is not None and model else "n/a" for b in tied}
    def first(c):  # the cost's first clause, without a parenthesis the cut would leave open
        return c.split(";")[0].split(" (")[0]
    if len(costs) == 1:
        cost, short = costs[best], first(costs[best])
    else:  # a tie: each co-winner's own cost, since a reader may take any of them
        cost = " · ".join(f"{code(b)}: {c}" for b, c in costs.items())
        short = ", ".join(f"{code(b)}: {first(c)}" for b, c in costs.items())
    return {"situation": situation, "fastest (measured)": fastest, "accuracy cost": cost,
            "staying in TF/Keras": stay, "one-line change": one_line(best), "_best": best, "_metric": metric,
            "_cost_short": short}


def _unmeasured_tf(sw, model) -> list:
    """TF/Keras paths that ran at batch 1 on some model but not on ``model``."""
    ran = set(sw["backend"])
    here = set(sw[sw["model"] == model]["backend"])
    return [b for b in TF2 if b in ran and b not in here]


def advice(R) -> pd.DataFrame:
    """One row per situation of ``SITUATIONS``, all from this run's ok rows (parity passed); every row names
    its model."""
    sw = primary(R, "sweep")
    m = small_model(R)
    start, mem, st_model = _startup_mem(R, m)
    rows = []
    lat = (lambda model: sw[sw["model"] == model].set_index("backend")["median_us"]) if len(sw) else None
    small = lat(m) if lat and m else pd.Series(dtype=float)
    rows.append(_row(f"small model ({code(m)}), single requests", "latency per call", _rank(small), small, fmt_us,
                     R, m, **_decisions(R, "small model", m)))
    big_m = sw.sort_values("flops")["model"].iloc[-1] if len(sw) else None
    big = lat(big_m) if big_m else pd.Series(dtype=float)
    rows.append(_row(f"large model ({code(big_m)}), batch 1", "latency per call", _rank(big), big, fmt_us, R, big_m,
                     _unmeasured_tf(sw, big_m) if big_m else (), **_decisions(R, "large model", big_m)))
    b = primary(R, "batch")
    if len(b):
        multi = b.groupby("model")["batch"].nunique()
        bm = b[b["model"].isin(multi[multi > 1].index)]
        bm = bm[bm["flops"] == bm["flops"].max()] if len(bm) else bm
        tp = bm.groupby("backend")["throughput_sps"].max() if len(bm) else pd.Series(dtype=float)
        bmod = bm["model"].iloc[0] if len(bm) else None
        rows.append(_row(f"batch throughput ({code(bmod)}, best batch size)", "samples/s", _rank(tp, True), tp,
                         lambda v: f"{v:,.0f} /s", R, bmod, **_throughput_decisions(R, bmod)))
    else:
        rows.append(_row("batch throughput", "samples/s", [], None, str))
    cs, mms = pd.Series(start, dtype=float), pd.Series(mem, dtype=float)
    rows.append(_row(f"cold start ({code(st_model)}, process start to first prediction)", "seconds", _rank(cs), cs,
                     lambda v: f"{v:.3g} s", R, st_model,
                     **_startup_decisions(R, st_model, "start_to_first_pred_s", "cold start")))
    rows.append(_row(f"memory ({code(st_model)}, resident after the first call)", "MB", _rank(mms), mms,
                     lambda v: f"{v:.0f} MB", R, st_model,
                     **_startup_decisions(R, st_model, "rss_after_first_call_mb", "memory")))
    no_tf = small[[x for x in small.index if x in NO_TF]] if len(small) else small
    row = _row(f"no TensorFlow at serving time ({code(m)})", "latency per call", _rank(no_tf), no_tf, fmt_us, R, m,
               d=_decisions(R, "no TensorFlow", m, among=NO_TF)["d"])
    ranked = _rank(no_tf)
    fams = {}
    for x in ranked:                      # the best of each TF-free family, side by side (LiteRT, ORT, ...)
        e = paths.entry(x)
        fams.setdefault(e.family if e is not None else x.split(".")[0], x)
    if len(fams) > 1 and not row["fastest (measured)"].startswith("a tie"):
        row["fastest (measured)"] = "; ".join(f"{code(x)} ({fmt_us(no_tf[x])})" for x in list(fams.values())[:3])
    row["staying in TF/Keras"] = "—"
    rows.append(row)
    rows.append(_under_load_row(R))
    t = pd.DataFrame(rows)
    t.attrs["machine"] = R.machine
    return t


def _decisions(R, what, model, among=None) -> dict:
    """``d`` (the fastest path on ``model``) and ``d_tf`` (the fastest TF/Keras path) over every machine."""
    sw = R.sweep
    if model is None or not len(sw):
        return {"d": None, "d_tf": None}
    rows = sw[sw["model"] == model]
    if among is not None:
        return {"d": wins.decide(wins.from_bench(rows[rows["backend"].isin(among)]), f"advice: {what}", R=R),
                "d_tf": None}
    return {"d": wins.decide(wins.from_bench(rows), f"advice: {what}", R=R),
            "d_tf": wins.decide(wins.from_bench(rows[rows["backend"].isin([b for b in TF2 if b != "keras.predict"])]),
                                f"advice: {what}, staying in TF/Keras", R=R)}


def _throughput_decisions(R, model) -> dict:
    """Batch throughput: per machine and path its best batch size, compared on the cost per sample."""
    b = R.bench if R.bench is not None else pd.DataFrame()
    if model is None or not len(b):
        return {"d": None, "d_tf": None}
    g = ok_rows(b)
    g = g[(g["model"] == model) & (g["threads"] == g["machine"].map(R.threads))]
    if not len(g):
        return {"d": None, "d_tf": None}
    g = g.assign(_ps=g["median_us"] / g["batch"])
    best = g.loc[g.groupby(["machine", "backend"])["_ps"].idxmin()]
    f = wins.from_bench(best, per="batch")
    tf = best[best["backend"].isin([x for x in TF2 if x != "keras.predict"])]
    return {"d": wins.decide(f, "advice: batch throughput", R=R),
            "d_tf": wins.decide(wins.from_bench(tf, per="batch"), "advice: batch throughput, staying in TF/Keras", R=R)}


def _startup_decisions(R, model, column, what) -> dict:
    """Cold start / memory over every machine: the repetitions' range is the interval (``wins.from_repetitions``)."""
    raw = R.raw.get("startup")
    if raw is None or not len(raw) or model is None:
        return {"d": None, "d_tf": None}
    s = raw[(raw["model"] == model) & (raw["status"].astype(str) == "ok")] if "status" in raw else raw[raw["model"] == model]
    return {"d": wins.decide(wins.from_repetitions(s, column), f"advice: {what}", R=R),
            "d_tf": wins.decide(wins.from_repetitions(s[s["backend"].isin(TF2)], column),
                                f"advice: {what}, staying in TF/Keras", R=R)}


def _under_load_row(R) -> dict:
    """A service under load: the path with the highest Server capacity (LoadGen, p99 under the bound, one
    worker thread, in process) on the smallest model that had a bisection."""
    machines = loadgen_machines(R)  # confirmed (long-run) maxima first, from whichever machine ran LoadGen
    machine, lg = machines[0] if machines else (None, pd.DataFrame())
    cap = underload.server_capacity(lg) if len(lg) else pd.DataFrame()
    if not len(cap):
        return _row("a service under load (no `loadgen.csv` in the results)", "queries/s at the p99 bound", [], None, str)
    model = cap["model"].iloc[0]
    where = f", on {code(machine)}" if machine and machine != R.machine else ""
    here = cap[cap["model"] == model].set_index("path")
    qps = here["max_qps"][here["max_qps"] > 0]
    bound = here["bound_ms"].iloc[0]
    if not len(qps) and "upper_bound_qps" in here and here["upper_bound_qps"].gt(0).any():
        upper = here["upper_bound_qps"][here["upper_bound_qps"] > 0]
        return _row(f"a service under load ({code(model)}{where}, p99 ≤ {bound:g} ms; short-run upper bounds only: no "
                    "Server point ran long enough to show a growing queue, so no maximum is published)",
                    "queries/s at the p99 bound (upper bound)", _rank(upper, True), upper,
                    lambda v: f"at most {v:,.0f} queries/s (short runs)", R, model,
                    units_here=not where)
    # a bisection brackets each capacity between the highest rate that held and the lowest that failed above it:
    # that bracket is the interval of the rule, over every machine with long-run maxima on this model
    frame = _capacity_frame(machines, model, R)
    d = wins.decide(frame, "advice: under load", higher_better=True, R=R)
    tf_frame = frame[frame["name"].isin(TF2)]
    d_tf = wins.decide(tf_frame, "advice: under load, staying in TF/Keras", higher_better=True, R=R) if len(
        tf_frame) else None
    on = ", ".join(code(m) for m in d.values) or "none"
    shown = here["max_qps"].where(here["max_qps"] > 0, 0.0)[here["fail_above_qps"].notna() | (here["max_qps"] > 0)]
    return _row(f"a service under load ({code(model)}{where}, Poisson arrivals, p99 ≤ {bound:g} ms; each capacity "
                f"bracketed by bisection between the highest rate that held and the lowest that failed, with the "
                f"between-run spread of a rerun of the stage; rule over {on})",
                "queries/s at the p99 bound", _rank(qps, True), shown,
                lambda v: f"{v:,.0f} queries/s" if v > 0 else "no load held for 10 s", R, model,
                d=d, d_tf=d_tf, units_here=not where)  # another machine's figures: the report's int8 units do not apply


def _capacity_frame(machines, model, R=None) -> pd.DataFrame:
    """``wins.decide`` rows of the long-run Server maxima on `model`: value and lower end = the maximum, upper end =
    the lowest failing rate above it (none: no interval, no win), and the between-run spread a rerun of the stage
    measured for that path (``sections.loadgen.capacity_spread``; 0 without any rerun). A
    path whose long runs all failed (or that held no load) was measured and lost: value 0, its capacity below the
    lowest rate that failed. Short-run upper bounds say nothing either way and are left out."""
    rows, spreads = [], rerun_spread(R) if R is not None else None
    for m, lg in machines:
        cap = underload.server_capacity(lg) if len(lg) else pd.DataFrame()
        cap = cap[cap["model"] == model] if len(cap) else cap
        for r in cap.to_dict("records"):
            spread = capacity_spread(spreads, m, model, r["path"])[0] if spreads is not None else 0.0
            if r["max_qps"] > 0:
                rows.append({"machine": m, "name": r["path"], "value": r["max_qps"], "lo": r["max_qps"],
                             "hi": r["fail_above_qps"], "spread": spread})
            elif np.isfinite(r["fail_above_qps"]) and not r["upper_bound_qps"] > 0:
                rows.append({"machine": m, "name": r["path"], "value": 0.0, "lo": 0.0, "hi": r["fail_above_qps"],
                             "spread": spread})
    return pd.DataFrame(rows, columns=list(wins.COLUMNS))


def lead(table: pd.DataFrame) -> str:
    """The section's finding in one sentence, from the first two rows."""
    if table is None or not len(table) or table["_best"].isna().all():
        return "*Not measured:* no results to advise from."
    r = table.to_dict("records")
    out = f"Fastest measured for {r[0]['situation']}: {r[0]['fastest (measured)']}"
    if len(r) > 1 and r[1]["_best"] is not None:
        out += f"; for {r[1]['situation']}: {r[1]['fastest (measured)']} (accuracy cost: {r[1]['_cost_short']})"
    return out + (". Each row names its model, what the path costs in accuracy and the code that gets you there; "
                  "winners follow the rule over every machine, times are "
                  f"{'on ' + code(table.attrs['machine']) if table.attrs.get('machine') else 'measured'}.")


COLUMNS = ("situation", "fastest (measured)", "accuracy cost", "staying in TF/Keras", "one-line change")


def advice_markdown(table: pd.DataFrame) -> str:
    """The advice as an HTML table with fixed column widths (fits a 1280 px page; code wraps)."""
    if table is None or not len(table):
        return "*Not measured:* no results to advise from."
    import html as _html
    import re
    widths = (14, 16, 20, 18, 32)

    def cell(v):
        v = _html.escape(str(v))
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", v)
    head = "".join(f'<th style="width:{w}%">{_html.escape(c)}</th>' for c, w in zip(COLUMNS, widths))
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in COLUMNS) + "</tr>"
                   for r in table.to_dict("records"))
    notes = [f"<code>{_html.escape(b)}</code>: {cell(paths.entry(b).note)}"
             for b in dict.fromkeys(table["_best"].dropna()) if paths.entry(b) and paths.entry(b).note]
    foot = ("<p><small>The changes run as written with <code>model</code> (Keras 3 on TensorFlow), <code>x</code> "
            "(a float32 batch of one), <code>tf</code> and <code>np</code> in scope; the prediction ends in "
            "<code>y</code>. " + " ".join(notes) + "</small></p>")
    return f'<table class="advice"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}'


def summary(table: pd.DataFrame, n: int = 3) -> str:
    """The first ``n`` situations in one line each (for the README); winners by the rule over every machine,
    times of the report's machine."""
    out = []
    where = table.attrs.get("machine") if table is not None else None
    if where:
        out.append(f"Winners over every machine by the rule; times in brackets on {code(where)}:\n")
    for r in table.head(n).to_dict("records"):
        if r["_best"] is None:
            continue
        out.append(f"- **{r['situation']}:** {r['fastest (measured)']}; accuracy cost: {r['accuracy cost']}; "
                   f"staying in TF/Keras: {r['staying in TF/Keras']}.")
    return "\n".join(out)


# ---------------------------------------------------------------- code appendix ------------------------


def flops_note(R) -> str:
    sw = primary(R, "sweep")
    if not len(sw):
        return ""
    lo, hi = sw.sort_values("flops").iloc[[0, -1]]["flops"]
    return (f"Advice holds for models between {fmt_flops(lo)} and {fmt_flops(hi)} per call on this machine "
            "(the measured range).")
