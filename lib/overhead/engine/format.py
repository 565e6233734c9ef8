"""The engine file: one .npz holding a small versioned JSON plan plus the float32 weight arrays.

Readable with ``np.load(path, allow_pickle=False)``: the plan is the uint8 array ``__plan__`` (UTF-8
JSON), each weight an array ``w<i>`` the plan refers to as ``{"__array__": "w<i>"}`` with its shape.
No pickle anywhere. Loading imports NumPy and the engine only (never TensorFlow or Keras).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from overhead.base.atomic import atomic_write_bytes
from overhead.engine.ops import Op

FORMAT = "overhead-engine"
VERSION = 1
_PLAN_KEY = "__plan__"
_KINDS = ("conv", "dwconv", "dense", "scale_shift", "act", "merge", "concat", "zeropad", "pool",
          "gpool", "reshape", "identity", "layernorm", "crop")


class EngineFileError(ValueError):
    """An engine file that cannot be loaded: missing, truncated/corrupt, newer format, bad arrays."""


def _encode(value, arrays: dict):
    if isinstance(value, np.ndarray):
        name = f"w{len(arrays)}"
        arr = arrays[name] = np.array(value, dtype=np.float32, order="C")
        return {"__array__": name, "shape": list(arr.shape)}
    if isinstance(value, (tuple, list)):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in an engine file")


def to_bytes(net) -> bytes:
    """The engine file of `net` as bytes."""
    import io
    arrays: dict[str, np.ndarray] = {}
    ops = [{"kind": op.kind, "name": op.name, "cls": op.cls, "ins": [int(v) for v in op.ins],
            "out": int(op.out), "p": _encode(op.p, arrays), "bias": _encode(op.bias, arrays),
            "act": _encode(op.act, arrays)} for op in net._ops]
    plan = {"format": FORMAT, "version": VERSION, "name": net.name,
            "input_shape": list(net.input_shape), "in_val": int(net._in_val),
            "out_vals": [int(v) for v in net._out_vals], "output_names": net.output_names, "ops": ops}
    blob = np.frombuffer(json.dumps(plan).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **{_PLAN_KEY: blob}, **arrays)
    return buf.getvalue()


def save(net, path) -> Path:
    """Write `net` to `path` atomically (a temp file beside it, then os.replace): no partial file."""
    return atomic_write_bytes(path, to_bytes(net))


def _decode(value, arrays, where):
    if isinstance(value, dict):
        if "__array__" in value:
            name = value["__array__"]
            if name not in arrays:
                raise EngineFileError(f"missing array {name!r} ({where})")
            arr = arrays[name]
            if arr.dtype != np.float32:
                raise EngineFileError(f"array {name!r} ({where}) has dtype {arr.dtype}, expected float32")
            if list(arr.shape) != list(value.get("shape", [])):
                raise EngineFileError(f"array {name!r} ({where}) has shape {list(arr.shape)}, "
                                      f"the plan says {value.get('shape')}")
            return arr
        return {k: _decode(v, arrays, where) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v, arrays, where) for v in value)
    return value


def load(path, threads: int | None = None, *, factory):
    """The model saved in the engine file `path`, built by ``factory`` (:class:`~overhead.engine.model.NumpyModel`,
    passed in by :func:`overhead.engine.load` so that this module sits below the model it reads).

    Raises :class:`EngineFileError` (a ValueError, one line) for a missing, truncated or corrupt
    file, a plan of a newer format version, missing arrays, or arrays of the wrong dtype or shape."""
    path = Path(path)
    if not path.is_file():
        raise EngineFileError(f"cannot load {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise EngineFileError(f"cannot load {path}: not a valid engine file (truncated or corrupt: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    blob = arrays.pop(_PLAN_KEY, None)
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
        raise EngineFileError(f"cannot load {path}: not an engine file (no {_PLAN_KEY} plan)")
    try:
        plan = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EngineFileError(f"cannot load {path}: its plan is not valid JSON (corrupt file)") from None
    if not isinstance(plan, dict) or plan.get("format") != FORMAT:
        raise EngineFileError(f"cannot load {path}: not an engine file (format is not {FORMAT!r})")
    version = plan.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise EngineFileError(f"cannot load {path}: written by a newer engine (format version {version}, "
                              f"this one reads up to {VERSION}); upgrade overhead or re-export the model")
    try:
        ops = []
        for d in plan["ops"]:
            where = f"op {d['name']!r}"
            if d["kind"] not in _KINDS:
                raise EngineFileError(f"cannot load {path}: unknown op kind {d['kind']!r} ({where})")
            p = {k: _decode(v, arrays, where) for k, v in d["p"].items()}
            ops.append(Op(d["kind"], d["name"], d["cls"], d["ins"], d["out"], p,
                          _decode(d["bias"], arrays, where), _decode(d["act"], arrays, where)))
        shape = tuple(plan["input_shape"])
        net = factory(ops, plan["in_val"], plan["out_vals"], shape, name=plan["name"],
                         threads=threads, output_names=plan.get("output_names"))
    except EngineFileError as e:
        msg = str(e)
        raise EngineFileError(msg if msg.startswith("cannot load") else f"cannot load {path}: {msg}") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise EngineFileError(f"cannot load {path}: malformed plan ({type(e).__name__}: {e})") from None
    try:
        net.plan(1)  # shapes and weights consistent with each other
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise EngineFileError(f"cannot load {path}: inconsistent plan ({e})") from None
    return net
