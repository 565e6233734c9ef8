"""The `overhead bench` / `check` options for a user's model, checked in the parent (no TensorFlow).

``--inputs FILE.npz`` (one array per model input, optional ``labels``) and ``--input-shape 1x64x64x3``
(sizes of dynamic dimensions) travel to the workers in the job; the workers check them against the
model's signature and report a mismatch as a one-line fatal error (:func:`fatal_message`).
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from overhead.base import config
from overhead.usermodel import modelfile, resources, signature

FATAL_PREFIX = "model could not be loaded: "


class ArgError(ValueError):
    """A bad option value; the message is one line with the fix (the CLI exits with status 2)."""


def add_arguments(parser) -> None:
    parser.add_argument("--inputs", metavar="FILE.npz",
                        help="real inputs: one array per model input (named after it), optional 'labels'")
    parser.add_argument("--input-shape", metavar="1x64x64x3",
                        help="sizes for dynamic input dimensions, comma-separated when several inputs")


def model_path(arg: str) -> Path:
    """A .keras / .h5 file or SavedModel folder, or a ladder model name under data/models/."""

    path = Path(arg).expanduser()
    if not path.exists() and path.suffix == "" and (config.models_dir() / f"{arg}.keras").exists():
        path = config.models_dir() / f"{arg}.keras"
    try:
        return modelfile.detect(path if path.exists() else arg)[0]
    except modelfile.ModelFileError as exc:
        raise ArgError(str(exc)) from None


def job_args(args) -> dict:
    """{"input_shape": ..., "inputs": ...} for the workers, after the checks the parent can make."""
    out = {}
    if getattr(args, "input_shape", None) is not None:
        try:
            signature.parse_input_shape(args.input_shape)
        except signature.SignatureError as exc:
            raise ArgError(str(exc)) from None
        out["input_shape"] = args.input_shape
    if getattr(args, "inputs", None) is not None:
        p = Path(args.inputs).expanduser()
        if not p.is_file():
            raise ArgError(f"--inputs {args.inputs}: file not found; pass an .npz written with "
                           "np.savez('inputs.npz', <input name>=array, ...)")
        if not zipfile.is_zipfile(p):
            raise ArgError(f"--inputs {args.inputs} is not an .npz file (not a zip archive); write one with "
                           "np.savez('inputs.npz', <input name>=array, ...)")
        out["inputs"] = str(p.resolve())
    return out


def warn_threads(threads, stream=None) -> list[str]:
    """Print (and return) one warning line per thread setting above this machine's cores."""
    lines = [w for w in (resources.threads_warning(t) for t in threads) if w]
    for line in lines:
        print(f"overhead: {line}", file=stream or sys.stderr)
    return lines


def fatal_message(rows) -> str | None:
    """The one line to print when the worker refused the model or its inputs (first such row)."""
    for r in rows:
        reason = str(r.get("reason", ""))
        if reason.startswith(FATAL_PREFIX):
            text = reason[len(FATAL_PREFIX):]
            if text.startswith(("model input ", "--input")):  # the inputs do not fit the model
                return f"{r.get('model')}: {text}"
            return f"cannot load model {r.get('model')}: {text}"
    return None
