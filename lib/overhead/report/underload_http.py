"""The "Under load" section behind HTTP: pure functions of the LoadGen table (``loadgen.csv``).

- :func:`lead_sentence`: the section's finding -- how many times the web payload costs the inference of
  the smallest model, and from which model on the framework matters again;
- :func:`http_table`: the HTTP service per payload and worker count, LoadGen's figures beside wrk's;
- :func:`http_share` / :func:`fig_http_share`: where a request's time goes through the HTTP service,
  from the no-op model (framework vs model vs HTTP stack vs LoadGen + SUT).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report.fmt import fmt_us, g3
from overhead.report.plotkit import _empty, _fig, _legend_right, _us
from overhead.report.underload import NOOP, _col, _ok, server_capacity, single_stream, under_load_sentence


def _payload(frame: pd.DataFrame) -> pd.Series:
    """The payload of each row; the first published runs had one (pydantic JSON) and no column for it."""
    return _col(frame, "payload", "").fillna("").replace("", "pydantic")


def _server_workers(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(_col(frame, "server_workers"), errors="coerce").fillna(1).astype(int)


PAYLOAD_NAMES = {"pydantic": "pydantic JSON", "json": "plain JSON", "binary": "binary float32"}


def http_table(frame: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """The no-op model behind the HTTP service, per payload and uvicorn worker count: LoadGen's Single-Stream
    p50/p99 and Server maximum (with p50/p99 at the VALID run nearest half of it), and wrk's one-connection p50
    and saturated requests/s, p50 and p99 -- the HTTP floor of a service whose model costs nothing."""
    http = frame[(frame["transport"] == "http") & (frame["path"] == NOOP)]
    if http.empty:
        return pd.DataFrame()
    model = model or http["model"].iloc[0]
    http = http[http["model"] == model]
    http = http.assign(payload=_payload(http), server_workers=_server_workers(http), role=_col(http, "role").astype(str))
    cap = server_capacity(http, transport="http", strategy=None, extra_keys=("payload", "server_workers"))
    rows = []
    for (pl, w), g in http.groupby(["payload", "server_workers"], sort=False):
        ss = _ok(g[g["scenario"] == "SingleStream"])
        wrk = g[(g["role"] == "wrk") & (g["status"] == "ok")]
        c = cap[(cap["payload"] == pl) & (cap["server_workers"] == w)] if len(cap) else cap
        row = {"model": model, "payload": PAYLOAD_NAMES.get(pl, pl), "server_workers": int(w),
               "ss_p50_us": float(ss["p50_us"].iloc[0]) if len(ss) else np.nan,
               "ss_p99_us": float(ss["p99_us"].iloc[0]) if len(ss) else np.nan,
               "max_qps": float(c["max_qps"].iloc[0]) if len(c) else np.nan,
               "max_kind": c["max_kind"].iloc[0] if len(c) else "not run"}
        srv = _ok(g[(g["scenario"] == "Server") & (g["role"] == "bisection") & (g["validity"] == "VALID")])
        if np.isfinite(row["max_qps"]) and row["max_qps"] > 0 and len(srv):
            half = srv.loc[(srv["target_qps"] - row["max_qps"] / 2).abs().idxmin()]
            row.update(half_qps=float(half["target_qps"]), p50_at_half_us=float(half["p50_us"]),
                       p99_at_half_us=float(half["p99_us"]))
        conns = pd.to_numeric(_col(wrk, "clients"), errors="coerce")
        one, many = wrk[conns == 1], wrk[conns > 1]
        row["wrk_c1_p50_us"] = float(one["p50_us"].iloc[0]) if len(one) else np.nan
        if len(many):
            top = many.loc[pd.to_numeric(many["achieved_qps"]).idxmax()]
            row.update(wrk_qps=float(top["achieved_qps"]), wrk_connections=int(top["clients"]),
                       wrk_p50_us=float(top["p50_us"]), wrk_p99_us=float(top["p99_us"]))
        runs = g[(g["scenario"] == "Server") & (g["role"] == "bisection") & (g["status"] == "ok")]
        achieved = pd.to_numeric(_col(runs, "achieved_qps"), errors="coerce").dropna()
        row["peak_qps"] = float(achieved.max()) if len(achieved) else np.nan
        splits = _col(runs, "conn_split", "").dropna().astype(str)
        row["conn_split"] = ", ".join(sorted(set(splits[splits != ""])))
        if len(achieved):  # saturated: some run fell short of its target (arrivals outran the service)
            target = pd.to_numeric(runs.loc[achieved.index, "target_qps"], errors="coerce")
            row["peak_saturated"] = bool((achieved < 0.95 * target).any())
        skipped = g[g["status"] == "skipped"]
        row["wrk_note"] = skipped["reason"].iloc[0] if len(skipped) and not len(wrk) else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    if {"max_qps", "wrk_qps"} <= set(out):  # only where LoadGen's client held some load under the bound
        out["loadgen_over_wrk"] = out["max_qps"].where(out["max_qps"] > 0) / out["wrk_qps"]
        out["peak_over_wrk"] = out["peak_qps"] / out["wrk_qps"]
    return out


def http_cross_check(table: pd.DataFrame) -> str:
    """The two clients compared, in computed sentences: saturation against saturation (LoadGen's highest achieved
    rate in any Server run against wrk's closed-loop maximum) per uvicorn worker count, the settings outside 2x
    named; then the p99-bounded Server maximum against wrk's maximum, a different quantity."""
    if table.empty or "peak_over_wrk" not in table or table["peak_over_wrk"].isna().all():
        return ""
    t = table.dropna(subset=["peak_over_wrk"])
    parts = []
    for w, g in t.groupby("server_workers"):
        r = g["peak_over_wrk"]
        span = g3(r.iloc[0]) if r.min() == r.max() else f"{g3(r.min())}-{g3(r.max())}"
        parts.append(f"{span}x with {w} uvicorn worker{'s' if w != 1 else ''}")
    text = ("Saturated, LoadGen's client pushed " + " and ".join(parts) + " the requests per second wrk did through "
            "the same service (its highest achieved rate in any Server run against wrk's maximum)")
    unsat = t[~t["peak_saturated"].fillna(False).astype(bool)] if "peak_saturated" in t else t.iloc[0:0]
    if len(unsat):
        text += " (not saturated, a lower bound: " + ", ".join(
            f"{r.payload} with {r.server_workers} worker{'s' if r.server_workers != 1 else ''}"
            for r in unsat.itertuples()) + ")"
    out = t[(t["peak_over_wrk"] < 0.5) | (t["peak_over_wrk"] > 2)]
    if len(out):
        text += "; outside 2x: " + ", ".join(f"{r.payload} with {r.server_workers} worker{'s' if r.server_workers != 1 else ''} "
                                             f"({g3(r.peak_over_wrk)}x)" for r in out.itertuples()) + "."
        multi = out[out["server_workers"] > 1]
        if len(multi) and not ("conn_split" in t and t["conn_split"].astype(bool).any()):
            text += (" These runs predate the client's balanced connections: with several uvicorn workers the kernel "
                     "gave each of its connections to a worker at random (SO_REUSEPORT), so one worker could get them all.")
    else:
        text += ", within 2x everywhere."
    held = table["loadgen_over_wrk"].dropna() if "loadgen_over_wrk" in table else pd.Series(dtype=float)
    if len(held):
        span = g3(held.iloc[0]) if held.min() == held.max() else f"{g3(held.min())}-{g3(held.max())}"
        text += (f" The Server maximum is a different quantity -- Poisson arrivals with p99 under the bound, against "
                 f"wrk's closed loop at any latency -- and is {span}x wrk's maximum.")
    return text


def _fastest_inproc(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: the fastest in-process Single-Stream path (1 thread) and its p50, the no-op's p50, and the
    p50 of `tf.function` (TensorFlow's serving path) where it ran."""
    ss = single_stream(frame)
    ss = ss[ss["threads"] == ss["threads"].min()] if len(ss) else ss
    rows = []
    for model, g in ss.groupby("model", sort=False):
        real = g[g["path"] != NOOP]
        if real.empty:
            continue
        best = real.loc[real["p50_us"].idxmin()]
        tf = real[real["path"] == "tf.function"]
        noop = g[g["path"] == NOOP]
        rows.append({"model": model, "fastest": best["path"], "fastest_p50_us": float(best["p50_us"]),
                     "noop_p50_us": float(noop["p50_us"].iloc[0]) if len(noop) else 0.0,
                     "tf_p50_us": float(tf["p50_us"].iloc[0]) if len(tf) else np.nan})
    return pd.DataFrame(rows)


def lead_sentence(frame: pd.DataFrame) -> str:
    """The section's finding in one computed sentence: what the web payload costs against the smallest model's
    inference (the no-op model over HTTP, Single-Stream p50, minus in process), and the first model on which
    TensorFlow's serving path (`tf.function`) costs more than the fastest path by more than the cheapest
    payload's HTTP round trip -- where the framework matters again. Without HTTP runs: the load sentence."""
    fast = _fastest_inproc(frame)
    ss = _ok(frame[(frame["scenario"] == "SingleStream") & (frame["transport"] == "http") & (frame["path"] == NOOP)])
    if fast.empty or ss.empty:
        return under_load_sentence(frame)
    ss = ss[_server_workers(ss) == 1]
    ss = ss.assign(payload=_payload(ss))
    small = fast.iloc[0]
    cost = {pl: float(g["p50_us"].iloc[0]) - small["noop_p50_us"] for pl, g in ss.groupby("payload", sort=False)}
    first = "pydantic" if "pydantic" in cost else next(iter(cost))
    cheap = min(cost, key=cost.get)
    text = (f"Behind a web service the payload, not the framework, sets the floor for {small['model']}: a "
            f"{PAYLOAD_NAMES.get(first, first)} request costs {fmt_us(cost[first])} over HTTP, "
            f"{cost[first] / small['fastest_p50_us']:.3g}x the lowest single-query p50 measured in process "
            f"(`{small['fastest']}`, {fmt_us(small['fastest_p50_us'])})")
    if cheap != first:
        text += f" ({PAYLOAD_NAMES.get(cheap, cheap)}: {fmt_us(cost[cheap])})"
    gap = fast.assign(gap_us=fast["tf_p50_us"] - fast["fastest_p50_us"]).dropna(subset=["gap_us"])
    again = gap[gap["gap_us"] > cost[cheap]]
    if len(again):
        r = again.iloc[0]
        trip = f"the {PAYLOAD_NAMES.get(cheap, cheap)} round trip" if cheap != first else "the cheapest HTTP round trip"
        if r["model"] == small["model"]:  # already on the smallest model: no "again"
            text += (f"; yet on {r['model']} `tf.function` already costs {fmt_us(r['gap_us'])} more per query than "
                     f"`{r['fastest']}`, more than {trip}.")
        else:
            text += (f"; the framework matters again from {r['model']} on, where `tf.function` costs "
                     f"{fmt_us(r['gap_us'])} more per query than `{r['fastest']}`, more than {trip}.")
    elif len(gap):
        text += (f"; on no model measured does `tf.function`'s p50 exceed the lowest in-process p50 by more than "
                 f"the cheapest HTTP round trip (at most {fmt_us(gap['gap_us'].max())}).")
    else:
        text += "."
    return text


def http_share(frame: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """Where a Single-Stream request's median time goes, per path served over HTTP (p50s, 1 thread):

    - ``loadgen_sut_us``: LoadGen and the SUT around a call that does nothing (the no-op path in process);
    - ``http_us``: the HTTP stack (client JSON + httpx + loopback + uvicorn + FastAPI + pydantic), i.e. the
      no-op path over HTTP minus in process;
    - ``model_us``: the arithmetic, taken as the fastest in-process path of that model minus the no-op;
    - ``framework_us``: the rest of this path's in-process time (its runtime's own overhead).
    Shares are of their sum; ``measured_us`` is the path's own p50 over HTTP, for comparison.
    """
    ss = _ok(frame[(frame["scenario"] == "SingleStream") & (frame["strategy"] == "thread")])
    ss = ss[_payload(ss).isin(["pydantic"]) | (ss["transport"] != "http")]  # the tutorial service's payload
    if model is None and len(ss):
        model = ss["model"].iloc[0]
    ss = ss[ss["model"] == model]
    ss = ss[ss["threads"] == ss["threads"].min()] if len(ss) else ss
    p50 = {(t, p): v for t, p, v in zip(ss["transport"], ss["path"], ss["p50_us"])}
    if ("inproc", NOOP) not in p50 or ("http", NOOP) not in p50:
        return pd.DataFrame()
    noop_in, noop_http = p50[("inproc", NOOP)], p50[("http", NOOP)]
    inproc = ss[(ss["transport"] == "inproc") & (ss["path"] != NOOP)]
    floor = float(inproc["p50_us"].min()) if len(inproc) else noop_in
    fastest = inproc.loc[inproc["p50_us"].idxmin(), "path"] if len(inproc) else None
    rows = []
    for path in [p for t, p in p50 if t == "http" and p != NOOP]:
        if ("inproc", path) not in p50:
            continue
        model_us = max(floor - noop_in, 0.0)
        framework_us = max(p50[("inproc", path)] - noop_in - model_us, 0.0)
        parts = {"loadgen_sut_us": noop_in, "http_us": max(noop_http - noop_in, 0.0), "model_us": model_us,
                 "framework_us": framework_us}
        total = sum(parts.values())
        rows.append({"model": model, "path": path, **parts, "sum_us": total, "measured_us": p50[("http", path)],
                     **{k.replace("_us", "_share"): v / total for k, v in parts.items()},
                     "model_floor_path": fastest})
    return pd.DataFrame(rows)


SHARE_PARTS = [("model_share", "model (fastest path's arithmetic)", "#4c72b0"),
               ("framework_share", "framework (this path's overhead)", "#dd8452"),
               ("http_share", "HTTP stack", "#55a868"), ("loadgen_sut_share", "LoadGen + SUT", "#8c8c8c")]


def fig_http_share(shares: pd.DataFrame):
    """One horizontal stacked bar per path served over HTTP: the shares of :func:`http_share`."""
    if shares is None or shares.empty:
        return _empty("no HTTP runs (the no-op model and a path over HTTP are needed)")
    fig = _fig(9, 0.55 * len(shares) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(shares))
    left = np.zeros(len(shares))
    for col, label, color in SHARE_PARTS:
        v = shares[col].to_numpy(dtype=float)
        ax.barh(y, v, left=left, color=color, label=label)
        left += v
    ax.set_yticks(y, [f"{p} ({_us(m)})" for p, m in zip(shares["path"], shares["measured_us"])])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of a request's median time (Single-Stream over HTTP)")
    ax.set_title(f"{shares['model'].iloc[0]}: where a request's time goes behind FastAPI/uvicorn")
    ax.invert_yaxis()
    _legend_right(ax, title="part")
    return fig


def http_reader_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`http_table` for the page: labels with units, three significant figures, no index column."""
    t = http_table(frame)
    if t.empty:
        return t

    def col(name, scale=1.0):
        v = t[name] if name in t else pd.Series(np.nan, index=t.index)
        return (pd.to_numeric(v, errors="coerce") * scale).map(g3)

    out = pd.DataFrame({"payload": t["payload"], "uvicorn workers": t["server_workers"],
                        "LoadGen p50 (ms)": col("ss_p50_us", 1e-3), "LoadGen p99 (ms)": col("ss_p99_us", 1e-3),
                        "LoadGen Server max (QPS)": col("max_qps").where(t["max_qps"] > 0, ""), "kind of max": t["max_kind"],
                        "p99 at half the max (ms)": col("p99_at_half_us", 1e-3),
                        "wrk 1-conn p50 (ms)": col("wrk_c1_p50_us", 1e-3), "wrk max (req/s)": col("wrk_qps"),
                        "wrk p99 at its max (ms)": col("wrk_p99_us", 1e-3),
                        "LoadGen p50 / wrk 1-conn p50 (×)": (pd.to_numeric(t["ss_p50_us"], errors="coerce")
                                                             / pd.to_numeric(t["wrk_c1_p50_us"], errors="coerce")
                                                             ).map(g3),
                        "LoadGen peak (req/s)": col("peak_qps"), "LoadGen peak / wrk max (×)": col("peak_over_wrk"),
                        "Server max / wrk max (×)": col("loadgen_over_wrk")})
    if "conn_split" in t and t["conn_split"].astype(bool).any():  # runs since the client balanced its connections
        out.insert(2, "LoadGen connections per worker", t["conn_split"])
    notes = t["wrk_note"] if "wrk_note" in t else pd.Series("", index=t.index)
    if notes.astype(bool).any():
        out["wrk note"] = notes
    return out
