"""Section "Under load: MLPerf LoadGen, in process and over HTTP": its finding (the renderer of ``loadgen.csv``).
The tables and figures it shows are shared with the LoadGen stage notebook: ``overhead.report.underload`` and
``overhead.report.underload_http``."""
from __future__ import annotations

from overhead.report import underload_http
from overhead.report.fmt import (
    NOT_MEASURED,
    have,
)


def loadgen_text(R) -> str:
    """The under-load section's finding (``overhead.report.underload_http.lead_sentence``: the web payload
    against the inference, or without HTTP runs whether the fastest path changes under load), or that
    loadgen.csv is absent."""
    lg = have(R, "loadgen")
    return NOT_MEASURED.format("loadgen.csv") if lg is None else underload_http.lead_sentence(lg)
