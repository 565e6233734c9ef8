"""Does the reference carry a signal? Degenerate Keras outputs said plainly, before any path is judged.

An untrained network (BatchNorm statistics at their initial values, random weights) or inputs on the
wrong scale often gives outputs that are (near-)zero logits -- uniform probabilities -- or the same
output for every input. Then every path "disagrees" with Keras at float32 rounding level, Keras itself
included, and nothing can be judged: :func:`degenerate` names that in one line, with what to pass instead.

Probability rows (a softmax head) are read as centred log-probabilities (= centred logits, see
:mod:`overhead.harness.parity`); other outputs as they are.
"""
from __future__ import annotations

import numpy as np

PREFIX = "reference carries no signal: "
# centred logits spanning less than this many nats across the classes of every input are uniform to
# float32 rounding of a deep network (parity's float32 bound is a 1e-3 relative error of them)
MIN_CLASS_SPREAD_NATS = 1e-4
# outputs varying across inputs by less than this fraction of their size are the same for every input
MIN_INPUT_SPREAD_REL = 1e-5
MIN_RAW_SCALE = 1e-6  # raw (non-probability) outputs all smaller than this are zero


def _is_prob(a: np.ndarray) -> bool:
    return (a.shape[-1] > 1 and bool(np.all(a >= -1e-6)) and bool(np.all(a <= 1 + 1e-6))
            and bool(np.all(np.abs(a.sum(-1) - 1.0) <= 1e-3)))


def degenerate(ref, inputs_given: bool = False) -> str | None:
    """One line (starting with :data:`PREFIX`) when the reference outputs `ref` (rows = inputs) are
    near-zero logits or the same for every input, else None. `inputs_given`: the user passed
    --inputs (then the advice is a trained model, not real data)."""
    a = np.asarray(ref, dtype=np.float64)
    if a.dtype.names is not None or a.ndim == 0 or len(a) == 0 or not np.all(np.isfinite(a)):
        return None
    a = a.reshape(len(a), -1)
    prob = _is_prob(a)
    z = np.log(np.clip(a, 1e-30, None)) if prob else a
    if prob:
        z = z - z.mean(axis=-1, keepdims=True)
    scale = float(np.max(np.abs(z)))
    what = None
    if prob and float(np.max(z.max(-1) - z.min(-1))) < MIN_CLASS_SPREAD_NATS:
        what = (f"its probabilities are uniform (centred logits within {scale:.3g} of 0 on all "
                f"{len(a)} inputs)")
    elif not prob and scale < MIN_RAW_SCALE:
        what = f"its outputs are all within {scale:.3g} of 0 on {len(a)} inputs"
    elif len(a) > 1 and float(np.max(z.max(0) - z.min(0))) <= MIN_INPUT_SPREAD_REL * max(scale, 1e-30):
        what = f"it gives the same output for all {len(a)} inputs"
    if what is None:
        return None
    fix = ("pass a trained model (or set its BatchNorm statistics from real data)" if inputs_given else
           "pass real inputs with --inputs FILE.npz, or a trained model")
    return (f"{PREFIX}{what} (untrained or mis-normalised?), so no path can be judged against it; {fix}")


def find(reason) -> str | None:
    """The :func:`degenerate` line inside a row's `reason` (joined to others with "; "), or None."""
    text = str(reason or "")
    at = text.find(PREFIX)
    if at < 0:
        return None
    problem, _, rest = text[at:].partition("; ")  # the line is "problem; fix"
    return f"{problem}; {rest.split('; ')[0]}"
