"""Run a notebook with papermill into a temporary folder (the smoke tests' one helper).

Notebooks are jupytext percent sources (notebooks/NN_name.py); the helper converts the source to .ipynb
first, as the Makefile does, then executes that copy. `name` may be given as NN_name.py or NN_name.ipynb.
The study design is params/quick.yaml's (what `make QUICK=1` passes with papermill -f), with the test's
tiny overrides merged in (`{"loadgen": {"paths": ["numpy"]}}`).
"""
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import yaml

from overhead.base import config, settings


def source(name: str) -> Path:
    """The jupytext source of notebook `name` (with or without a suffix)."""
    return config.NOTEBOOKS / f"{Path(name).stem}.py"


def to_ipynb(name: str, out_dir) -> Path:
    """Convert the .py source to an unexecuted .ipynb in out_dir (what `jupytext --to ipynb` writes)."""
    out = Path(out_dir) / f"{Path(name).stem}.source.ipynb"
    nbformat.write(jupytext.read(source(name)), out)
    return out


def quick_study(overrides=None) -> dict:
    """params/quick.yaml's study, `overrides` merged in section by section (checked: a typo fails here)."""
    study = settings.merged(yaml.safe_load(settings.QUICK_YAML.read_text())["study"], overrides or {})
    settings.Settings.from_dict(study)
    return study


def run_notebook(name: str, out_dir, study=None, **parameters):
    """Execute the notebook with the quick study (+ `study` overrides) and `parameters` (data_dir, machine, ...)."""
    out = Path(out_dir) / f"{Path(name).stem}.ipynb"
    parameters = {"study": quick_study(study), **parameters}
    pm.execute_notebook(str(to_ipynb(name, out_dir)), str(out), parameters=parameters,
                        progress_bar=False, log_output=False, cwd=str(config.NOTEBOOKS))
    return nbformat.read(out, as_version=4)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)
