"""A model's input and output signature, and the concrete shapes to run it with.

Inputs carry their name, dtype and per-sample shape (``None`` for a dynamic dimension) and, for inputs
that feed an ``Embedding``, the vocabulary size (so generated inputs are valid token ids). Dynamic
dimensions are filled from ``--input-shape`` (:func:`parse_input_shape`, :func:`resolve`); without
it, :func:`resolve` raises a one-line :class:`SignatureError` that names the flag.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class SignatureError(ValueError):
    """Inputs that do not fit the model; the message is one line with the fix."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, int32, ...
    shape: tuple  # per sample (batch dimension dropped); None marks a dynamic dimension
    vocab: int | None = None  # an Embedding's input_dim when the input holds token ids

    @property
    def dynamic(self) -> bool:
        return any(d is None for d in self.shape)

    def text(self) -> str:
        return "(batch, " + ", ".join("None" if d is None else str(d) for d in self.shape) + ")"


@dataclass
class Signature:
    inputs: list = field(default_factory=list)  # [TensorSpec]
    outputs: list = field(default_factory=list)  # [TensorSpec]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def dynamic(self) -> list:
        return [s for s in self.inputs if s.dynamic]

    def describe(self) -> dict:
        """JSON-able summary (for the worker's model event and the report)."""
        def one(s):
            return {"name": s.name, "dtype": s.dtype, "shape": list(s.shape), **({"vocab": s.vocab} if s.vocab else {})}
        return {"inputs": [one(s) for s in self.inputs], "outputs": [one(s) for s in self.outputs]}


def _dtype_name(dtype) -> str:
    import numpy as np

    name = getattr(dtype, "name", None) or str(dtype)
    name = {"string": "object"}.get(name, name)
    try:
        return np.dtype(name).name
    except TypeError:
        return str(name)


def _dims(shape) -> tuple:
    dims = list(shape.as_list() if hasattr(shape, "as_list") else shape)
    return tuple(None if d is None else int(d) for d in dims[1:])


def _history_op(tensor):
    hist = getattr(tensor, "_keras_history", None)
    return getattr(hist, "operation", None) or getattr(hist, "layer", None)


def _embedding_vocab(model) -> dict[int, int]:
    """{index of model input: smallest input_dim} for model inputs feeding an Embedding directly."""
    input_ops = [id(_history_op(t)) for t in model.inputs]
    vocab: dict[int, int] = {}
    for layer in _all_layers(model):
        if type(layer).__name__ != "Embedding":
            continue
        try:
            tensors = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        except (AttributeError, ValueError):  # used at several places: check every call
            tensors = [t for node in getattr(layer, "_inbound_nodes", []) for t in
                       (getattr(node, "input_tensors", None) or [])]
        for t in tensors:
            op = id(_history_op(t))
            if op in input_ops:
                i = input_ops.index(op)
                vocab[i] = min(vocab.get(i, layer.input_dim), int(layer.input_dim))
    return vocab


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers") and layer is not model:
            yield from _all_layers(layer)


def of_keras(model) -> Signature:
    vocab = _embedding_vocab(model)
    names = list(getattr(model, "input_names", None) or [])
    inputs = []
    for i, t in enumerate(model.inputs):
        name = names[i] if i < len(names) else (getattr(_history_op(t), "name", None) or t.name)
        inputs.append(TensorSpec(str(name).split(":")[0], _dtype_name(t.dtype), _dims(t.shape), vocab.get(i)))
    out_names = list(getattr(model, "output_names", None) or [])
    outputs = []
    for i, t in enumerate(model.outputs):
        name = out_names[i] if i < len(out_names) else (getattr(_history_op(t), "name", None) or f"output_{i}")
        outputs.append(TensorSpec(str(name).split(":")[0], _dtype_name(t.dtype), _dims(t.shape)))
    return Signature(inputs, outputs)


def of_savedmodel(loaded) -> Signature:
    fn = loaded.signatures["serving_default"]
    args, kwargs = fn.structured_input_signature
    specs = dict(kwargs)
    for i, spec in enumerate(args):
        specs.setdefault(getattr(spec, "name", None) or f"input_{i}", spec)
    # a signature's dicts come back in no fixed order: inputs by name, outputs output_0, output_1, ... by number
    inputs = [TensorSpec(name, _dtype_name(spec.dtype), _dims(spec.shape)) for name, spec in sorted(specs.items())]
    outs = fn.structured_outputs
    outs = outs if isinstance(outs, dict) else {f"output_{i}": o for i, o in enumerate(outs)}
    key = (lambda k: (0, int(k[7:]), k) if re.fullmatch(r"output_\d+", k) else (1, 0, k))
    outputs = [TensorSpec(name, _dtype_name(outs[name].dtype), _dims(outs[name].shape)) for name in sorted(outs, key=key)]
    return Signature(inputs, outputs)


def of_opened(opened) -> Signature:
    return of_keras(opened.keras_model) if opened.keras_model is not None else of_savedmodel(opened.saved_model)


# --------------------------------------------------------------------------- concrete shapes

_SHAPE = re.compile(r"^\d+(x\d+)*$")


def parse_input_shape(text: str | None) -> list[tuple[int, ...]]:
    """``1x64x64x3`` (or several, comma-separated, one per input) -> [(1, 64, 64, 3)]."""
    if text is None:
        return []
    shapes = []
    for part in str(text).replace(" ", "").split(","):
        if not _SHAPE.match(part) or any(int(d) == 0 for d in part.split("x")):
            raise SignatureError(f"--input-shape {text!r} is not a shape like 1x64x64x3 (positive sizes "
                                 "joined by x, one per input, comma-separated); e.g. --input-shape 1x64x64x3")
        shapes.append(tuple(int(d) for d in part.split("x")))
    return shapes


def resolve(sig: Signature, given: list[tuple[int, ...]] | None = None) -> list[tuple[int, ...]]:
    """Concrete per-sample shapes for every input; ``given`` comes from ``parse_input_shape``.

    A given shape may include the batch dimension (``1x64x64x3``, the batch is replaced by each batch
    size) or not (``64x64x3``). One shape per input, or one per dynamic input, in input order.
    """
    given = list(given or [])
    dyn = [i for i, s in enumerate(sig.inputs) if s.dynamic]
    if not given:
        if dyn:
            s = sig.inputs[dyn[0]]
            example = "x".join(["1"] + [str(d or 32) for d in s.shape])
            raise SignatureError(f"model input '{s.name}' has dynamic dimensions {s.text()}; give the size to "
                                 f"run with --input-shape, e.g. --input-shape {example}")
        return [tuple(s.shape) for s in sig.inputs]
    if len(given) == len(sig.inputs):
        targets = list(range(len(sig.inputs)))
    elif len(given) == len(dyn):
        targets = dyn
    else:
        raise SignatureError(f"--input-shape gives {len(given)} shape(s) but the model has {len(sig.inputs)} "
                             f"input(s) ({len(dyn)} with dynamic dimensions); give one shape per input, "
                             "comma-separated, in the order " + ", ".join(sig.names))
    out = [tuple(s.shape) for s in sig.inputs]
    for shape, i in zip(given, targets):
        s = sig.inputs[i]
        per = shape[1:] if len(shape) == len(s.shape) + 1 else shape
        if len(per) != len(s.shape) or any(d is not None and d != g for d, g in zip(s.shape, per)):
            raise SignatureError(f"--input-shape {'x'.join(map(str, shape))} does not fit model input "
                                 f"'{s.name}' {s.text()}; keep its fixed sizes and fill only the None ones")
        out[i] = tuple(per)
    return out
