"""Run a notebook with papermill into a temporary folder (the smoke tests' one helper)."""
import nbformat
import papermill as pm

from overhead import config


def run_notebook(name: str, out_dir, **parameters):
    out = out_dir / name
    pm.execute_notebook(str(config.NOTEBOOKS / name), str(out), parameters=parameters,
                        progress_bar=False, log_output=False, cwd=str(config.NOTEBOOKS))
    return nbformat.read(out, as_version=4)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)
