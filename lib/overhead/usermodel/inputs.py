"""Inputs for a user's model: generated from its signature, or read from ``--inputs FILE.npz``.

A batch is a list of arrays, one per model input, in the signature's order. Generated inputs are
uniform in [0, 1) for float inputs, valid token ids for inputs that feed an ``Embedding`` (and
0..9 for other integer inputs), random booleans for bool inputs; they carry no labels. An ``.npz``
file holds one array per model input, named after the input (a one-input model takes any single
name; ``np.savez(f, a, b)`` positional names are taken in input order), plus optional ``labels``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from overhead.usermodel.signature import Signature, SignatureError

INT_RANGE = 10  # generated values for an integer input whose vocabulary is unknown
LABEL_KEYS = ("labels",)


class InputsError(SignatureError):
    """An --inputs file that does not fit the model; one line naming the problem and the fix."""


def generate(sig: Signature, shapes, n: int, seed: int = 0) -> list[np.ndarray]:
    """n samples per input, drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    out = []
    for spec, shape in zip(sig.inputs, shapes):
        size = (int(n), *shape)
        dtype = np.dtype(spec.dtype)
        if spec.vocab:
            arr = rng.integers(0, spec.vocab, size=size).astype(dtype)
        elif dtype.kind in "iu":
            arr = rng.integers(0, INT_RANGE, size=size).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.random(size) < 0.5
        elif dtype.kind == "f":
            arr = rng.random(size, dtype=np.float64).astype(dtype)
        else:
            raise SignatureError(f"model input '{spec.name}' has dtype {spec.dtype}, which cannot be generated; "
                                 "pass real inputs with --inputs FILE.npz")
        out.append(arr)
    return out


def load_npz(path, sig: Signature, shapes=None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(arrays in input order, labels or None) from an .npz file, validated against the signature.

    ``shapes`` are the concrete per-sample shapes (from :func:`overhead.usermodel.signature.resolve`); without
    them, dynamic dimensions take whatever the file holds (the same for every sample).
    """
    where = f"--inputs {path}"
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputsError(f"{where}: file not found; pass an .npz written with np.savez(FILE, "
                          f"{_example(sig)})")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputsError(f"{where} is not an .npz file NumPy can read ({text}); write one with "
                          f"np.savez(FILE, {_example(sig)})") from None
    labels = None
    for key in LABEL_KEYS:
        if key in arrays:
            labels = arrays.pop(key)
    named = _match(arrays, sig, where)
    xs, count = [], None
    for spec, i in zip(sig.inputs, range(len(sig.inputs))):
        arr = named[spec.name]
        want = tuple(shapes[i]) if shapes is not None else spec.shape
        if arr.ndim != len(want) + 1 or any(w is not None and w != a for w, a in zip(want, arr.shape[1:])):
            raise InputsError(f"{where}: array for input '{spec.name}' has shape {tuple(arr.shape)} but the "
                              f"model takes {_text(want)}; the first axis counts samples")
        if count is None:
            count = arr.shape[0]
        elif arr.shape[0] != count:
            raise InputsError(f"{where}: inputs hold different numbers of samples ({count} and {arr.shape[0]} "
                              f"for '{spec.name}'); give every input the same first axis")
        xs.append(_cast(arr, spec, where))
    if not count:
        raise InputsError(f"{where} holds no samples (first axis is 0); save at least one sample per input")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != count or labels.dtype.kind not in "iu":
            raise InputsError(f"{where}: 'labels' must be {count} integer class ids (one per sample), got "
                              f"{labels.dtype} of shape {tuple(labels.shape)}; or leave labels out")
    return xs, labels


def _text(shape) -> str:
    return "(batch, " + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _example(sig: Signature) -> str:
    return ", ".join(f"{name}=array" for name in sig.names) or "x=array"


def _match(arrays: dict, sig: Signature, where: str) -> dict:
    names = sig.names
    if not arrays:
        raise InputsError(f"{where} holds no input arrays; save one per model input: np.savez(FILE, "
                          f"{_example(sig)})")
    if len(names) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    positional = [f"arr_{i}" for i in range(len(arrays))]
    if sorted(arrays) == sorted(positional) and len(arrays) == len(names):
        return {name: arrays[f"arr_{i}"] for i, name in enumerate(names)}
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names]
    if missing or extra:
        have = ", ".join(sorted(arrays))
        problem = (f"has no array for model input(s) {', '.join(repr(m) for m in missing)}" if missing else
                   f"has array(s) {', '.join(repr(e) for e in extra)} that match no model input")
        raise InputsError(f"{where} {problem} (it holds: {have}); name one array per input and optionally "
                          f"'labels': np.savez(FILE, {_example(sig)})")
    return arrays


def _cast(arr: np.ndarray, spec, where: str) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if arr.dtype.kind not in "biuf":
        raise InputsError(f"{where}: array for input '{spec.name}' has dtype {arr.dtype}; the model takes "
                          f"{dtype.name} numbers")
    if spec.vocab or dtype.kind in "iu":
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise InputsError(f"{where}: input '{spec.name}' takes integer ids but the array holds fractional "
                              "values; save integer ids")
        if spec.vocab and arr.size and (arr.min() < 0 or arr.max() >= spec.vocab):
            raise InputsError(f"{where}: input '{spec.name}' feeds an Embedding of {spec.vocab} tokens but its "
                              f"ids span {arr.min()}..{arr.max()}; keep ids in 0..{spec.vocab - 1}")
    return np.ascontiguousarray(arr.astype(dtype, copy=False))


def take(xs: list[np.ndarray], n: int, start: int = 0) -> list[np.ndarray]:
    """n samples of every input from position start, cycling through the file when it holds fewer."""
    count = xs[0].shape[0]
    idx = (np.arange(n) + start) % count
    return [np.ascontiguousarray(x[idx]) for x in xs]


def take_labels(labels, n: int, start: int = 0):
    if labels is None:
        return None
    return labels[(np.arange(n) + start) % labels.shape[0]]
