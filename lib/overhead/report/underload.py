"""The report's "Under load" section: pure functions of the LoadGen table (``loadgen.csv``) alone.

- :func:`mlperf_table`: per model and path, Single-Stream p50/p90/p99 and the Server scenario's maximum at
  the bound (one worker thread, in process). A maximum is published only from a run of at least
  :data:`CONFIRM_MIN_S` s that LoadGen called VALID, whose queue did not
  grow and which stays within the capacity bound; a configuration whose VALID runs were all shorter (the
  first published runs: 0.5 s) gets a short-run upper bound instead, never a maximum;
- :func:`fig_hockey_stick`: p50 and p99 against the offered (target) QPS, per path;
- :func:`strategy_table`, :func:`batching_table`: Server capacity per concurrency strategy / batching;
- :func:`under_load_sentence`: one computed sentence on whether the fastest path changes under load.

The HTTP half (the payload floor, where a request's time goes, the section's lead sentence) is
:mod:`overhead.report.underload_http`.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from overhead.report.fmt import g3
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
                    "max_kind", "p99_at_max_us", "run_s_at_max", "flagged", "runs", "fail_above_qps"]


def server_capacity(frame: pd.DataFrame, *, transport="inproc", strategy="thread", extra_keys=()) -> pd.DataFrame:
    """Per (model, path, strategy, workers, batching) of the Server bisections: ``max_qps``, the published
    maximum (the highest long VALID run, status ok; 0 where no run was VALID; NaN where only short runs
    were: ``upper_bound_qps`` then holds their highest VALID QPS and ``max_kind`` says so, unless a long run
    failed -- then no figure at all, and ``max_kind`` names the failed rates). A configuration
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
        refuted = g[g["_long"] & (g["status"] == "ok")]  # long runs, none VALID when best is None
        upper = float(valid["target_qps"].max()) if len(valid) and best is None and refuted.empty else np.nan
        # the capacity lies between the maximum and the lowest rate above it that failed
        failed = g[(g["status"] == "ok") & (g["validity"] != "VALID")]
        if best is not None:
            above = failed["target_qps"][failed["target_qps"] > best["target_qps"]]
        elif len(refuted):  # no figure: the capacity lies below the lowest long run that failed
            above = refuted["target_qps"]
        else:  # no load held (or short-run upper bounds only: no failing rate above them is known to matter)
            above = failed["target_qps"] if not len(valid) else pd.Series(dtype=float)
        fail_above = float(above.min()) if len(above) else np.nan
        if best is not None:
            kind = "maximum"
        elif len(valid) and len(refuted):  # the short runs' maximum failed when run long: no figure
            lo, hi = refuted["target_qps"].min(), refuted["target_qps"].max()
            rates = g3(lo) if lo == hi else f"{g3(lo)}-{g3(hi)}"
            kind = (f"none held {CONFIRM_MIN_S:g} s: long runs at {rates} QPS failed "
                    f"(short runs held up to {g3(valid['target_qps'].max())})")
        elif len(valid):
            kind = f"short-run upper bound (runs of {valid['duration_s'].max():.3g} s < {CONFIRM_MIN_S:g} s)"
        else:
            kind = f"no load held (down to {g['target_qps'].min():.3g} QPS)"
        rows.append(dict(zip(keys, key), bound_ms=float(g["bound_ms"].iloc[0]),
                         max_qps=float(best["target_qps"]) if best is not None else (np.nan if len(valid) else 0.0),
                         upper_bound_qps=upper, max_kind=kind,
                         p99_at_max_us=float(best["p99_us"]) if best is not None else np.nan,
                         run_s_at_max=float(best["duration_s"]) if best is not None else np.nan,
                         flagged=int((g["status"] == "flagged").sum()), runs=len(g), fail_above_qps=fail_above))
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


def mlperf_reader_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`mlperf_table` for the page: the configurations with a Server bisection, labels with units, three
    significant figures, no index column (every Single-Stream row is in the linked loadgen.csv)."""
    t = mlperf_table(frame)
    if t.empty or "bound_ms" not in t:
        return t
    t = t[t["bound_ms"].notna()]

    def g3s(v, scale=1.0):
        return (pd.to_numeric(v, errors="coerce") * scale).map(g3)
    qps = t["max_qps"].where(t["max_qps"] > 0, t["upper_bound_qps"]) if "upper_bound_qps" in t else t["max_qps"]
    return pd.DataFrame({"model": t["model"], "path": t["path"],
                         "Single-Stream p50 (ms)": g3s(t["ss_p50_us"], 1e-3),
                         "Single-Stream p99 (ms)": g3s(t["ss_p99_us"], 1e-3),
                         "p99 bound (ms)": g3s(t["bound_ms"]), "Server QPS": g3s(qps).where(qps > 0, ""),
                         "what the QPS is": t["max_kind"], "parity under load": t["parity_under_load"]})


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


def _qps_cell(qps, kind) -> str:
    """A Server maximum for the page: three significant figures, or what stands in for it."""
    if pd.notna(qps) and qps > 0:
        return g3(qps)
    return "no load held" if pd.notna(qps) else str(kind).split(":")[0]


def strategy_reader_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`strategy_table` for the page: Server maximum (QPS) per path and strategy, three significant figures;
    a configuration without a published maximum says why in a few words; not run: blank."""
    cap = server_capacity(frame, strategy=None)
    cap = cap[cap["batching"] == ""] if len(cap) else cap
    if cap.empty:
        return cap
    cap = cap.assign(strategy=[f"{s} (QPS)" if s == "thread" else f"{s} x{int(w)} (QPS)"
                               for s, w in zip(cap["strategy"], cap["workers"])],
                     cell=[_qps_cell(q, k) for q, k in zip(cap["max_qps"], cap["max_kind"])])
    return cap.pivot_table(index=["model", "path"], columns="strategy", values="cell", aggfunc="first",
                           sort=False).fillna("").reset_index().rename_axis(columns=None)


def batching_reader_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`batching_table` for the page: labels with units, three significant figures."""
    t = batching_table(frame)
    if t.empty:
        return t
    return pd.DataFrame({"model": t["model"], "path": t["path"], "batching (D wait, B max)": t["batching"],
                         "p99 bound (ms)": t["bound_ms"].map(g3),
                         "Server max (QPS)": [_qps_cell(q, "") for q in t["max_qps"]],
                         "p99 at the max (ms)": (t["p99_at_max_us"] / 1e3).map(g3),
                         "mean batch there": t["mean_batch"].map(g3)})


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
