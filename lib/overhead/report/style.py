"""The one backend order, family grouping, colour and marker map of every figure and table.

Families (in this order): Keras 3 on TensorFlow and TF itself; Keras 2 (``tf_keras``); Keras 3 on JAX /
NumPy and JAX itself; LiteRT; other runtimes; NumPy. Each family has its own hue, each backend its own shade.
Unknown names (a user's or a test backend) sort last and get a stable fallback colour.
"""
from __future__ import annotations

FAMILIES = {  # family label: ((backend, colour), ...) in display order
    "Keras 3 / TensorFlow": (("keras.predict", "#d7301f"), ("keras.predict_on_batch", "#fc8d59"),
                             ("keras.call", "#990000"), ("tf.function", "#08519c"),
                             ("tf.function.xla", "#6baed6"), ("tf.savedmodel", "#3f007d"),
                             ("tf1.session", "#2171b5")),
    "Keras 2 (tf_keras)": (("tf_keras.predict", "#e6550d"), ("tf_keras.predict_on_batch", "#fdae6b"),
                           ("tf_keras.call", "#a63603")),
    "Keras on JAX / NumPy, JAX": (("keras.jax.predict", "#c51b8a"), ("keras.jax.call", "#7a0177"),
                                  ("jax.jit", "#f768a1"), ("keras.numpy.predict", "#dd3497")),
    "LiteRT": (("litert", "#006d2c"), ("litert.builtin", "#41ab5d"), ("litert.fp16", "#a1d99b"),
               ("litert.dynamic_int8", "#78a832"), ("litert.int8", "#00441b")),
    "other runtimes": (("onnxruntime", "#7b4fa6"), ("openvino", "#b15928")),
    "NumPy": (("numpy", "#000000"), ("numpy.plain", "#737373")),
}
BACKEND_ORDER = [b for fam in FAMILIES.values() for b, _ in fam]
BACKEND_COLORS = {b: c for fam in FAMILIES.values() for b, c in fam}
FAMILY_OF = {b: f for f, fam in FAMILIES.items() for b, _ in fam}
OTHER_FAMILY = "other paths"
FALLBACK_COLORS = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d4a017"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
STAGE_COLORS = {"decode": "#8c6d31", "preprocess": "#e7ba52", "inference": "#3182bd", "postprocess": "#9e9ac8"}
# paths that keep you inside TensorFlow / Keras at serving time (the "stay in TF" column of the advice)
TF_KERAS = tuple(b for f in ("Keras 3 / TensorFlow", "Keras 2 (tf_keras)") for b, _ in FAMILIES[f])
# run without TensorFlow installed at serving time (LiteRT through `ai-edge-litert`; conversion needs TF once)
NO_TF = ("numpy", "numpy.plain", "litert", "litert.builtin", "litert.fp16", "litert.dynamic_int8", "litert.int8",
         "onnxruntime", "openvino", "jax.jit")


def color_for(backend: str) -> str:
    """The backend's colour; unknown backends get a stable fallback colour."""
    if backend in BACKEND_COLORS:
        return BACKEND_COLORS[backend]
    return FALLBACK_COLORS[sum(map(ord, str(backend))) % len(FALLBACK_COLORS)]


def family_of(backend: str) -> str:
    return FAMILY_OF.get(backend, OTHER_FAMILY)


def marker_for(backend: str) -> str:
    """A marker that differs between the members of a family (a second cue beside the colour)."""
    fam = FAMILIES.get(family_of(backend))
    if fam is None:
        return "*"
    return MARKERS[[b for b, _ in fam].index(backend) % len(MARKERS)]


def order_backends(names) -> list:
    """``names`` in the study's fixed order, unknown ones last (alphabetical)."""
    names = [str(n) for n in dict.fromkeys(names)]
    return [b for b in BACKEND_ORDER if b in names] + sorted(b for b in names if b not in BACKEND_COLORS)


def by_family(names) -> dict:
    """``{family: [backends...]}`` for the given names, families and members in display order."""
    out: dict = {}
    for b in order_backends(names):
        out.setdefault(family_of(b), []).append(b)
    return out
