"""Parity of a runner with the Keras reference: a criterion on logits that can fail.

Why centred log-probabilities. Every model of the study ends in a softmax, and every backend returns
what the exported model returns, i.e. probabilities. Comparing probabilities is vacuous where it
matters most: an untrained or unsure model gives near-uniform outputs (all ~0.1), so a max-abs bound
loose enough for int8 accepts any permutation of them, and a confident model's small probabilities
(1e-9 vs 1e-6) are invisible. Softmax is invertible up to a constant per row:
``log p_i = l_i - logsumexp(l)``, so ``z = log p - mean(log p)`` (per row) *equals the centred logits*
``l - mean(l)``. We therefore compare ``z`` of the runner with ``z`` of the Keras reference -- the
logits, without exporting a second (logits-head) model for every backend and conversion. Probabilities
are clipped at a floor first (both sides alike) because float32 softmax underflows and int8 outputs
are quantised in steps of 1/256: the floor is per precision tier, below the resolution of the path.
Outputs that are not probability rows (a user model with a linear head) are compared as they are.

The criterion, per precision tier (:data:`TIERS`):
- ``logit_rel_err = ||z - z_ref||_F / ||z_ref||_F`` over all compared inputs, at most ``max_rel``;
- cosine similarity of ``z`` and ``z_ref`` (flattened), at least ``min_cos``;
- top-1 agreement on *decisive* inputs -- where the reference's best logit leads the runner-up by at
  least :data:`DECISIVE_MARGIN` (nats) -- at least ``min_top1``, judged when there are at least
  :data:`MIN_DECISIVE` such inputs (else noted, and the logit criterion judges alone);
- for reduced-precision paths with ``max_acc_drop``, accuracy on the real digits versus the reference.
A fully flipped or permuted output has ``logit_rel_err`` ~1.4 and fails in every tier.
"""
from __future__ import annotations

import time

import numpy as np

ACCURACY_MIN_REF = 0.5  # below this reference accuracy the model is untrained/not a digit model
DECISIVE_MARGIN = 1.0  # nats between the reference's top-1 and top-2 logits (top-1 >= 2.7x likelier)
MIN_DECISIVE = 8
# reduced-precision paths (int8, fp16) are judged on at least this many decisive inputs (first run):
# their top-1 agreement is the accuracy cost the advice states next to their speed-up
DECISIVE_TARGET = 200
QUANTIZED_FALLBACK_MAX_ABS = 0.1  # no longer a criterion; kept for Backend.tolerance() of older callers
PROB_SUM_TOL = 1e-3  # rows summing to 1 within this (and in [0, 1]) are treated as probabilities

# floor: probabilities are clipped here before the log (both sides); float32 softmax stays exact far
# below 1e-30, fp16 underflows near 6e-8, int8 outputs have steps of 1/256.
TIERS = {
    "float32": {"floor": 1e-30, "max_rel": 1e-3, "min_cos": 0.99999, "min_top1": 0.99},
    "fp16": {"floor": 1e-6, "max_rel": 3e-2, "min_cos": 0.999, "min_top1": 0.99},
    "int8": {"floor": 1.0 / 256, "max_rel": 0.35, "min_cos": 0.95, "min_top1": 0.9},
}


def tier_of(backend) -> str:
    """The precision tier of a backend: its own ``precision`` if it declares one, else int8 for
    quantised paths, fp16 for paths registered with a looser max-abs bound, float32 otherwise."""
    declared = getattr(backend, "precision", None)
    if declared in TIERS:
        return declared
    if getattr(backend, "quantized", False):
        return "int8"
    max_abs = getattr(backend, "max_abs", None)
    return "fp16" if max_abs is not None and max_abs > 1e-4 else "float32"


def criterion_text(tier: str) -> str:
    t = TIERS[tier]
    return (f"{tier}: z = centred log-probs (p floored at {t['floor']:.3g}) = centred logits; "
            f"||z-z_ref||/||z_ref|| <= {t['max_rel']:g}, cos >= {t['min_cos']:g}, top-1 >= {t['min_top1']:g} "
            f"on inputs with reference margin >= {DECISIVE_MARGIN:g} nat")


def _is_prob(a: np.ndarray) -> bool:
    return (a.ndim == 2 and a.shape[-1] > 1 and bool(np.all(a >= -1e-6)) and bool(np.all(a <= 1 + 1e-6))
            and bool(np.all(np.abs(a.sum(-1) - 1.0) <= PROB_SUM_TOL)))


def centred_logits(a: np.ndarray, floor: float, as_prob: bool) -> np.ndarray:
    """Per-row centred log of probabilities clipped at `floor` (or centred raw outputs)."""
    a = np.asarray(a, dtype=np.float64)
    z = np.log(np.clip(a, floor, None)) if as_prob else a
    return z - z.mean(axis=-1, keepdims=True)


def _decisive(z_ref: np.ndarray) -> np.ndarray:
    """Rows whose best centred logit leads the runner-up by >= DECISIVE_MARGIN nats."""
    if z_ref.ndim != 2 or z_ref.shape[-1] < 2:
        return np.zeros(len(z_ref), dtype=bool)
    top2 = np.sort(z_ref, axis=-1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) >= DECISIVE_MARGIN


def decisive_mask(ref: np.ndarray, tier: str = "float32") -> np.ndarray:
    """Which reference rows are decisive in `tier` (its probability floor applies, as in :func:`compare`)."""
    ref = np.asarray(ref, dtype=np.float64)
    return _decisive(centred_logits(ref, TIERS[tier]["floor"], _is_prob(ref)))


def decisive_prefix(ref: np.ndarray, target: int = DECISIVE_TARGET, tier: str = "float32") -> int:
    """The number of leading reference rows that holds `target` decisive ones (all rows if fewer do)."""
    hits = np.flatnonzero(decisive_mask(ref, tier))
    return int(hits[target - 1]) + 1 if len(hits) >= target else len(ref)


def compare(got: np.ndarray, ref: np.ndarray, tier: str = "float32") -> dict:
    """The logit criterion on already computed outputs (rows = inputs, columns = classes)."""
    t = TIERS[tier]
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    as_prob = _is_prob(ref)
    z_ref = centred_logits(ref, t["floor"], as_prob)
    z = centred_logits(np.nan_to_num(got, nan=0.0, posinf=1e30, neginf=-1e30), t["floor"], as_prob)
    denom = max(float(np.linalg.norm(z_ref)), 1e-12)
    rel = float(np.linalg.norm(z - z_ref)) / denom
    nz = float(np.linalg.norm(z))
    cos = float(np.sum(z * z_ref)) / (denom * nz) if nz > 0 else 0.0
    decisive = _decisive(z_ref)
    n_dec = int(decisive.sum())
    agree = (float(np.mean(got.argmax(-1)[decisive] == ref.argmax(-1)[decisive])) if n_dec else None)
    problems, notes = [], []
    if not np.all(np.isfinite(got)):
        problems.append("non-finite outputs")
    if not rel <= t["max_rel"]:
        problems.append(f"logit_rel_err {rel:.3g} > {t['max_rel']:g}")
    if not cos >= t["min_cos"]:
        problems.append(f"logit cosine {cos:.4g} < {t['min_cos']:g}")
    if n_dec >= MIN_DECISIVE:
        if agree < t["min_top1"]:
            problems.append(f"top1_agree {agree:.3f} < {t['min_top1']:g} on {n_dec} decisive inputs")
    else:
        notes.append(f"top-1 not judged: {n_dec} decisive inputs (< {MIN_DECISIVE}); logits judge alone")
    if not as_prob:
        notes.append("outputs are not probabilities: compared as logits directly")
    return {"logit_rel_err": rel, "logit_cos": cos, "top1_decisive": agree, "n_decisive": n_dec,
            "problems": problems, "notes": notes, "criterion": criterion_text(tier)}


def parity(runner, ref: np.ndarray, x: np.ndarray, y: np.ndarray | None = None, *, backend,
           max_s: float | None = None, min_n: int = 8) -> dict:
    """Compare a runner with the Keras reference `ref` on real inputs `x`, in batches of runner.batch.

    `backend` is the path's :class:`~overhead.backends.core.Backend` (its precision tier and accuracy
    bound); :func:`overhead.backends.parity` passes the registered one.

    Stops early once `max_s` seconds were spent and at least `min_n` inputs compared (slow paths).
    Returns the logit criterion (``logit_rel_err``, ``logit_cos``, ``top1_decisive``, ``n_decisive``,
    ``criterion``), the old columns (``max_abs_err`` on the outputs, ``top1_agree`` on all inputs,
    ``accuracy`` / ``ref_accuracy`` on the same digits when labels fit the outputs), ``parity``
    ('pass'|'fail'), ``reason``, ``tolerance``, ``n_parity`` and ``call_s`` (median seconds of one
    call: a cost estimate for the timing that follows).
    """
    n, b = len(x), runner.batch
    outs, times, t_start = [], [], time.perf_counter()
    for start in range(0, n, b):
        chunk = x[start:start + b]
        if len(chunk) < b:  # pad the last batch with leading rows, drop them afterwards
            chunk = np.concatenate([chunk, x[: b - len(chunk)]])
        t0 = time.perf_counter()
        out = runner(np.ascontiguousarray(chunk))
        times.append(time.perf_counter() - t0)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{runner.name} returned {type(out).__name__}, not a numpy array")
        outs.append(out[: min(b, n - start)])
        if max_s is not None and time.perf_counter() - t_start > max_s and start + b >= min_n:
            break
    got = np.concatenate(outs)
    n = len(got)
    ref, y = ref[:n], (None if y is None else y[:n])
    if got.shape != ref.shape:
        raise ValueError(f"{runner.name} output shape {got.shape} != reference {ref.shape}")
    got = got.astype(np.float64)
    tier = tier_of(backend)
    res = compare(got, ref, tier)
    problems, notes = res.pop("problems"), res.pop("notes")
    acc = ref_acc = None
    if y is not None and ref.ndim == 2 and ref.shape[-1] > int(np.max(y)):
        acc, ref_acc = float(np.mean(got.argmax(-1) == y)), float(np.mean(ref.argmax(-1) == y))
    if backend.max_acc_drop is not None:
        if ref_acc is None or ref_acc < ACCURACY_MIN_REF:
            notes.append("accuracy not judged (reference accuracy "
                         f"{'n/a' if ref_acc is None else f'{ref_acc:.2f}'}: untrained or not a digit model)")
        elif ref_acc - acc > backend.max_acc_drop:
            problems.append(f"accuracy {acc:.3f} vs reference {ref_acc:.3f}")
    t = TIERS[tier]
    tolerance = f"logit_rel_err<={t['max_rel']:g}; cos>={t['min_cos']:g}; top1>={t['min_top1']:g} on decisive"
    if backend.max_acc_drop is not None:
        tolerance += f"; acc_drop<={backend.max_acc_drop:g}"
    return {"max_abs_err": float(np.max(np.abs(got - ref))), "top1_agree": float(np.mean(got.argmax(-1) == ref.argmax(-1))),
            "accuracy": acc, "ref_accuracy": ref_acc, **res,
            "parity": "fail" if problems else "pass", "reason": "; ".join(problems + notes),
            "tolerance": tolerance, "n_parity": n, "call_s": float(np.median(times))}
