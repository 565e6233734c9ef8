"""Run a notebook with papermill into a temporary folder (the smoke tests' one helper).

Notebooks are jupytext percent sources (notebooks/NN_name.py); the helper converts the source to .ipynb
first, as the Makefile does, then executes that copy. `name` may be given as NN_name.py or NN_name.ipynb.
"""
from pathlib import Path

import jupytext
import nbformat
import papermill as pm

from overhead.base import config


def source(name: str) -> Path:
    """The jupytext source of notebook `name` (with or without a suffix)."""
    return config.NOTEBOOKS / f"{Path(name).stem}.py"


def to_ipynb(name: str, out_dir) -> Path:
    """Convert the .py source to an unexecuted .ipynb in out_dir (what `jupytext --to ipynb` writes)."""
    out = Path(out_dir) / f"{Path(name).stem}.source.ipynb"
    nbformat.write(jupytext.read(source(name)), out)
    return out


def run_notebook(name: str, out_dir, **parameters):
    out = Path(out_dir) / f"{Path(name).stem}.ipynb"
    pm.execute_notebook(str(to_ipynb(name, out_dir)), str(out), parameters=parameters,
                        progress_bar=False, log_output=False, cwd=str(config.NOTEBOOKS))
    return nbformat.read(out, as_version=4)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)
