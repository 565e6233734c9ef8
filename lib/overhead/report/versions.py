"""The report's "Across versions" section: versions.csv -> measurable changes between TensorFlow releases,
the finding sentence (``templates/versions.md.j2``) and the figure of latency per path across releases.

A change between two releases (same machine, model, path, Keras, oneDNN setting, both rows ok) is
measurable only when the two run-level 95 % intervals of the median are disjoint AND the ratio of the
medians moves by more than the between-run spread of either row. A claim holds when it holds on every machine
that measured both releases, in the same direction; one measurable on some machines only is stated with their
names. Everything else is "no measurable change".
Pure functions of the result tables (no experiment, no backend imported).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import plotkit
from overhead.report.fmt import g3
from overhead.report.sentences import render

SERIES = {"default": "the Keras each release installs: Keras 2 to 2.15, Keras 3 from 2.16",
          "2": "Keras 2 (tf.keras to 2.15, tf_keras from 2.16)", "3": "Keras 3"}
PATH_LABELS = {"predict": "predict", "predict_on_batch": "predict_on_batch", "call": "model(x)",
               "tf.function": "tf.function", "tf.function.xla": "tf.function (XLA)", "savedmodel": "SavedModel",
               "tf1.session": "TF1 Session", "tflite": "tf.lite.Interpreter"}
KEY_PATHS = ("predict", "tf.function")


def release_key(label) -> tuple:
    parts = str(label).split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts[:2])


def default_keras(label) -> str:
    return "3" if release_key(label) >= (2, 16) else "2"


def series(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The ok rows of one series: Keras "2", "3", or "default" (what each release gives a user unasked)."""
    if frame.empty or "status" not in frame:
        return frame.iloc[0:0]
    ok = frame[(frame["status"] == "ok") & frame["median_us"].notna()].copy()
    ok["keras"] = ok["keras"].astype(str).str.replace(".0", "", regex=False)
    if name == "default":
        return ok[ok["keras"] == ok["release"].map(default_keras)]
    return ok[ok["keras"] == name]


def _beyond(a, b) -> bool:
    """b differs from a beyond both intervals and the larger between-run spread."""
    disjoint = b["ci_lo_us"] > a["ci_hi_us"] or b["ci_hi_us"] < a["ci_lo_us"]
    spread = max(float(a.get("run_spread") or 0), float(b.get("run_spread") or 0))
    r = b["median_us"] / a["median_us"]
    return bool(disjoint and max(r, 1 / r) - 1 > spread)  # as a ratio both ways: a speed-up can exceed a spread >= 1


def changes(frame: pd.DataFrame, name: str = "default") -> pd.DataFrame:
    """Measurable changes between consecutive releases of a series, and from its first to its last release.

    Columns: model, path, onednn, from, to, kind (step|span), ratio (to / from, the median over the machines where
    it was measurable), direction, holds (measurable in that direction on every machine with both rows),
    on (those machines), not_on (machines with both rows where it was not measurable, or went the other way)."""
    s = series(frame, name)
    cols = ["model", "path", "onednn", "from", "to", "kind", "ratio", "direction", "holds", "on", "not_on"]
    out = []
    for (model, path, onednn), g in s.groupby(["model", "path", "onednn"]):
        rels = sorted(g["release"].astype(str).unique(), key=release_key)
        pairs = [(a, b, "step") for a, b in zip(rels, rels[1:])]
        if len(rels) > 2:
            pairs.append((rels[0], rels[-1], "span"))
        for a, b, kind in pairs:
            verdict = {}   # machine -> (sign, ratio)
            for machine, m in g.groupby("machine"):
                ra, rb = m[m["release"].astype(str) == a], m[m["release"].astype(str) == b]
                if len(ra) and len(rb):
                    ra, rb = ra.iloc[0], rb.iloc[0]
                    sign = int(np.sign(rb["median_us"] - ra["median_us"])) if _beyond(ra, rb) else 0
                    verdict[machine] = (sign, rb["median_us"] / ra["median_us"])
            for sign in (1, -1):
                on = sorted(m for m, (v, _) in verdict.items() if v == sign)
                if on:
                    out.append({"model": model, "path": path, "onednn": onednn, "from": a, "to": b, "kind": kind,
                                "ratio": float(np.median([verdict[m][1] for m in on])),
                                "direction": "slower" if sign > 0 else "faster", "holds": len(on) == len(verdict),
                                "on": on, "not_on": sorted(set(verdict) - set(on))})
    return pd.DataFrame(out, columns=cols)


def rss_growth(frame: pd.DataFrame, name: str = "default") -> list[dict]:
    """How much resident memory grew over repeated `predict` calls, per machine and release (one process each: a
    measurement, not an interval): [{machine, model, calls, at: [(release, MB)]}] for the model the stage read RSS
    on (empty when none)."""
    s = series(frame, name)
    if "rss_n_mb" not in s:
        return []
    s = s[(s["path"] == "predict") & (s["onednn"] == "on")].dropna(subset=["rss_1_mb", "rss_n_mb"])
    out = []
    for machine, m in s.groupby("machine"):
        model = m["model"].iloc[0]
        m = m[m["model"] == model].assign(growth=lambda d: d["rss_n_mb"] - d["rss_1_mb"])
        at = [(r, float(g["growth"].median())) for r, g in sorted(m.groupby(m["release"].astype(str)),
                                                                  key=lambda kv: release_key(kv[0]))]
        out.append({"machine": machine, "model": model, "calls": int(m["rss_n_calls"].max()), "at": at})
    return out


def keras_gap(frame: pd.DataFrame, model: str) -> list[dict]:
    """Keras 3 against Keras 2 (tf_keras) in the newest release that has both, per machine and path of `model`
    (oneDNN on): {machine, path, release, k2, k3, ratio, measurable}."""
    k2, k3 = series(frame, "2"), series(frame, "3")
    both = sorted(set(k2["release"].astype(str)) & set(k3["release"].astype(str)), key=release_key)
    if not both:
        return []
    rel, out = both[-1], []
    pick = lambda s, machine, path: s[(s["machine"] == machine) & (s["model"] == model) & (s["path"] == path)
                                      & (s["onednn"] == "on") & (s["release"].astype(str) == rel)]
    for machine in sorted(set(k2["machine"]) & set(k3["machine"])):
        for path in KEY_PATHS:
            a, b = pick(k2, machine, path), pick(k3, machine, path)
            if len(a) and len(b):
                a, b = a.iloc[0], b.iloc[0]
                out.append({"machine": machine, "path": PATH_LABELS.get(path, path), "release": rel,
                            "k2": a["median_us"], "k3": b["median_us"], "ratio": b["median_us"] / a["median_us"],
                            "measurable": _beyond(a, b)})
    return out


def latency_at(frame: pd.DataFrame, model: str, path: str, release: str, machine: str, name: str = "default") -> float:
    s = series(frame, name)
    s = s[(s["machine"] == machine) & (s["model"] == model) & (s["path"] == path) & (s["onednn"] == "on")
          & (s["release"].astype(str) == release)]
    return float(s["median_us"].median()) if len(s) else np.nan


def _largest(ch: pd.DataFrame) -> pd.DataFrame:
    return ch.assign(size=lambda d: np.log(d["ratio"].astype(float)).abs()).sort_values("size", ascending=False)


def finding(frame: pd.DataFrame, top: int = 4) -> str:
    """The section's lead: the largest changes measurable on every machine (steps first), then those measurable on
    some machines only (named), else "no measurable change"."""
    if frame.empty:
        return "*Not measured in this run:* no `versions.csv` (the version stage, `make versions`, did not run)."
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, "path", "reason", "parity"])))
    ok = frame[frame["status"] == "ok"]
    failed = frame[(frame["status"] != "ok") & frame["path"].isna()]
    rels = sorted(ok["release"].astype(str).unique(), key=release_key)
    machines = sorted(ok["machine"].unique())
    ch = changes(frame, "default")
    holds = ch["holds"].astype(bool)
    held, split = ch[holds], ch[~holds]
    steps = _largest(held[held["kind"] == "step"])
    spans = _largest(held[held["kind"] == "span"])
    split = _largest(split)
    model = "cnn_seed" if "cnn_seed" in set(ok["model"]) else (ok["model"].iloc[0] if len(ok) else "")
    advice = []
    for machine in machines if model else []:
        for path in KEY_PATHS:
            at = [(r, latency_at(frame, model, path, r, machine)) for r in rels]
            at = [(r, v) for r, v in at if np.isfinite(v)]
            if at:
                advice.append({"path": PATH_LABELS.get(path, path), "model": model, "machine": machine, "at": at})
    return render("versions", releases=rels, machines=machines, steps=steps.head(top).to_dict("records"),
                  n_steps=len(steps), spans=spans.head(top).to_dict("records"), n_spans=len(spans),
                  split=split.head(top).to_dict("records"), n_split=len(split),
                  labels=PATH_LABELS, series=SERIES["default"], advice=advice, rss=rss_growth(frame),
                  gap=keras_gap(frame, model) if model else [],
                  failed=failed[["release", "reason"]].drop_duplicates().to_dict("records"),
                  parity_ok=int((ok["parity"] == "pass").sum()), n_ok=len(ok))


def section_text(R) -> str:
    """The registry's renderer (``overhead.base.tables``): :func:`finding` over every machine's versions.csv."""
    frame = R.raw.get("versions")
    return finding(frame if frame is not None else pd.DataFrame())


def fig_latency(frame: pd.DataFrame, machine: str | None = None):
    """Latency (median, 95 % interval) per path across releases, one panel per model; oneDNN on, the Keras each
    release installs. Returns (figure, alt text)."""
    s = series(frame, "default")
    s = s[s["onednn"] == "on"]
    if machine is not None and machine in set(s["machine"]):
        s = s[s["machine"] == machine]
    elif len(s):
        machine = sorted(s["machine"].unique())[0]
        s = s[s["machine"] == machine]
    models = list(dict.fromkeys(s.sort_values("median_us")["model"])) if len(s) else []
    fig = plotkit._fig(max(6.0, 4.2 * max(1, len(models))), 4.2)
    axes = fig.subplots(1, max(1, len(models)), squeeze=False)[0]
    rels = sorted(s["release"].astype(str).unique(), key=release_key) if len(s) else []
    pos = {r: i for i, r in enumerate(rels)}
    for ax, model in zip(axes, models):
        g = s[s["model"] == model]
        for path in PATH_LABELS:
            p = g[g["path"] == path].assign(x=lambda d: d["release"].astype(str).map(pos)).sort_values("x")
            if p.empty:
                continue
            lo = (p["median_us"] - p["ci_lo_us"]).clip(lower=0)
            hi = (p["ci_hi_us"] - p["median_us"]).clip(lower=0)
            ax.errorbar(p["x"], p["median_us"], yerr=[lo, hi], marker="o", ms=3, capsize=2,
                        label=PATH_LABELS[path])
        ax.set_yscale("log")
        ax.set_xticks(range(len(rels)), rels, rotation=45)
        ax.set_title(model)
        ax.set_xlabel("TensorFlow release")
    axes[0].set_ylabel("latency per call, batch 1, 1 thread (µs)")
    if models:
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    else:
        axes[0].text(0.5, 0.5, "no version results", ha="center", va="center", transform=axes[0].transAxes)
    alt = (f"Latency per inference path across TensorFlow releases {', '.join(rels) or 'none'} on {machine}, "
           f"one panel per model ({', '.join(models) or 'none'}), log scale, median with 95 % interval")
    return fig, alt


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median latency per model x path (rows) and release (columns), the default Keras, oneDNN on."""
    s = series(frame, "default")
    s = s[s["onednn"] == "on"]
    if s.empty:
        return s
    t = s.pivot_table(index=["machine", "model", "path"], columns="release", values="median_us", aggfunc="median")
    return t[sorted(t.columns, key=release_key)].apply(lambda col: col.map(g3))  # three significant figures
