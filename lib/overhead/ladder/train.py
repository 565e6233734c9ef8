"""Training the ladder on real digits brought to each input shape; big models on fewer digits (a FLOPs budget)."""
from __future__ import annotations

import time

import numpy as np

from overhead.base import data
from overhead.ladder import models

TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward pass of one digit, the usual estimate
DECISIVE_PROB = 0.5  # an output is decisive when its top class has at least this probability
SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def shift_augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The real digits plus their 8 one-pixel shifts (zero fill): 9x the training set, nothing synthetic."""
    h, w = x.shape[1:3]
    out = np.zeros((len(SHIFTS), *x.shape), x.dtype)
    for k, (dy, dx) in enumerate(SHIFTS):
        out[k, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(-1, *x.shape[1:]), np.tile(y, len(SHIFTS))


def train_samples_for(flops: float, epochs: int, n_available: int, *, train_flops_budget: float | None = None,
                      max_train_samples: int | None = None, min_train_samples: int = 256) -> int:
    """Training digits for one model: all available (up to max_train_samples), fewer when the model's
    training cost (about 3 x forward FLOPs per digit per epoch) would exceed train_flops_budget."""
    n = n_available if max_train_samples is None else min(max_train_samples, n_available)
    if train_flops_budget:
        affordable = int(train_flops_budget // (TRAIN_FLOPS_PER_FORWARD * max(flops, 1) * max(epochs, 1)))
        n = min(n, max(affordable, min_train_samples))
    return max(1, min(n, n_available))


def decisiveness(probs: np.ndarray, threshold: float = DECISIVE_PROB) -> dict:
    """How decisive softmax outputs are: share with top probability >= threshold, median top probability,
    median top-1 minus top-2 logit margin (log p1 - log p2 equals it exactly for a softmax)."""
    p = np.sort(np.asarray(probs, np.float64), axis=1)
    top, second = p[:, -1], p[:, -2]
    margin = np.log(np.maximum(top, 1e-300)) - np.log(np.maximum(second, 1e-300))
    return {"decisive_share": float(np.mean(top >= threshold)), "decisive_threshold": threshold,
            "median_top_prob": float(np.median(top)), "median_logit_margin": float(np.median(margin))}


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 64) -> int:
    """Set every BatchNormalization's moving statistics to the average of its batch statistics over x
    (forward passes in training mode, no weight update): a short schedule leaves them far from the
    trained network's, and inference then collapses to one class. Dropout is off during those passes
    (EfficientNet drops whole residual branches in training): the statistics are those inference sees.
    Returns the number of batches."""
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns or not len(x):
        return 0
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    saved = [layer.momentum for layer in bns]
    rates = [layer.rate for layer in drops]
    k = 0
    try:
        for layer in drops:
            layer.rate = 0.0
        for k, start in enumerate(range(0, len(x), batch_size)):
            for layer in bns:
                layer.momentum = k / (k + 1)  # moving = running mean of the batch statistics so far
            model(x[start:start + batch_size], training=True)
    finally:
        for layer, m in zip(bns, saved):
            layer.momentum = m
        for layer, r in zip(drops, rates):
            layer.rate = r
    return k + 1


def train_one(name: str, splits: data.MnistSplits, *, epochs: int, batch_size: int, seed: int,
              max_train_flops: float | None = None, max_train_samples: int | None = None,
              augment_max_flops: float = 0, train_flops_budget: float | None = None,
              min_train_samples: int = 256, eval_flops_budget: float = 1e12, min_eval_samples: int = 200,
              bn_samples: int = 512, data_dir=None) -> dict:
    """Build, train, evaluate on held-out digits and save one ladder model; returns its metadata.

    Every model is trained unless its forward FLOPs exceed max_train_flops (None: no limit). Large models
    see fewer digits: as many as train_flops_budget affords (at least min_train_samples). Held-out accuracy
    and decisiveness use the test digits, capped at eval_flops_budget FLOPs (at least min_eval_samples).
    """
    import keras

    model = models.build(name, seed=seed)
    shape = models.describe(model)["input_shape"]
    flops = models.count_flops(model)
    trained = (max_train_flops is None or flops <= max_train_flops) and epochs > 0
    n_train = train_samples_for(flops, epochs, len(splits.y_train), train_flops_budget=train_flops_budget,
                                max_train_samples=max_train_samples, min_train_samples=min_train_samples)
    augmented = flops <= augment_max_flops
    x_train, y_train = splits.x_train[:n_train], splits.y_train[:n_train]
    if augmented:
        x_train, y_train = shift_augment(x_train, y_train)
    n_eval = int(min(len(splits.y_test), max(min_eval_samples, eval_flops_budget // max(flops, 1))))
    x_test, y_test = data.to_input_shape(splits.x_test[:n_eval], shape), splits.y_test[:n_eval]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    bn_batches = 0
    if trained:
        x_fit = data.to_input_shape(x_train, shape)
        model.fit(x_fit, y_train, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
        bn_batches = recalibrate_batchnorm(model, x_fit[:bn_samples], batch_size)
        del x_fit
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    probs = model.predict(x_test, batch_size=64, verbose=0)
    eval_s = time.perf_counter() - t0
    seen = len(y_train) * epochs if trained else 0
    meta = {
        # a seeded 1000-class head says nothing about digits; once trained on them its argmax is the digit
        "accuracy": float(np.mean(probs.argmax(1) == y_test)) if (trained or probs.shape[1] == 10) else None,
        "accuracy_split": f"held-out test ({n_eval} of {len(splits.y_test)} digits)",
        **decisiveness(probs),
        "weights": "trained" if trained else "seeded-init",
        "why_untrained": None if trained else (
            f"{flops:.3g} FLOPs per image is above max_train_flops={max_train_flops:.3g}: "
            "timings use seeded initial weights; parity is judged on logits"),
        "training_note": None if not trained else (
            f"{n_train} of {len(splits.y_train)} training digits x {epochs} epochs"
            + (f" (train_flops_budget={train_flops_budget:.3g} FLOPs affords that many)"
               if n_train < min(len(splits.y_train), max_train_samples or len(splits.y_train)) else "")),
        "data_source": splits.source,
        "train_samples": n_train if trained else 0,
        "train_flops": float(TRAIN_FLOPS_PER_FORWARD * flops * seen),
        "augmentation": "real digits + 8 one-pixel shifts" if (trained and augmented) else None,
        "epochs": epochs if trained else 0,
        "batch_size": batch_size,
        "seed": seed,
        "bn_recalibration": (f"moving statistics = mean batch statistics over {min(bn_samples, len(y_train))} "
                             f"training digits ({bn_batches} batches)") if bn_batches else None,
        "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3),
    }
    models.save(model, meta, data_dir)
    return models.load_meta(name, data_dir)
