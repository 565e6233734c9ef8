"""Parity of a runner with the Keras reference (moved unchanged out of overhead.backends)."""
from __future__ import annotations

import time

import numpy as np

from overhead.backends import Runner, get

ACCURACY_MIN_REF = 0.5  # below this reference accuracy the model is untrained/not a digit model
# Top-1 agreement is judged on "decisive" inputs only: where the reference's best class leads the
# runner-up by >= DECISIVE_MARGIN * max(1, |ref|). Seeded-init models give near-uniform softmax outputs
# (margins ~1e-4) whose argmax any rounding flips; there a loose max-abs bound judges instead.
DECISIVE_MARGIN = 0.05
MIN_DECISIVE = 8
QUANTIZED_FALLBACK_MAX_ABS = 0.1


def parity(runner: Runner, ref: np.ndarray, x: np.ndarray, y: np.ndarray | None = None, *,
           max_s: float | None = None, min_n: int = 8) -> dict:
    """Compare a runner with the Keras reference `ref` on real inputs `x`, in batches of runner.batch.

    Stops early once `max_s` seconds were spent and at least `min_n` inputs compared (slow paths).
    Returns max_abs_err, top1_agree, accuracy and ref_accuracy (on the same digits, when labels fit
    the outputs), parity ('pass'|'fail'), reason, tolerance, n_parity and call_s (median seconds of
    one call: a cost estimate for the timing that follows).
    """
    backend = get(runner.name)
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
    max_abs = float(np.max(np.abs(got - ref)))
    top1 = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    acc = ref_acc = None
    if y is not None and ref.shape[-1] > int(np.max(y)):
        acc, ref_acc = float(np.mean(got.argmax(-1) == y)), float(np.mean(ref.argmax(-1) == y))
    problems, notes = [], []
    if not np.all(np.isfinite(got)):
        problems.append("non-finite outputs")
    if backend.max_abs is not None:
        tol = backend.max_abs * max(1.0, float(np.max(np.abs(ref))))
        if not max_abs <= tol:
            problems.append(f"max_abs_err {max_abs:.3g} > {tol:.3g}")
    if backend.min_top1 is not None:
        top2 = np.sort(ref, axis=-1)[:, -2:]
        decisive = (top2[:, 1] - top2[:, 0]) >= DECISIVE_MARGIN * max(1.0, float(np.max(np.abs(ref))))
        if decisive.sum() >= MIN_DECISIVE:
            agree = float(np.mean(got.argmax(-1)[decisive] == ref.argmax(-1)[decisive]))
            if agree < backend.min_top1:
                problems.append(f"top1_agree {agree:.3f} < {backend.min_top1} on {int(decisive.sum())} decisive inputs")
        else:
            notes.append(f"top-1 not judged: reference outputs near-uniform ({int(decisive.sum())} decisive inputs)")
            if max_abs > QUANTIZED_FALLBACK_MAX_ABS:
                problems.append(f"max_abs_err {max_abs:.3g} > {QUANTIZED_FALLBACK_MAX_ABS}")
    if backend.max_acc_drop is not None:
        if ref_acc is None or ref_acc < ACCURACY_MIN_REF:
            notes.append("accuracy not judged (reference accuracy "
                         f"{'n/a' if ref_acc is None else f'{ref_acc:.2f}'}: untrained or not a digit model)")
        elif ref_acc - acc > backend.max_acc_drop:
            problems.append(f"accuracy {acc:.3f} vs reference {ref_acc:.3f}")
    return {"max_abs_err": max_abs, "top1_agree": top1, "accuracy": acc, "ref_accuracy": ref_acc,
            "parity": "fail" if problems else "pass", "reason": "; ".join(problems + notes),
            "tolerance": backend.tolerance(), "n_parity": n, "call_s": float(np.median(times))}
