"""The NumPy engine's speed targets (issue 25) and how a measured ratio is judged against one.

``make bench`` (``overhead.experiments.enginebench``) measures; the report's architectures section reads its
rows. Both judge a ratio num / den on its band over the two paths' calls: q25 / q75 .. q75 / q25 of the
``<path>_q25_us`` and ``<path>_q75_us`` columns, so a median just under a goal with a band across it is noise.
The engine's ratios also have a floor: the same ratio for the model's GEMMs, depthwise einsums and activations alone
(``numpy_floor``, :mod:`overhead.experiments.enginefloor`); a goal below the floor's whole band is beyond NumPy there.
"""
from __future__ import annotations

import numpy as np

LITERT_GOAL = 3.0        # the engine within this factor of LiteRT at batch 1 on the Applications families
TF_FUNCTION_GOAL = 1.0   # and at or below tf.function there


def band(r, num: str, den: str):
    """(low, high) of the ratio num / den over the calls' interquartile ranges (``<path>_q25_us`` and
    ``_q75_us``: q25 / q75 and q75 / q25), or None for rows measured before they were recorded."""
    try:
        lo = float(r[f"{num}_q25_us"]) / float(r[f"{den}_q75_us"])
        hi = float(r[f"{num}_q75_us"]) / float(r[f"{den}_q25_us"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


BEYOND = "beyond NumPy"


def verdict(b, goal: float, floor=None) -> str:
    """"pass" when the whole band is at or below the goal, "miss" when all of it is above, else "noise"; a miss
    whose `floor` band (the NumPy primitives alone against the same reference) is above the goal too is
    BEYOND: no exact NumPy engine could meet that goal there."""
    if b is None:
        return ""
    if b[1] <= goal:
        return "pass"
    if b[0] <= goal:
        return "noise"
    return BEYOND if floor is not None and floor[0] > goal else "miss"
