"""Section "The architectures people ship": the ladder's Keras Applications models (depthwise convolutions,
squeeze-and-excitation, dozens of small layers) against the plain CNNs and ResNets of the same FLOPs, path by
path and machine by machine. A plain net's latency at an application's FLOPs is interpolated in log FLOPs / log
latency between the two plain ladder models that bracket them: measured neighbours, no fitted line."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from overhead.base.paths import reduced_precision
from overhead.harness.targets import BEYOND, LITERT_GOAL, TF_FUNCTION_GOAL, band, verdict
from overhead.ladder.families import FAMILIES
from overhead.ladder.models import APPLICATIONS, LADDER
from overhead.report import crossing
from overhead.report.fmt import NOT_MEASURED, code, fmt_flops, fmt_pct, fmt_x, g3
from overhead.report.style import order_backends

PATHS = ("keras.predict", "keras.call", "tf.function", "numpy", "litert", "onnxruntime", "openvino")
OVERHEAD_PATH, COMPUTE_REF = "keras.predict", "tf.function"   # whose overhead share, against which compute
COLUMNS = ["machine", "model", "flops", "backend", "median_us", "plain_us", "ratio", "below", "above"]


def plain_at(rows: pd.DataFrame, flops: float):
    """(latency µs, model below, model above) of the plain models in ``rows`` (one machine and path) at
    ``flops``, interpolated between the two that bracket it; None when no plain model lies on one side."""
    g = rows.sort_values("flops")
    below, above = g[g["flops"] <= flops], g[g["flops"] > flops]
    if not len(below) or not len(above):
        return None
    a, b = below.iloc[-1], above.iloc[0]
    t = (np.log(flops) - np.log(a["flops"])) / (np.log(b["flops"]) - np.log(a["flops"]))
    us = np.exp(np.log(float(a["median_us"])) + t * (np.log(float(b["median_us"])) - np.log(float(a["median_us"]))))
    return float(us), a["model"], b["model"]


def machines_with(R) -> list:
    """The machines whose sweep ran at least one application model, the report's machine first."""
    s = R.every("sweep")
    if not len(s):
        return []
    have = set(s.loc[s["model"].isin(APPLICATIONS), "machine"])
    return [m for m in [R.machine, *R.others()] if m in have]


def table(R) -> pd.DataFrame:
    """One row per machine, application model and path (:data:`PATHS`, those measured): its batch-1 latency,
    the plain ladder's at the same FLOPs (:func:`plain_at`) and their ratio."""
    s, rows = R.every("sweep"), []
    for m in machines_with(R):
        sm = s[s["machine"] == m]
        plain = sm[sm["model"].isin(LADDER) & ~sm["model"].isin(APPLICATIONS)]
        for app in [a for a in APPLICATIONS if a in set(sm["model"])]:
            for backend in order_backends([b for b in PATHS if b in set(sm["backend"])]):
                hit = sm[(sm["model"] == app) & (sm["backend"] == backend)]
                near = plain_at(plain[plain["backend"] == backend], float(hit["flops"].iloc[0])) if len(hit) else None
                if near is None:
                    continue
                us = float(hit["median_us"].iloc[0])
                rows.append({"machine": m, "model": app, "flops": float(hit["flops"].iloc[0]), "backend": backend,
                             "median_us": us, "plain_us": near[0], "ratio": us / near[0], "below": near[1],
                             "above": near[2]})
    return pd.DataFrame(rows, columns=COLUMNS)


def overhead_shares(R, machine: str) -> dict:
    """{model: share} of :data:`OVERHEAD_PATH`'s call that is overhead (``crossing.share_curve`` against
    :data:`COMPUTE_REF`, measured) on ``machine``."""
    s = R.every("sweep")
    c = crossing.share_curve(s[s["machine"] == machine], OVERHEAD_PATH, compute_ref=COMPUTE_REF)
    return dict(zip(c["model"], c["share"].astype(float))) if "share" in c else {}


def text(R) -> str:
    """The section's finding: per machine and application model, how much slower than plain nets of its FLOPs it
    runs (the range over paths), how much of a predict call is still overhead there, and the NumPy engine against
    LiteRT; the machines whose sweep predates these models are named."""
    t = table(R)
    if not len(t):
        return ("*Not measured in this run:* no sweep ran the ladder's Keras Applications models "
                f"({', '.join(code(a) for a in APPLICATIONS)}).")
    out, shares_on = [], {m: overhead_shares(R, m) for m in t["machine"].unique()}
    for (m, app), g in t.groupby(["machine", "model"], sort=False):
        lo, hi = g.loc[g["ratio"].idxmin()], g.loc[g["ratio"].idxmax()]
        first = (f"On {m}, {code(app)} ({fmt_flops(g['flops'].iloc[0])}) takes {fmt_x(lo['ratio'])} ({code(lo['backend'])}) "
                 f"to {fmt_x(hi['ratio'])} ({code(hi['backend'])}) the time of plain nets of its FLOPs (interpolated "
                 f"between {code(lo['below'])} and {code(lo['above'])}).")
        shares = shares_on[m]
        if app in shares and lo["below"] in shares and lo["above"] in shares:
            first += (f" {code(OVERHEAD_PATH)}'s overhead is {fmt_pct(shares[app])} of a call on it, against "
                      f"{fmt_pct(shares[lo['below']])} and {fmt_pct(shares[lo['above']])} on those two.")
        by = g.set_index("backend")["median_us"]
        if {"numpy", "litert"} <= set(by.index):
            first += f" The NumPy engine takes {fmt_x(by['numpy'] / by['litert'])} LiteRT's time on it."
        out.append(first)
    missing = [m for m in R.machines if m not in set(t["machine"])]
    if missing:
        out.append(f"Not measured on {', '.join(missing)}: {'its sweep predates' if len(missing) == 1 else 'their sweeps predate'} "
                   "these models.")
    return " ".join(out)


def reader_table(R) -> pd.DataFrame:
    """:func:`table` for a reader: three significant figures, the plain neighbours named."""
    t = table(R)
    if not len(t):
        return t
    return pd.DataFrame({"machine": t["machine"], "model": t["model"], "FLOPs": t["flops"].map(fmt_flops),
                         "path": t["backend"], "latency (µs)": t["median_us"].map(g3),
                         "plain nets at these FLOPs (µs, interpolated)": t["plain_us"].map(g3),
                         "ratio": t["ratio"].map(fmt_x), "between": t["below"] + " and " + t["above"]})


# ---------------------------------------------------------------- every path on the families (apps.csv) ----
def _cell(row) -> str:
    if row["parity"] == "pass":
        return "ok"
    return "differs" if row["parity"] == "fail" else str(row["status"])


_NUMBERED = re.compile(r"'([A-Za-z][\w]*?)_\d+'")  # Keras's second and later layers: 'activation_207'
_PARITY = re.compile(r"^parity: (\w+) (\S+) > (\S+)$")


def _cause(reason) -> tuple[str, str]:
    """(cause, detail) of an apps.csv reason: its first clause with Keras's layer numbering dropped, so one
    cause on several families is one item; a parity failure's measured error is the detail."""
    first = str(reason if isinstance(reason, str) else "").split("; ")[0]
    hit = _PARITY.match(first)
    if hit:
        return f"parity: {hit.group(1)} above {hit.group(3)}", hit.group(2)
    first = _NUMBERED.sub(r"'\1'", first).split(". ")[0]
    return (first if len(first) <= 140 else first[:139] + "…"), ""


def families_text(R) -> str:
    """Per machine with ``apps.csv``: how many family × path pairs run and agree with Keras, the NumPy engine's
    count, and each path that fails or is skipped with the families and the reason it gave."""
    a = R.every("apps")
    if not len(a):
        return NOT_MEASURED.format("apps.csv")
    out = []
    for m, g in a.groupby("machine", sort=False):
        ok = g["parity"] == "pass"
        engine = g[g["backend"] == "numpy"]
        out.append(f"On {m}, {int(ok.sum())} of {len(g)} family × path pairs run and agree with Keras "
                   f"({g['family'].nunique()} families, {g['backend'].nunique()} paths, batch 1); the NumPy engine on "
                   f"{int((engine['parity'] == 'pass').sum())} of {len(engine)} families.")
        causes = g.loc[~ok, "reason"].map(_cause)
        bad = g[~ok].assign(first=causes.str[0], detail=causes.str[1])
        lossy = bad["backend"].map(reduced_precision) & (bad["parity"] == "fail")
        failed = bad[~lossy].assign(families=lambda t: t.groupby(["backend", "first"], sort=False)["family"]
                                    .transform(lambda f: ", ".join(f)))
        items = [f"{', '.join(code(b) for b in h['backend'].unique())} on {fams} ({_cell(h.iloc[0])}: "
                 f"{r or 'no reason given'})" for (r, fams), h in failed.groupby(["first", "families"], sort=False)]
        if items:
            out.append("Failing or skipped: " + "; ".join(items) + ".")
        items = [f"{code(b)} on " + ", ".join(f"{f} ({d})" for f, d in zip(h["family"], h["detail"]))
                 + f" ({_cell(h.iloc[0])}: {r})"
                 for (b, r), h in bad[lossy].groupby(["backend", "first"], sort=False)]
        if items:
            out.append("Reduced-precision paths beyond their own tolerance (quantised with random inputs on random "
                       "weights: an accuracy question, not a conversion fault): " + "; ".join(items) + ".")
    missing = [m for m in R.machines if m not in set(a["machine"])]
    if missing:
        out.append(f"Not checked on {', '.join(missing)} (no `apps.csv`: run `make apps` there).")
    return " ".join(out)


def families_table(R) -> pd.DataFrame:
    """Family × path on the report's machine (the first with ``apps.csv``): ok, differs, failed or skipped."""
    a = R.every("apps")
    if not len(a):
        return a
    m = R.machine if R.machine in set(a["machine"]) else a["machine"].iloc[0]
    g = a[a["machine"] == m].assign(cell=lambda t: t.apply(_cell, axis=1))
    t = g.pivot_table(index="family", columns="backend", values="cell", aggfunc="first", sort=False)
    return t[order_backends(t.columns)].reset_index()


# ---------------------------------------------------------------- the NumPy engine on the families (enginebench.csv) ----
def _x3(r) -> str:
    return f"{g3(r)}×"


def engine_rows(R) -> pd.DataFrame:
    """enginebench.csv's Applications rows (batch 1), one per machine, BLAS setting and family, with each target's
    ratio, band over the calls' interquartile ranges and verdict (``overhead.experiments.enginebench``)."""
    e = R.every("enginebench")
    if not len(e):
        return e
    e = e[e["model"].isin(FAMILIES) & (e["batch"] == 1)].copy()
    recs = e.to_dict("records")
    if "numpy_floor_us" not in e:  # files measured before the floor was
        e["numpy_floor_us"] = np.nan
    for ref, goal in (("litert", LITERT_GOAL), ("tf_function", TF_FUNCTION_GOAL)):
        bands = [band(r, "numpy", ref) for r in recs]
        floors = [band(r, "numpy_floor", ref) for r in recs]
        e[f"vs_{ref}"] = e["numpy_us"] / e[f"{ref}_us"]
        e[f"floor_{ref}"] = e["numpy_floor_us"] / e[f"{ref}_us"]
        e[f"band_{ref}"] = bands
        e[f"band_floor_{ref}"] = floors
        e[f"verdict_{ref}"] = [verdict(b, goal, f) for b, f in zip(bands, floors)]
    return e


def _setting(g) -> str:
    kernel = g["blas_kernel"].iloc[0] if "blas_kernel" in g and isinstance(g["blas_kernel"].iloc[0], str) else ""
    return f"{g['blas'].iloc[0]}" + (f" (OpenBLAS's {kernel} kernels)" if kernel else "")


def _judged(g, ref: str, goal_text: str) -> str:
    """'n of N families <goal>' with the families in the noise band and the misses named, from the verdicts."""
    v = g[f"verdict_{ref}"]
    ok, noise, miss = g[v == "pass"], g[v == "noise"], g[v == "miss"]
    text = f"{goal_text} on {len(ok)} of {len(g)} families"
    if len(noise):
        text += ("; within the calls' noise of it on " + ", ".join(f"{f} ({_x3(r)})" for f, r in
                                                               zip(noise["model"], noise[f"vs_{ref}"])))
    if len(miss):
        text += "; above it on " + ", ".join(_missed(r, ref) for r in miss.to_dict("records"))
    beyond = g[v == BEYOND]
    if len(beyond):
        text += ("; above it, and so are NumPy's GEMMs, depthwise einsums and activations alone, on "
                 + ", ".join(_missed(r, ref) for r in beyond.to_dict("records")))
    return text


def _missed(r, ref: str) -> str:
    """'MobileNetV2 (3.99×; its NumPy floor 2.71×)': a family above a goal, with the floor's ratio when measured."""
    floor = r.get(f"floor_{ref}")
    extra = f"; its NumPy floor {_x3(floor)}" if floor is not None and np.isfinite(floor) else ""
    return f"{r['model']} ({_x3(r[f'vs_{ref}'])}{extra})"


def engine_text(R) -> str:
    """Per machine and BLAS setting of ``enginebench.csv``: on how many Applications families the NumPy engine is
    within 3× of LiteRT and at or below ``tf.function`` (a target met only when the ratio's whole band over the
    calls' interquartile ranges meets it), the families in the noise and the misses with their ratios, and any
    family whose engine output left the tolerance."""
    e = engine_rows(R)
    if not len(e):
        return NOT_MEASURED.format("enginebench.csv")
    out = []
    for (m, _), g in e.groupby(["machine", "blas"], sort=False):
        threads = int(g["threads"].iloc[0])
        lo, hi = g.loc[g["vs_litert"].idxmin()], g.loc[g["vs_litert"].idxmax()]
        out.append(f"On {m} with {_setting(g)}, at batch 1 on {threads} thread{'s' if threads > 1 else ''} "
                   f"(`make bench`), the NumPy engine takes {_x3(lo['vs_litert'])} ({lo['model']}) to "
                   f"{_x3(hi['vs_litert'])} ({hi['model']}) LiteRT's time: "
                   f"{_judged(g, 'litert', f'within {LITERT_GOAL:g}× of LiteRT')}; "
                   f"{_judged(g, 'tf_function', 'at or below `tf.function`')}.")
        fl = g[np.isfinite(g["floor_litert"])]
        if len(fl):
            flo, fhi = fl.loc[fl["floor_litert"].idxmin()], fl.loc[fl["floor_litert"].idxmax()]
            share = fl["numpy_floor_us"] / fl["numpy_us"]
            out.append(f"Its NumPy floor there, the families' GEMMs, depthwise einsums and activations alone with no "
                       f"copy, bias or Python step, takes {_x3(flo['floor_litert'])} ({flo['model']}) to "
                       f"{_x3(fhi['floor_litert'])} ({fhi['model']}) LiteRT's time, {fmt_pct(share.min())}–"
                       f"{fmt_pct(share.max())} of the engine's{_floor_above_engine(fl[share > 1])}.")
        bad = g[g["err_numpy"] > g["tol"]]
        if len(bad):
            out.append(f"Its output left the tolerance on {', '.join(bad['model'])}.")
    small = ladder_floor_text(R)
    if small:
        out.append(small)
    missing = [m for m in R.machines if m not in set(e["machine"])]
    if missing:
        out.append(f"Not measured on {', '.join(missing)} (no `enginebench.csv`: run `make bench` there).")
    return " ".join(out)


def _floor_above_engine(rows) -> str:
    """The families whose floor's median took longer than the engine's: within the calls' noise when the two
    bands against LiteRT overlap, otherwise named as cases where the floor is no floor."""
    if not len(rows):
        return ""
    parts = []
    for r in rows.to_dict("records"):
        fb, eb = r["band_floor_litert"], r["band_litert"]
        noise = fb is not None and eb is not None and fb[0] <= eb[1]
        parts.append(f"{r['model']} ({_x3(r['numpy_floor_us'] / r['numpy_us'])} the engine's time: "
                     + ("the calls' noise, their bands overlap)" if noise else "no floor there)"))
    return "; its median is above the engine's on " + ", ".join(parts)


def ladder_floor_text(R) -> str:
    """Per machine and BLAS setting, the ladder's small models in ``enginebench.csv`` (batch 1, below 1 GFLOP,
    judged against LiteRT): the engine's time and its NumPy floor's, both as multiples of LiteRT's; "" when no
    row has a floor."""
    e = R.every("enginebench")
    if not len(e) or "numpy_floor_us" not in e:
        return ""
    e = e[~e["model"].isin(FAMILIES) & (e["batch"] == 1) & (e["flops"] < 1e9) & np.isfinite(e["numpy_floor_us"])]
    out = []
    for (m, _), g in e.groupby(["machine", "blas"], sort=False):
        cases = ", ".join(f"{_x3(r['numpy_us'] / r['litert_us'])} on {r['model']} (floor {_x3(r['numpy_floor_us'] / r['litert_us'])})"
                          for r in g.to_dict("records"))
        out.append(f"On the ladder's small models ({m}, {g['blas'].iloc[0]}) the engine takes {cases} LiteRT's time.")
    return " ".join(out)


def engine_table(R) -> pd.DataFrame:
    """:func:`engine_rows` for a reader: latencies and ratios with three significant figures, bands and verdicts."""
    e = engine_rows(R)
    if not len(e):
        return e

    def ratio(row, ref):
        b = row[f"band_{ref}"]
        return _x3(row[f"vs_{ref}"]) + (f" ({g3(b[0])}–{g3(b[1])}: {row[f'verdict_{ref}']})" if b else "")
    return pd.DataFrame({"machine": e["machine"], "BLAS": e["blas"], "family": e["model"],
                         "engine (µs)": e["numpy_us"].map(g3), "tf.function (µs)": e["tf_function_us"].map(g3),
                         "LiteRT (µs)": e["litert_us"].map(g3),
                         "engine / LiteRT (band: verdict)": e.apply(ratio, axis=1, ref="litert"),
                         "engine / tf.function (band: verdict)": e.apply(ratio, axis=1, ref="tf_function"),
                         "NumPy floor / LiteRT (band)": e.apply(_floor_cell, axis=1)})


def _floor_cell(row) -> str:
    """The NumPy floor's ratio to LiteRT with its band, or "not measured" for files from before it was."""
    if not np.isfinite(row["floor_litert"]):
        return "not measured"
    b = row["band_floor_litert"]
    return _x3(row["floor_litert"]) + (f" ({g3(b[0])}–{g3(b[1])})" if b else "")
