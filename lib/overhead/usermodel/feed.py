"""What a worker needs to run a user's model: its inputs, the reference outputs, runners that take them,
and the skip/failure reason of a backend that cannot run it.

The harness (parity, timing) handles one NumPy array per batch. A model with several inputs gets them
packed into one structured array (one field per input, :func:`pack`) so slicing and padding stay
row-wise; a runner is wrapped (:func:`adapt`) to unpack the fields into the list the model takes and
to flatten several outputs into one (batch, features) float array, in the signature's output order.
"""
from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead.base import paths
from overhead.ladder import models
from overhead.usermodel import inputs, modelfile, resources, signature

CONVERSION_ERRORS = ("ConverterError", "NotRebuildable", "ConversionError")  # raised while converting a model


def is_ladder(model_path) -> bool:
    """A model of the study's ladder (trained on digits, with its JSON record beside it)."""
    meta = Path(model_path).with_suffix(".json")
    if Path(model_path).suffix != ".keras" or not meta.is_file():
        return False
    try:
        rec = json.loads(meta.read_text())
    except ValueError:
        return False
    return isinstance(rec, dict) and "input_shape" in rec and "classes" in rec


# --------------------------------------------------------------------------- packing

def pack(xs: list[np.ndarray], sig) -> np.ndarray:
    """One array for the harness: the input itself, or a structured array with a field per input."""
    if len(xs) == 1:
        return xs[0]
    dtype = np.dtype([(s.name, x.dtype, x.shape[1:]) for s, x in zip(sig.inputs, xs)])
    out = np.empty(len(xs[0]), dtype=dtype)
    for s, x in zip(sig.inputs, xs):
        out[s.name] = x
    return out


def unpack(x: np.ndarray):
    """The model's arguments: the array itself, or the list of a structured array's fields."""
    if x.dtype.names is None:
        return x
    return [np.ascontiguousarray(x[name]) for name in x.dtype.names]


def flat_outputs(out, names=None) -> np.ndarray:
    """One output as it is (as a NumPy array); several as (batch, sum of their sizes) float32."""
    if isinstance(out, dict):
        keys = [k for k in (names or []) if k in out] or list(out)
        out = [out[k] for k in keys]
    if isinstance(out, (list, tuple)):
        arrays = [np.asarray(o) for o in out]
        if len(arrays) == 1:
            return arrays[0]
        n = arrays[0].shape[0]
        return np.concatenate([a.reshape(n, -1).astype(np.float32) for a in arrays], axis=1)
    return np.asarray(out)


def adapt(runner, sig):
    """Make a runner take the packed batch and return one flat array (a no-op for one-in, one-out)."""
    if len(sig.inputs) == 1 and len(sig.outputs) == 1:
        return runner
    fn, names, last = runner.fn, [s.name for s in sig.outputs], {}

    def run(x):
        if last.get("x") is not x:  # timing repeats the same batch: unpack it once
            last["x"], last["args"] = x, unpack(x)
        return flat_outputs(fn(last["args"]), names)

    runner.fn = run
    return runner


# --------------------------------------------------------------------------- inputs and reference

@dataclass
class Feed:
    sig: object
    shapes: list
    x: np.ndarray  # packed, n samples
    y: np.ndarray | None  # labels, only when given
    source: str  # "generated" or the --inputs file

    def describe(self) -> dict:
        return {"inputs_source": self.source, "input_shapes": [list(s) for s in self.shapes],
                "labels": self.y is not None}


def build_feed(sig, n: int, *, input_shape=None, inputs_npz=None, seed: int = 0) -> Feed:
    """n samples for this signature: from the --inputs file (cycled) or generated (no labels)."""
    given = signature.parse_input_shape(input_shape) if isinstance(input_shape, str) else input_shape
    if inputs_npz and not given:  # dynamic dims take the sizes the file holds
        xs, y = inputs.load_npz(inputs_npz, sig)
        return Feed(sig, [tuple(x.shape[1:]) for x in xs], pack(inputs.take(xs, n), sig),
                    inputs.take_labels(y, n), str(inputs_npz))
    shapes = signature.resolve(sig, given)
    if inputs_npz:
        xs, y = inputs.load_npz(inputs_npz, sig, shapes)
        shapes = [tuple(x.shape[1:]) for x in xs]
        return Feed(sig, shapes, pack(inputs.take(xs, n), sig), inputs.take_labels(y, n), str(inputs_npz))
    return Feed(sig, shapes, pack(inputs.generate(sig, shapes, n, seed=seed), sig), None, "generated")


def reference(opened, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The reference outputs (float64, flattened like adapt()): Keras predict, or the SavedModel's signature."""
    names = [s.name for s in opened.signature.outputs]
    args = unpack(x)
    if opened.keras_model is not None:
        out = opened.keras_model.predict(args, batch_size=min(batch_size, len(x)), verbose=0)
        return flat_outputs(out, names).astype(np.float64)
    import tensorflow as tf

    fn = opened.saved_model.signatures["serving_default"]
    args = args if isinstance(args, list) else [args]
    outs = []
    for start in range(0, len(x), batch_size):
        feed = {s.name: tf.constant(a[start:start + batch_size]) for s, a in zip(opened.signature.inputs, args)}
        outs.append(flat_outputs({k: v.numpy() for k, v in fn(**feed).items()}, names))
    return np.concatenate(outs).astype(np.float64)


# --------------------------------------------------------------------------- why a backend does not run

def precheck(backend, opened) -> str | None:
    """A skip reason known before preparing: Keras-object paths on a SavedModel folder."""
    entry = paths.entry(backend.name)
    if opened.keras_model is None and entry is not None and entry.keras_object:
        return (f"a SavedModel folder holds no Keras model and {backend.name} runs one; pass the .keras or "
                ".h5 file to run it")
    if opened.loader == "tf_keras" and backend.family not in ("tf_keras",):
        return f"only tf_keras (Keras 2) can load this .h5 file, and {backend.name} needs Keras 3"
    return None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's type and its most telling line, shortened: the last ``error:`` of a converter's
    MLIR log (without its location), the final exception of a ``tf.function`` trace, else the first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln.split("error: ", 1)[1] for ln in lines if "error: " in ln]
    raised = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", ln)]
    failed_ops = [ln.split("Conversion is failed for:", 1)[1].strip() for ln in lines if "Conversion is failed for:" in ln]
    if failed_ops:  # OpenVINO's frontend: the summary names the ops it could not convert
        text = f"{type(exc).__name__}: OpenVINO could not convert {', '.join(failed_ops)}"
    elif errors:
        msg = errors[-1]
        if msg.startswith("loc(") and "): " in msg:
            msg = msg.split("): ", 1)[1]
        text = f"{type(exc).__name__}: {msg}"
    elif lines and lines[0].startswith("in user code") and raised:
        text = raised[-1]
    else:
        text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    if len(text) <= limit:
        return text
    cut = text[:limit].rfind(". ")  # whole sentences when they fit
    return text[: cut + 1] if cut > limit // 2 else text[: limit - 3] + "..."


def _from_converter(exc: BaseException) -> bool:
    """Raised while building an artifact (a conversion), not while reading the model's shape."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any(Path(f.filename).name == "converters.py" and f.name not in ("input_shape", "load_keras",
                                                                              "_load_keras_cached") for f in frames)


def classify(backend_name: str, exc: BaseException, sig=None) -> tuple[str, str]:
    """(status, reason) of a backend that raised while preparing or on its first calls."""
    if type(exc).__name__ == "UnsupportedLayerError" and hasattr(exc, "layer_class"):
        detail = str(exc).split(". The NumPy engine supports", 1)[0].partition(f"'{exc.layer_name}': ")[2]
        return "skipped", f"unsupported layer {exc.layer_class} '{exc.layer_name}'" + (f": {detail}" if detail else "")
    if _from_converter(exc) or type(exc).__name__ in CONVERSION_ERRORS or "OpConversionFailure" in str(exc):
        return "skipped", f"conversion failed: {one_line(exc)}"
    if sig is not None and (len(sig.inputs) > 1 or len(sig.outputs) > 1):
        return "skipped", (f"{backend_name} cannot run a model with {len(sig.inputs)} input(s) and "
                           f"{len(sig.outputs)} output(s) here: {one_line(exc)}")
    return "failed", one_line(exc)


# --------------------------------------------------------------------------- worker entry points

@dataclass
class ModelIO:
    """The concrete inputs a worker runs a user's model with (dynamic dims filled from --input-shape):
    passed to the backends and converters that need them (``backends.prepare(..., io=...)``)."""

    signature: object
    shapes: list
    per_sample: dict | None = None  # memory estimate per sample, computed once

    def concrete_shape(self, index: int = 0):
        """The per-sample shape of input `index` this worker runs with."""
        return tuple(self.shapes[index]) if self.shapes and index < len(self.shapes) else None

    def input_names(self, available) -> list[str]:
        return input_names(self.signature, available)

    def output_names(self, available) -> list[str]:
        return output_names(self.signature, available)

    def representative(self, n: int) -> list:
        """Calibration samples for full-integer quantisation of a user model: inputs generated from the
        signature this worker runs (a dict per sample keyed by input name when there are several)."""
        xs = inputs.generate(self.signature, self.shapes, n, seed=1)
        if len(xs) == 1:
            return [[xs[0][i:i + 1]] for i in range(n)]
        return [{s.name: x[i:i + 1] for s, x in zip(self.signature.inputs, xs)} for i in range(n)]


def open_for_worker(model_path, *, input_shape=None, inputs=None):
    """(opened model, the worker's model description, its :class:`ModelIO`); raises ModelFileError /
    SignatureError (one line).

    Also checks the inputs now (dynamic dims without `input_shape` -- ``--input-shape`` --, a bad `inputs` file
    -- ``--inputs``), before any row.
    """

    opened = modelfile.open_model(model_path)
    sig = opened.signature
    probe = build_feed(sig, 1, input_shape=input_shape, inputs_npz=inputs)
    io = ModelIO(sig, probe.shapes)
    flops = params = 0
    if opened.keras_model is not None:
        try:
            flops = models.count_flops(opened.keras_model)
        except Exception:  # dynamic shapes or layers the analytic count does not know
            flops = 0
        try:
            params = models.count_params(opened.keras_model)
        except Exception:
            params = int(opened.keras_model.count_params())
    meta = Path(model_path).with_suffix(".json")
    if is_ladder(model_path):
        rec = json.loads(meta.read_text())
        flops, params = rec.get("flops") or flops, rec.get("params") or params
    first = sig.inputs[0].shape if sig.inputs else ()
    return opened, {"sha": modelfile.tree_sha(opened.path)[:12], "flops": int(flops), "params": int(params),
                    "input_shape": [d for d in (probe.shapes[0] if probe.shapes else first)],
                    "weights": _weights(model_path), "format": opened.format, "loader": opened.loader,
                    "signature": sig.describe(), "inputs_source": probe.source, "notes": opened.notes}, io


def memory_reason(opened, batch: int, io: ModelIO | None = None) -> str | None:
    """The skip reason of a batch size whose input and activations do not fit in memory."""
    shapes = (io.shapes if io is not None else None) or [s.shape for s in opened.signature.inputs]
    per_sample = io.per_sample if io is not None else None
    if per_sample is None:
        per_sample = resources.per_sample_bytes(opened.signature, shapes, opened.keras_model)
        if io is not None:
            io.per_sample = per_sample
    est = resources.estimate(opened.signature, shapes, batch, per_sample=per_sample)
    return resources.memory_skip_reason(est, batch)


def fatal_text(exc: BaseException) -> str:
    """A model/inputs problem as the one line the CLI prints (our own errors carry their fix)."""
    if type(exc).__name__ in ("ModelFileError", "SignatureError", "InputsError"):
        return str(exc)
    return one_line(exc)


def _weights(model_path) -> str:
    if not is_ladder(model_path):
        return "unknown"
    return json.loads(Path(model_path).with_suffix(".json").read_text()).get("weights", "unknown")


def input_names(sig, available) -> list[str]:
    """The model's input names in the order runners get the arrays, when `available` has them all."""
    names = sig.names if sig is not None else []
    return names if names and set(names) <= set(available) else list(available)


def output_names(sig, available) -> list[str]:
    """A signature's output keys in the model's output order (dict order is not stable across loads):
    the model's output names when they match, else Keras export's output_0, output_1, ... by number."""
    keys = list(available)
    names = [s.name for s in sig.outputs] if sig is not None else []
    if names and set(names) == set(keys):
        return names
    numbered = [re.fullmatch(r"output_(\d+)", k) for k in keys]
    if all(numbered):
        return [k for _, k in sorted(zip((int(m.group(1)) for m in numbered), keys))]
    return sorted(keys)
