"""The report's "Under load" section: pure functions of the LoadGen table (``loadgen.csv``) alone.

- :func:`lead_sentence`: the section's finding -- how many times the web payload costs the inference of
  the smallest model, and from which model on the framework matters again;
- :func:`mlperf_table`: per model and path, Single-Stream p50/p90/p99 and the Server scenario's maximum at
  the bound (one worker thread, in process). A maximum is published only from a run of at least
  :data:`CONFIRM_MIN_S` s that LoadGen called VALID, whose queue did not
  grow and which stays within the capacity bound; a configuration whose VALID runs were all shorter (the
  first published runs: 0.5 s) gets a short-run upper bound instead, never a maximum;
- :func:`http_table`: the HTTP service per payload and worker count, LoadGen's figures beside wrk's;
- :func:`fig_hockey_stick`: p50 and p99 against the offered (target) QPS, per path;
- :func:`http_share` / :func:`fig_http_share`: where a request's time goes through the HTTP service,
  from the no-op model (framework vs model vs HTTP stack vs LoadGen + SUT);
- :func:`strategy_table`, :func:`batching_table`: Server capacity per concurrency strategy / batching;
- :func:`under_load_sentence`: one computed sentence on whether the fastest path changes under load.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from overhead.report.fmt import fmt_us
from overhead.report.plotkit import _empty, _fig, _legend_right, _us
from overhead.report.style import color_for, marker_for, order_backends

NOOP = "noop"
# the shortest Server run whose QPS is published as a maximum: the stage's confirming runs last at least this
# long (overhead.experiments.loadgen_rules.CONFIRM_MIN_S; the report reads result tables only, a test ties them)
CONFIRM_MIN_S = 10.0


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"] if "status" in frame else frame


def _inproc_thread(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["transport"] == "inproc") & (frame["strategy"] == "thread")]


def single_stream(frame: pd.DataFrame) -> pd.DataFrame:
    """In-process Single-Stream rows (one per model, path, threads), parity passed or not judged."""
    ss = _inproc_thread(frame[frame["scenario"] == "SingleStream"])
    return _ok(ss)


def _col(frame: pd.DataFrame, name: str, default=None) -> pd.Series:
    """A column, or `default` for every row when an older table lacks it."""
    return frame[name] if name in frame else pd.Series(default, index=frame.index, dtype=object)


def long_run(frame: pd.DataFrame) -> pd.Series:
    """Rows of Server runs long enough to publish: >= CONFIRM_MIN_S s (shorter confirming runs of a test
    setting are not)."""
    return pd.to_numeric(_col(frame, "duration_s"), errors="coerce") >= CONFIRM_MIN_S


CAPACITY_COLUMNS = ["model", "path", "strategy", "workers", "batching", "bound_ms", "max_qps", "upper_bound_qps",
                    "max_kind", "p99_at_max_us", "run_s_at_max", "flagged", "runs"]


def server_capacity(frame: pd.DataFrame, *, transport="inproc", strategy="thread", extra_keys=()) -> pd.DataFrame:
    """Per (model, path, strategy, workers, batching) of the Server bisections: ``max_qps``, the published
    maximum (the highest long VALID run, status ok; 0 where no run was VALID; NaN where only short runs
    were: ``upper_bound_qps`` then holds their highest VALID QPS and ``max_kind`` says so). A configuration
    with a failed row (parity) is left out; a flagged row (capacity bound broken) is counted, not used."""
    srv = frame[(frame["scenario"] == "Server") & (frame["role"] == "bisection")
                & (frame["transport"] == transport)]
    if strategy is not None:
        srv = srv[srv["strategy"] == strategy]
    keys = ["model", "path", "strategy", "workers", "batching", *extra_keys]
    if srv.empty:
        return pd.DataFrame(columns=CAPACITY_COLUMNS + list(extra_keys))
    srv = srv.assign(batching=srv["batching"].fillna(""), _long=long_run(srv))
    for k in extra_keys:
        srv[k] = srv[k].fillna("")
    rows = []
    for key, g in srv.groupby(keys, sort=False):
        if (g["status"] == "failed").any():
            continue
        valid = g[(g["validity"] == "VALID") & (g["status"] == "ok")]
        held = valid[valid["_long"]]
        best = held.loc[held["target_qps"].idxmax()] if len(held) else None
        upper = float(valid["target_qps"].max()) if len(valid) and best is None else np.nan
        kind = ("maximum" if best is not None else
                f"short-run upper bound (runs of {valid['duration_s'].max():.3g} s < {CONFIRM_MIN_S:g} s)"
                if len(valid) else "no load held")
        rows.append(dict(zip(keys, key), bound_ms=float(g["bound_ms"].iloc[0]),
                         max_qps=float(best["target_qps"]) if best is not None else (np.nan if len(valid) else 0.0),
                         upper_bound_qps=upper, max_kind=kind,
                         p99_at_max_us=float(best["p99_us"]) if best is not None else np.nan,
                         run_s_at_max=float(best["duration_s"]) if best is not None else np.nan,
                         flagged=int((g["status"] == "flagged").sum()), runs=len(g)))
    return pd.DataFrame(rows, columns=CAPACITY_COLUMNS + list(extra_keys))


def mlperf_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The MLPerf-style table: per model and path, Single-Stream p50/p90/p99 at 1 thread (and p90 at the
    most threads measured), the Server maximum at the bound (one worker thread; a short-run upper bound
    where no long run confirmed one, see :func:`server_capacity`), parity under load."""
    ss = single_stream(frame)
    ss = ss[ss["path"] != NOOP]
    out = []
    t_max = int(ss["threads"].max()) if len(ss) else 1
    for (model, path), g in ss.groupby(["model", "path"], sort=False):
        one = g[g["threads"] == g["threads"].min()].iloc[0]
        most = g[g["threads"] == g["threads"].max()].iloc[0]
        out.append({"model": model, "path": path, "ss_p50_us": one["p50_us"], "ss_p90_us": one["p90_us"],
                    "ss_p99_us": one["p99_us"], f"ss_p90_us_t{t_max}": most["p90_us"] if len(g) > 1 else np.nan})
    table = pd.DataFrame(out)
    cap = server_capacity(frame)
    keep = ["model", "path", "bound_ms", "max_qps", "upper_bound_qps", "max_kind"]
    if len(table) and len(cap):
        table = table.merge(cap[keep], on=["model", "path"], how="outer")
    elif len(cap):
        table = cap[keep].copy()
    if table.empty:
        return table
    failed = frame[(frame["status"] == "failed") & frame["reason"].fillna("").str.startswith("parity under load")]
    bad = set(zip(failed["model"], failed["path"]))
    have = set(zip(table["model"], table["path"]))
    missing = [{"model": m, "path": p} for m, p in sorted(bad - have)]  # failed everywhere: listed, no numbers
    if missing:
        table = pd.concat([table, pd.DataFrame(missing)], ignore_index=True)
    table["parity_under_load"] = ["fail" if (m, p) in bad else "pass" for m, p in zip(table["model"], table["path"])]
    order = {p: i for i, p in enumerate(order_backends(table["path"]))}
    models = list(dict.fromkeys(frame["model"]))
    table = table.assign(_m=table["model"].map(models.index), _p=table["path"].map(order))
    return table.sort_values(["_m", "_p"]).drop(columns=["_m", "_p"]).reset_index(drop=True)


def fig_hockey_stick(frame: pd.DataFrame, model: str | None = None):
    """p50 (dashed) and p99 (solid) latency against the offered QPS, one line per path (Server, in process,
    one worker thread); the bound as a grey line."""
    srv = _inproc_thread(frame[(frame["scenario"] == "Server") & frame["target_qps"].notna()])
    srv = _ok(srv)
    if model is None and len(srv):
        model = srv["model"].iloc[0]
    srv = srv[srv["model"] == model]
    if srv.empty:
        return _empty(f"no Server runs for {model}")
    fig = _fig(9, 4.8)
    ax = fig.add_subplot()
    for path in order_backends(srv["path"]):
        g = srv[srv["path"] == path].sort_values("target_qps")
        kw = {"color": color_for(path), "marker": marker_for(path), "ms": 4}
        ax.plot(g["target_qps"], g["p99_us"], "-", label=path, **kw)
        ax.plot(g["target_qps"], g["p50_us"], "--", alpha=0.6, **kw)
    bound = float(srv["bound_ms"].iloc[0]) * 1e3
    ax.axhline(bound, color="0.4", lw=1)
    ax.text(ax.get_xlim()[0], bound, f" bound {bound / 1e3:g} ms (p99)", va="bottom", fontsize="small", color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_us)
    ax.set_xlabel("offered load (LoadGen Server target, queries/s)")
    ax.set_ylabel("latency (solid p99, dashed p50)")
    ax.set_title(f"{model}: latency against offered load (Poisson arrivals, one worker thread)")
    _legend_right(ax, title="path")
    return fig


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


def strategy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Server max QPS per path and model for each concurrency strategy (columns), in process."""
    cap = server_capacity(frame, strategy=None)
    cap = cap[cap["batching"] == ""] if len(cap) else cap
    if cap.empty:
        return cap
    cap = cap.assign(strategy=[s if s == "thread" else f"{s} x{int(w)}" for s, w in zip(cap["strategy"],
                                                                                        cap["workers"])])
    return cap.pivot_table(index=["model", "path"], columns="strategy", values="max_qps", sort=False)


def batching_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Dynamic batching: max QPS, p99 at it and the mean batch there, per path and (D, B)."""
    srv = frame[(frame["scenario"] == "Server") & (frame["strategy"] == "batching")]
    cap = server_capacity(frame, strategy="batching")
    if cap.empty:
        return cap
    mean_batch = []
    for _, r in cap.iterrows():
        at = srv[(srv["model"] == r["model"]) & (srv["path"] == r["path"]) & (srv["batching"] == r["batching"])
                 & (srv["target_qps"] == r["max_qps"])]
        hist = {int(k): v for k, v in json.loads(at["batch_hist"].iloc[0]).items()} if len(at) else {}
        n = sum(hist.values())
        mean_batch.append(sum(k * v for k, v in hist.items()) / n if n else np.nan)
    return cap.assign(mean_batch=mean_batch)[["model", "path", "batching", "bound_ms", "max_qps", "p99_at_max_us",
                                              "mean_batch"]]


def under_load_sentence(frame: pd.DataFrame, tie_ratio: float = 1.25) -> str:
    """Does the fastest path change under load? Per model: the lowest Single-Stream p90 against the highest
    published Server maximum at the bound (same paths, parity passed); names the path to serve with, or the
    co-winners when the runner-up is within `tie_ratio` (the step of the confirming runs: closer maxima are
    not told apart by the bisection)."""
    table = mlperf_table(frame)
    if table.empty or "max_qps" not in table:
        return "No Server bisection was run, so the study cannot say whether the fastest path changes under load."
    parts, changed = [], []
    for model, g in table[table["parity_under_load"] == "pass"].groupby("model", sort=False):
        both = g.dropna(subset=["ss_p90_us", "max_qps"])
        if both.empty or not (both["max_qps"] > 0).any():  # no published maximum held any load on this model
            continue
        fast = both.loc[both["ss_p90_us"].idxmin()]
        ranked = both.sort_values("max_qps", ascending=False)
        serve = ranked.iloc[0]
        ties = ranked[ranked["max_qps"] * tie_ratio > serve["max_qps"]]["path"].tolist() if serve["max_qps"] > 0 \
            else []
        tie = len(ties) > 1
        who = (f"`{serve['path']}`" if not tie else
               "a tie of " + ", ".join(f"`{p}`" for p in ties) + f" (within {tie_ratio:g}x)")
        same = fast["path"] in ties if tie else fast["path"] == serve["path"]
        changed.append(not same)
        bound = f"{serve['bound_ms']:g} ms"
        if same:
            parts.append(f"on {model} `{fast['path']}` is the fastest alone (Single-Stream p90 "
                         f"{_us(round(fast['ss_p90_us'], 1))}) and {'among ' if tie else ''}the "
                         f"one{'s' if tie else ''} that sustain{'' if tie else 's'} the most load "
                         f"({who}: {serve['max_qps']:,.0f} queries/s with p99 under {bound})")
        else:
            parts.append(f"on {model} `{fast['path']}` is the fastest alone (Single-Stream p90 "
                         f"{_us(round(fast['ss_p90_us'], 1))}, {fast['max_qps']:,.0f} queries/s under load) but "
                         f"{who} sustain{'' if tie else 's'} the most load ({serve['max_qps']:,.0f} "
                         f"queries/s with p99 under {bound}; p90 alone {_us(round(serve['ss_p90_us'], 1))})")
    if not parts:
        if "upper_bound_qps" in table and table["upper_bound_qps"].notna().any():
            return (f"The Server maxima of this run come from runs shorter than the {CONFIRM_MIN_S:g} s a published "
                    "maximum needs, so they are upper bounds only and the study does not say whether the fastest "
                    "path changes under load.")
        return "No path has both a Single-Stream and a Server result, so the study cannot compare them."
    verdict = ("Under load the fastest path changes" if all(changed) else
               "Under load the fastest path stays the same" if not any(changed) else
               "Under load the fastest path changes for some models")
    return f"{verdict}: " + "; ".join(parts) + "."


# --------------------------------------------------------------------------- behind HTTP

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
        skipped = g[g["status"] == "skipped"]
        row["wrk_note"] = skipped["reason"].iloc[0] if len(skipped) and not len(wrk) else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    if {"max_qps", "wrk_qps"} <= set(out):  # only where LoadGen's client held some load under the bound
        out["loadgen_over_wrk"] = out["max_qps"].where(out["max_qps"] > 0) / out["wrk_qps"]
    return out


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
            f"{cost[first] / small['fastest_p50_us']:.3g}x the fastest inference (`{small['fastest']}`, "
            f"{fmt_us(small['fastest_p50_us'])} per query in process)")
    if cheap != first:
        text += f" ({PAYLOAD_NAMES.get(cheap, cheap)}: {fmt_us(cost[cheap])})"
    gap = fast.assign(gap_us=fast["tf_p50_us"] - fast["fastest_p50_us"]).dropna(subset=["gap_us"])
    again = gap[gap["gap_us"] > cost[cheap]]
    if len(again):
        r = again.iloc[0]
        text += (f"; the framework matters again from {r['model']} on, where `tf.function` costs "
                 f"{fmt_us(r['gap_us'])} more per query than `{r['fastest']}`, more than the cheapest HTTP round trip.")
    elif len(gap):
        text += (f"; on no model measured does `tf.function`'s cost over the fastest path (at most "
                 f"{fmt_us(gap['gap_us'].max())}) exceed the cheapest HTTP round trip.")
    else:
        text += "."
    return text
