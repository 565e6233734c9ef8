"""The one backend order, family grouping, colour and marker map of every figure and table.

Families, their order and each path's colour come from the catalogue (:mod:`overhead.base.paths`): Keras 3 on
TensorFlow and TF itself; Keras 2 (``tf_keras``); Keras 3 on JAX / NumPy and JAX itself; LiteRT; other runtimes;
NumPy. Each family has its own hue, each backend its own shade.
Unknown names (a user's or a test backend) sort last and get a stable fallback colour.
"""
from __future__ import annotations

from overhead.base import paths

FAMILIES = {  # family label: ((backend, colour), ...) in display order, from the catalogue
    f: tuple((n, paths.BY_NAME[n].colour) for n in paths.in_family(f)) for f in paths.FAMILIES}
BACKEND_ORDER = [b for fam in FAMILIES.values() for b, _ in fam]
BACKEND_COLORS = {b: c for fam in FAMILIES.values() for b, c in fam}
FAMILY_OF = {b: f for f, fam in FAMILIES.items() for b, _ in fam}
OTHER_FAMILY = "other paths"
FALLBACK_COLORS = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d4a017"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
STAGE_COLORS = {"decode": "#8c6d31", "preprocess": "#e7ba52", "inference": "#3182bd", "postprocess": "#9e9ac8"}
# paths that keep you inside TensorFlow / Keras at serving time (the "stay in TF" column of the advice)
TF_KERAS = paths.in_family(*paths.TF_FAMILIES)
# run without TensorFlow installed at serving time (LiteRT through `ai-edge-litert`; conversion needs TF once)
NO_TF = tuple(e.name for e in paths.CATALOGUE if e.tf_free)


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
