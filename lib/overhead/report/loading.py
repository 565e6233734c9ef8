"""Reading the result files and the models' metadata: the only part of the report that touches the disk."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd

from overhead.base import tables
from overhead.base.atomic import atomic_write_csv
from overhead.base.modelnames import rename as _rename_models
from overhead.ladder.models import DESCRIPTIONS as _DESCRIPTIONS

# the result files merged over machines, from the one registry (overhead.base.tables)
RESULT_FILES = tables.MERGED
REQUIRED_FILES = tuple(s for s in tables.REQUIRED if s in RESULT_FILES)
# columns that look numeric but are labels: release "2.20" must not become 2.2
TEXT_COLUMNS = {"release": str, "keras": str, "tensorflow": str}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError):
        return {}


def load_results(results_root) -> dict:
    """Merge every machine folder under ``results_root`` (a folder holding result CSVs itself counts as one).

    Every table the registry (``overhead.base.tables``) reads with the ``csv`` loader is read.
    Returns ``{<stem>: df|None for RESULT_FILES, "meta": {machine: {stem: dict}}, "machines": [...]}``;
    a missing or empty file gives ``None``. Rows get the folder name as ``machine`` when it is absent.
    """
    root = Path(results_root)
    folders = []
    if root.is_dir():
        own = any((root / f"{s}.csv").is_file() for s in RESULT_FILES)
        folders = [root] if own else sorted(p for p in root.iterdir() if p.is_dir())
    frames, meta = {s: [] for s in RESULT_FILES}, {}
    for folder in folders:
        name = folder.name
        for stem in RESULT_FILES:
            csv = folder / f"{stem}.csv"
            if csv.is_file() and csv.stat().st_size > 0:
                try:
                    df = pd.read_csv(csv, dtype=TEXT_COLUMNS)
                except pd.errors.EmptyDataError:
                    continue
                if "machine" not in df.columns:
                    df.insert(0, "machine", folder.name)
                df["machine"] = df["machine"].fillna(folder.name).astype(str)
                df = _rename_models(df, _DESCRIPTIONS)  # old ladder names (resnet18_imagenet, ...) -> honest ones
                if stem == "bench" and len(df):
                    name = df["machine"].iloc[0]
                frames[stem].append(df)
        found = {s: _read_json(folder / f"{s}.meta.json") for s in RESULT_FILES
                 if (folder / f"{s}.meta.json").is_file()}
        if found:
            meta[name] = found
    res = {s: (pd.concat(v, ignore_index=True) if v else None) for s, v in frames.items()}
    res["meta"] = meta
    # a machine is one with a benchmark: a folder holding only a side experiment (spread.csv, ...) is not a run
    base = res.get("bench")
    res["machines"] = (sorted(set(base["machine"])) if base is not None and len(base) else
                       sorted({m for s in RESULT_FILES if res[s] is not None for m in res[s]["machine"]}))
    return res


def _count_layers(cfg) -> int:
    """Computing layers in a Keras config (nested models counted through; input layers not counted)."""
    if isinstance(cfg, dict):
        inner = cfg.get("config", {})
        sub = inner.get("layers") if isinstance(inner, dict) else None
        if sub is not None:
            return sum(_count_layers(x) for x in sub)
        return 0 if cfg.get("class_name") == "InputLayer" else 1
    return 0


def layers_in_keras_file(path) -> int | None:
    """Number of layers of a saved ``.keras`` file, read from its ``config.json`` (no Keras import)."""
    try:
        with zipfile.ZipFile(path) as z:
            return _count_layers(json.loads(z.read("config.json")))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def load_models_meta(models_dir) -> pd.DataFrame:
    """One row per ``<name>.json`` in ``models_dir`` (empty frame when there is none), smallest FLOPs first.

    ``layers`` comes from the json when recorded there, else from the ``.keras`` file beside it."""
    folder = Path(models_dir)
    rows = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        d = {"name": p.stem, **_read_json(p)}
        if d.get("layers") is None:
            d["layers"] = layers_in_keras_file(p.with_suffix(".keras"))
        rows.append(d)
    df = _rename_models(pd.DataFrame(rows), _DESCRIPTIONS)
    return df.sort_values("flops", kind="stable").reset_index(drop=True) if "flops" in df else df


def save_models_meta(models_dir, out_dir) -> Path:
    """Write the models' metadata (``load_models_meta``) as ``models.csv`` beside a machine's results, so a
    committed run re-renders without the (git-ignored) trained models."""

    df = load_models_meta(models_dir)
    for col in df.columns:  # lists/dicts (input_shape, …) as JSON text, read back by models_from_results
        if df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return atomic_write_csv(df, Path(out_dir) / "models.csv", index=False)


def models_from_results(results_root, prefer=None) -> pd.DataFrame:
    """The models' metadata from the ``models.csv`` of each machine folder (``prefer``'s first), one row per
    model; an empty frame when no machine has one."""
    root = Path(results_root)
    folders = sorted(p for p in root.glob("*/models.csv")) if root.is_dir() else []
    folders.sort(key=lambda p: p.parent.name != prefer)
    frames = [pd.read_csv(p) for p in folders]
    if not frames:
        return pd.DataFrame()
    df = _rename_models(pd.concat(frames, ignore_index=True), _DESCRIPTIONS).drop_duplicates("name", keep="first")
    return df.sort_values("flops", kind="stable").reset_index(drop=True) if "flops" in df else df


def select_machine(results: dict, machine=None, preferred=None) -> str | None:
    """The machine whose figures are drawn: ``machine`` if given, else ``preferred`` when it has results,
    else the one with the most benchmark rows."""
    machines = results.get("machines") or []
    if machine is not None:
        return str(machine)
    if preferred in machines:
        return preferred
    bench = results.get("bench")
    if bench is not None and len(bench):
        return str(bench["machine"].value_counts().idxmax())
    return machines[0] if machines else None


# how each registry loader reads a machine folder's table (``overhead.base.tables.ResultTable.loader``)
LOADERS = {"csv": "load_results", "models": "models_from_results"}
