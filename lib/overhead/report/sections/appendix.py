"""Appendix: the raw tables (a link per committed result CSV), the code of each path (as the sweep recorded it)
and the models the results describe (the registry's renderer for ``models.csv``)."""
from __future__ import annotations

import html
import os
from pathlib import Path


from overhead.base import paths
from overhead.report.fmt import (
    NOT_MEASURED,
    code,
    fmt_flops,
)
from overhead.report.sections.advice import in_words, one_line

PREDATES = ("This run predates source recording (its bench.meta.json has no `timed_code`): each path shows the "
            "catalogue's user code, not the code that was timed.")


def code_appendix(names, recorded=None) -> str:
    """Markdown: for each backend, its one-line change and the code that was timed, as the sweep recorded it
    (``recorded``: ``timed_code`` of the run's bench.meta.json); otherwise the catalogue's snippet, with one line
    saying why (``PREDATES`` once, for a run from before source recording; per path when the run lacks it)."""
    recorded = recorded if isinstance(recorded, dict) else {}
    out = [] if recorded or not names else [f"*{PREDATES}*\n"]
    for b in names:
        out.append(f"#### {b}\n")
        rec, e = recorded.get(b) or {}, paths.entry(b)
        if rec.get("source"):
            where = ", ".join(f"`{w.strip()}`" for w in str(rec.get("where", "")).split(",") if w.strip())
            out.append(f"One-line change: {one_line(b)}.\n\nTimed code ({where or 'as recorded'}):\n\n"
                       f"```python\n{rec['source'].rstrip()}\n```\n")
            continue
        if recorded:
            why = f"no source recorded: {rec['reason']}" if rec.get("reason") else "not timed by this run"
            out.append(f"*Timed code not shown ({why}).*\n")
        if e is not None and e.snippet:
            out.append(f"User code (the catalogue's snippet):\n\n```python\n{e.snippet}\n```\n")
        else:
            out.append(f"One-line change: {in_words(b)} (no runnable snippet).\n")
    return "\n".join(out)


def raw_links(results_root, report_dir, machines=None) -> str:
    """Markdown: per machine, a relative link from the report to each committed result CSV, with its rows."""
    root, rep = Path(results_root), Path(report_dir)
    lines = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if machines and folder.name not in machines:
            continue
        links = []
        for csv in sorted(folder.glob("*.csv")):
            try:
                n = sum(1 for _ in csv.open()) - 1
            except OSError:
                continue
            rel = os.path.relpath(csv.resolve(), rep.resolve()).replace(os.sep, "/")
            links.append(f"[{html.escape(csv.name)}]({rel}) ({n:,} rows)")
        if links:
            lines.append(f"- {code(folder.name)}: " + ", ".join(links))
    if not lines:
        return "*No result files found.*"
    return ("Every table above is computed from these files (their metadata sits beside each as `.meta.json`; "
            "model names are shown under their current names, see `overhead/base/modelnames.py`):\n\n"
            + "\n".join(lines))


def models_text(R) -> str:
    """How many ladder models the results describe (models.csv), smallest to largest."""
    m = R.models
    if not len(m) or "flops" not in m:
        return NOT_MEASURED.format("models.csv")
    m = m.sort_values("flops")
    return (f"{len(m)} models, from {code(m['name'].iloc[0])} ({fmt_flops(m['flops'].iloc[0])}) to "
            f"{code(m['name'].iloc[-1])} ({fmt_flops(m['flops'].iloc[-1])}) per call.")
