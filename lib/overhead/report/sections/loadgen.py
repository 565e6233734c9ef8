"""Section "Under load: MLPerf LoadGen, in process and over HTTP": its finding (the renderer of ``loadgen.csv``).
The tables and figures it shows are shared with the LoadGen stage notebook: ``overhead.report.underload`` and
``overhead.report.underload_http``.

The section shows every machine that published a ``loadgen.csv``, not only the report's machine: LoadGen may
have run on a machine whose sweep is not published, and only a run whose Server points were confirmed by long
runs (>= 10 s) has maxima; older short-run files give upper bounds. Machines with confirmed
maxima come first."""
from __future__ import annotations

import numpy as np
import pandas as pd

from overhead.report import underload, underload_http
from overhead.report.fmt import NOT_MEASURED, code, g3


def loadgen_machines(R) -> list[tuple[str, pd.DataFrame]]:
    """(machine, its loadgen rows) for every machine with a loadgen.csv: machines whose Server maxima were
    confirmed by long runs first, then the report's machine, then by name."""
    lg = R.every("loadgen")
    if not len(lg):
        return []
    if "machine" not in lg.columns:
        return [(R.machine, lg)]

    groups = [(m, g) for m, g in lg.groupby("machine", sort=True)]
    return sorted(groups, key=lambda mg: (not has_confirmed_maxima(mg[1]), mg[0] != R.machine, mg[0]))


def has_confirmed_maxima(frame: pd.DataFrame) -> bool:
    """Whether a machine publishes any in-process Server maximum (a VALID run of >= ``underload.CONFIRM_MIN_S``;
    else its Server figures are short-run upper bounds)."""
    cap = underload.server_capacity(frame)
    return bool((cap["max_kind"] == "maximum").any()) if len(cap) else False


def machine_heading(machine: str, frame: pd.DataFrame) -> str:
    kind = ("Server maxima from runs of at least 10 s" if has_confirmed_maxima(frame)
            else "Server figures from 0.5 s runs only: upper bounds, not maxima")
    return f"**On `{machine}`** ({kind})."


def loadgen_text(R) -> str:
    """The under-load section's finding (``overhead.report.underload_http.lead_sentence``: the web payload
    against the inference, or without HTTP runs whether the fastest path changes under load) on each machine
    of :func:`loadgen_machines`, in that order, or that loadgen.csv is absent."""
    machines = loadgen_machines(R)
    if not machines:
        return NOT_MEASURED.format("loadgen.csv")
    if len(machines) == 1:
        return underload_http.lead_sentence(machines[0][1])
    # every machine's finding, the one with long-run maxima first (a finding that differs between machines names them)
    return " ".join(f"On `{m}`: {underload_http.lead_sentence(frame)}" for m, frame in machines)


def _maxima(frame: pd.DataFrame) -> pd.DataFrame:
    """Long-run Server maxima in process, one worker thread: (machine, model, path) -> max_qps."""
    rows = []
    for m, g in frame.groupby("machine") if len(frame) and "machine" in frame else ():
        cap = underload.server_capacity(g)
        cap = cap[cap["max_qps"] > 0] if len(cap) else cap
        rows += [{"machine": m, "model": r["model"], "path": r["path"], "max_qps": r["max_qps"]}
                 for r in cap.to_dict("records")]
    return pd.DataFrame(rows, columns=["machine", "model", "path", "max_qps"])


def rerun_spread(R) -> pd.DataFrame:
    """The between-run spread of the Server maxima where a machine ran the LoadGen stage twice (``loadgen.csv`` and
    ``loadgen_repeat.csv``): per (machine, model, path) both maxima and ``spread`` = larger / smaller - 1."""
    a, b = _maxima(R.every("loadgen")), _maxima(R.every("loadgen_repeat"))
    both = a.merge(b, on=["machine", "model", "path"], suffixes=("", "_rerun"))
    hi = both[["max_qps", "max_qps_rerun"]].max(axis=1)
    lo = both[["max_qps", "max_qps_rerun"]].min(axis=1)
    return both.assign(spread=hi / lo - 1)


def capacity_spread(spreads: pd.DataFrame, machine: str, model: str, path: str) -> tuple[float, str]:
    """The between-run spread a capacity comparison on `machine` takes for `path` on `model`, from `spreads`
    (:func:`rerun_spread`): that machine's own rerun where it has one, else the largest measured on a machine that
    reran the stage (borrowed), else 0 (no rerun anywhere: the bisection's bracket is the only interval).
    Returns (spread, where it comes from)."""
    sp = spreads[(spreads["model"] == model) & (spreads["path"] == path)]
    own = sp[sp["machine"] == machine]
    if len(own):
        return float(own["spread"].iloc[0]), machine
    if len(sp):
        return float(sp["spread"].max()), str(sp.loc[sp["spread"].idxmax(), "machine"])
    return 0.0, ""


def repeat_text(R) -> str:
    """The rerun's finding: how far a second full run of the LoadGen stage on the same machine moved the Server
    maxima (the between-run spread the advice's capacity comparisons take on top of each bisection's bracket)."""
    sp = rerun_spread(R)
    if not len(sp):
        return NOT_MEASURED.format("loadgen_repeat.csv (a rerun of the LoadGen stage)")
    parts = []
    for (m, model), g in sp.groupby(["machine", "model"], sort=False):
        top = g.loc[g["spread"].idxmax()]
        parts.append(f"on `{m}`, {code(model)}: the maxima of {len(g)} paths moved by a median of "
                     f"{g3(100 * float(np.median(g['spread'])))} % and at most {g3(1 + top['spread'])}x "
                     f"({code(top['path'])}: {g3(top['max_qps_rerun'])} then {g3(top['max_qps'])} QPS)")
    return ("A second full run of the LoadGen stage, " + "; ".join(parts) + ". One bisection's bracket (the highest "
            "rate that held, the lowest that failed) does not capture this, so every comparison of Server maxima "
            "in the advice also takes the rerun's spread of both paths (a machine without a rerun borrows the "
            "largest measured on one that has it).")
