"""Section "Under load: MLPerf LoadGen, in process and over HTTP": its finding (the renderer of ``loadgen.csv``).
The tables and figures it shows are shared with the LoadGen stage notebook: ``overhead.report.underload`` and
``overhead.report.underload_http``.

The section shows every machine that published a ``loadgen.csv``, not only the report's machine: LoadGen may
have run on a machine whose sweep is not published, and only a run whose Server points were confirmed by long
runs (>= 10 s) has maxima; older short-run files give upper bounds. Machines with confirmed
maxima come first."""
from __future__ import annotations

import pandas as pd

from overhead.report import underload, underload_http
from overhead.report.fmt import NOT_MEASURED


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
