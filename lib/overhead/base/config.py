"""Paths of the study, rooted at the repository. OVERHEAD_DATA moves the data tree (QUICK runs, tests)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIGURES = ROOT / "figures"
REPORTS = ROOT / "reports"
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"


def data_dir(override=None) -> Path:
    """The data tree: an explicit override, else $OVERHEAD_DATA, else <repo>/data."""
    chosen = override or os.environ.get("OVERHEAD_DATA") or (ROOT / "data")
    return Path(chosen).resolve()


def raw_dir(override=None) -> Path:
    return data_dir(override) / "raw"


def models_dir(override=None) -> Path:
    return data_dir(override) / "models"


def artifacts_dir(override=None) -> Path:
    return data_dir(override) / "artifacts"


def results_dir(machine: str, override=None) -> Path:
    return data_dir(override) / "results" / machine
