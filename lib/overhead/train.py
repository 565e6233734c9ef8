"""Training the ladder on real digits; models too costly to train here keep their seeded initialisation."""
from __future__ import annotations

import time

import numpy as np

from overhead import data, models


SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def shift_augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The real digits plus their 8 one-pixel shifts (zero fill): 9x the training set, nothing synthetic."""
    h, w = x.shape[1:3]
    out = np.zeros((len(SHIFTS), *x.shape), x.dtype)
    for k, (dy, dx) in enumerate(SHIFTS):
        out[k, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(-1, *x.shape[1:]), np.tile(y, len(SHIFTS))


def train_one(name: str, splits: data.MnistSplits, *, epochs: int, batch_size: int, seed: int,
              max_train_flops: float, max_train_samples: int | None = None,
              augment_max_flops: float = 0, data_dir=None) -> dict:
    """Build, train (or keep at seeded init), evaluate and save one ladder model; returns its metadata."""
    import keras

    model = models.build(name, seed=seed)
    shape = models.describe(model)["input_shape"]
    flops = models.count_flops(model)
    n_train = len(splits.y_train) if max_train_samples is None else min(max_train_samples, len(splits.y_train))
    augmented = flops <= augment_max_flops
    x_train, y_train = splits.x_train[:n_train], splits.y_train[:n_train]
    if augmented:
        x_train, y_train = shift_augment(x_train, y_train)
    x_train = data.to_input_shape(x_train, shape)
    x_test = data.to_input_shape(splits.x_test, shape)
    classes = int(model.outputs[0].shape[-1])
    trained = flops <= max_train_flops and epochs > 0
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    if trained:
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0,
                  shuffle=True)
    train_s = time.perf_counter() - t0
    accuracy = None
    if classes == 10:
        probs = model.predict(x_test, batch_size=256, verbose=0)
        accuracy = float(np.mean(probs.argmax(1) == splits.y_test))
    meta = {
        "accuracy": accuracy,
        "accuracy_split": f"held-out test ({len(splits.y_test)} digits)",
        "weights": "trained" if trained else "seeded-init",
        "why_untrained": None if trained else (
            f"{flops:.3g} FLOPs per image is above max_train_flops={max_train_flops:.3g}: "
            "training it on this 2-core CPU is not sensible, so timings use seeded initial weights"),
        "data_source": splits.source,
        "train_samples": n_train if trained else 0,
        "augmentation": "real digits + 8 one-pixel shifts" if (trained and augmented) else None,
        "epochs": epochs if trained else 0,
        "batch_size": batch_size,
        "seed": seed,
        "train_s": round(train_s, 3),
    }
    models.save(model, meta, data_dir)
    return models.load_meta(name, data_dir)
