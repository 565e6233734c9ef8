"""The seed's task end to end: one image as PNG bytes -> label, each stage timed, for every backend.

Stages (per single-image call):

- ``decode``: PNG bytes -> pixels. Pillow (``Image.open(BytesIO(png)).convert(mode)``, which decodes)
  for the NumPy / LiteRT / ONNX Runtime paths; ``tf.io.decode_png`` for the Keras / TF paths.
- ``preprocess``: resize to the model input (bilinear with antialiasing: Pillow's filter scales with the
  reduction, ``tf.image.resize(..., antialias=True)`` does the same; the two agree within 0.004 on
  [0, 1] pixels), scale to float32 in [0, 1], add the batch axis (flatten for MLPs). Pillow ``resize`` +
  ``np.asarray(..., float32) / 255`` + ``reshape``; ``tf.image.resize`` + ``/ 255`` + ``tf.reshape``
  + ``.numpy()`` on the TF paths (eager ops, as a user writes them).
- ``inference``: the backend's runner (``backends.prepare``): NumPy in, NumPy out for every path, so
  each path pays its own input conversion (NumPy -> tensor / interpreter buffer / OrtValue) here.
- ``postprocess``: ``argmax`` + the top probability, in NumPy (every runner returns NumPy). The ladder
  models end in a softmax, so no explicit softmax is applied (``explicit_softmax=True`` adds one).

Images: real MNIST test digits as a camera would deliver them: each digit upscaled once, offline,
with Pillow's bilinear filter to ``IMAGE_SIZE`` (640x480) and stored as an 8-bit RGB PNG. Every path
decodes that PNG, converts it to the model's channels and resizes it down to the model's input: the
same real work for every path. ``image_size=None`` gives PNGs at the model's own size (then the resize
is a no-op, which only the unit tests use). GC stays on while timing (as users run); it is collected
before every round.
"""
from __future__ import annotations

import gc
import io
import json
import time
from pathlib import Path

import numpy as np

from overhead import backends
from overhead import backends as registry
from overhead.base import atomic, config, data, envinfo
from overhead.experiments import sweep
from overhead.harness.child import error_text
from overhead.ladder import models as zoo

IMAGE_SIZE = (640, 480)  # (width, height) of the camera-sized PNGs
STAGES = ("decode", "preprocess", "inference", "postprocess")
COLUMNS = ["machine", "model", "backend", "stage", "median_us", "share", "total_us"]
TF_FAMILIES = ("keras", "tf")


# --------------------------------------------------------------------------- images

def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) grey or (H, W, 3) RGB pixels -> PNG bytes (Pillow, default compression)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image_geometry(shape) -> tuple[int, int, int, bool]:
    """(height, width, channels, flat) of a model input shape: [784] -> (28, 28, 1, True)."""
    shape = [int(s) for s in shape]
    if len(shape) == 1:
        side = int(round(shape[0] ** 0.5))
        if side * side != shape[0]:
            raise ValueError(f"flat input of {shape[0]} values is not a square image")
        return side, side, 1, True
    h, w, c = shape
    if c not in (1, 3):
        raise ValueError(f"input with {c} channels is not a grey or RGB image")
    return h, w, c, False


def png_digits(shape, n: int = 32, data_dir=None, image_size=IMAGE_SIZE) -> tuple[list[bytes], np.ndarray]:
    """PNG bytes of the first n real test digits: camera-sized RGB (image_size = (width, height)), or
    at the model's input size when image_size is None (see the module docstring)."""
    from PIL import Image


    h, w, c, _ = image_geometry(shape)
    if image_size is not None:
        (w, h), c = image_size, 3
    d = data.load_mnist(data_dir)
    idx = np.arange(n) % len(d.y_test)
    out = []
    for i in idx:
        img = Image.fromarray(np.rint(d.x_test[i, ..., 0] * 255).astype(np.uint8), mode="L")
        if (h, w) != img.size[::-1]:
            img = img.resize((w, h), Image.BILINEAR)
        if c == 3:
            img = img.convert("RGB")
        out.append(encode_png(np.asarray(img)))
    return out, d.y_test[idx]


# --------------------------------------------------------------------------- stage functions

class Pipeline:
    """decode / preprocess / postprocess of one model's input geometry, in one library's idiom."""

    style = "numpy+pillow"

    def __init__(self, shape, explicit_softmax: bool = False):
        self.h, self.w, self.c, self.flat = image_geometry(shape)
        self.batch_shape = (1, self.h * self.w * self.c) if self.flat else (1, self.h, self.w, self.c)
        self.explicit_softmax = explicit_softmax

    def decode(self, png: bytes):
        from PIL import Image

        return Image.open(io.BytesIO(png)).convert("L" if self.c == 1 else "RGB")

    def preprocess(self, img):
        from PIL import Image

        img = img.resize((self.w, self.h), Image.BILINEAR)
        return (np.asarray(img, dtype=np.float32) / np.float32(255.0)).reshape(self.batch_shape)

    def postprocess(self, out) -> tuple[int, float]:
        probs = np.asarray(out)[0]
        if self.explicit_softmax:
            e = np.exp(probs - probs.max())
            probs = e / e.sum()
        label = int(probs.argmax())
        return label, float(probs[label])


class TFPipeline(Pipeline):
    """The same stages with tf.io / tf.image eager ops (TensorFlow must be importable)."""

    style = "tf.io+tf.image"

    def __init__(self, shape, explicit_softmax: bool = False):
        super().__init__(shape, explicit_softmax)
        import tensorflow as tf

        self.tf = tf

    def decode(self, png: bytes):
        return self.tf.io.decode_png(png, channels=self.c)

    def preprocess(self, img):
        tf = self.tf
        x = tf.image.resize(img, (self.h, self.w), method="bilinear", antialias=True) / 255.0
        return tf.reshape(x, self.batch_shape).numpy()  # every runner takes NumPy and converts it itself


def pipeline_for(backend: str, shape, explicit_softmax: bool = False) -> Pipeline:
    """TF-style stages for the Keras / TF backends, NumPy + Pillow for the others."""

    family = backends.get(backend).family
    cls = TFPipeline if family in TF_FAMILIES else Pipeline
    return cls(shape, explicit_softmax)


def run_once(pipe: Pipeline, runner, png: bytes, clock=time.perf_counter_ns) -> tuple[list[int], int]:
    """One image through the four stages: (ns per stage, label)."""
    t0 = clock()
    img = pipe.decode(png)
    t1 = clock()
    x = pipe.preprocess(img)
    t2 = clock()
    out = runner(x)
    t3 = clock()
    label, _ = pipe.postprocess(out)
    t4 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3], label


# --------------------------------------------------------------------------- measurement

def measure(pipes: dict, runners: dict, pngs: list[bytes], *, calls: int = 200, budget_s: float = 2.0,
            rounds: int = 5, warmup: int = 3, min_calls: int = 5) -> dict:
    """Time the stages of each backend over single-image calls, backends interleaved in rounds.

    Every backend gets up to `calls` calls (at least `min_calls`), split over `rounds` rounds in a
    rotated order, within `budget_s` seconds of its own. Returns, per backend,
    ``{"samples": int64 (n, 4) ns, "labels": int array}``.
    """
    names = list(runners)
    out = {b: {"samples": [], "labels": []} for b in names}
    spent = dict.fromkeys(names, 0.0)
    for b in names:  # first calls build functions / plans; not measured
        for i in range(warmup):
            run_once(pipes[b], runners[b], pngs[i % len(pngs)])
    per_round = max(1, -(-calls // rounds))
    min_round = max(1, -(-min_calls // rounds))
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)] if names else []
        for b in order:
            got, pipe, runner = out[b], pipes[b], runners[b]
            gc.collect()  # collected between rounds, on while timing (as users run)
            run_once(pipe, runner, pngs[0])  # the previous backend evicted this one's caches
            t0 = time.perf_counter()
            deadline = t0 + budget_s / rounds
            done = 0
            while done < per_round and len(got["labels"]) < calls:
                ns, label = run_once(pipe, runner, pngs[len(got["labels"]) % len(pngs)])
                got["samples"].append(ns)
                got["labels"].append(label)
                done += 1
                if done >= min_round and time.perf_counter() > deadline:
                    break
            spent[b] += time.perf_counter() - t0
    return {b: {"samples": np.asarray(v["samples"], dtype=np.int64).reshape(-1, len(STAGES)),
                "labels": np.asarray(v["labels"], dtype=np.int64), "seconds": spent[b]}
            for b, v in out.items()}


def rows(machine: str, model: str, backend: str, samples_ns: np.ndarray) -> list[dict]:
    """pipeline.csv rows: per stage the median (us), its share of the sum of stage medians, that sum."""
    med = np.median(np.asarray(samples_ns, dtype=np.float64), axis=0) / 1e3
    total = float(med.sum())
    return [{"machine": machine, "model": model, "backend": backend, "stage": s, "median_us": float(m),
             "share": float(m / total) if total > 0 else float("nan"), "total_us": total}
            for s, m in zip(STAGES, med)]


def save_rows(new, path, columns):
    """Write `new` rows to a result CSV atomically, keeping the rows of other (model, backend) pairs."""
    import pandas as pd


    path = Path(path)
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=columns)
    if len(old) and len(new):
        old = old[~old.set_index(["model", "backend"]).index.isin(new.set_index(["model", "backend"]).index)]
    frame = pd.concat([old.reindex(columns=columns), new], ignore_index=True) if len(old) else new
    atomic.atomic_write_csv(frame.reindex(columns=columns), path)
    return frame


def input_shape(model_path) -> list:
    """Per-sample input shape from the model's JSON, else from the .keras file's config (no TF)."""
    import zipfile

    try:
        return list(zoo.load_meta(model_path)["input_shape"])
    except (OSError, KeyError, ValueError):
        with zipfile.ZipFile(model_path) as z:
            cfg = json.loads(z.read("config.json"))
        layers = cfg["config"]["layers"]
        return [int(d) for d in layers[0]["config"]["batch_shape"][1:]]


def run(models, backends=None, *, calls: int = 200, budget_s: float = 2.0, rounds: int = 5, threads=None,
        extra_models=(), data_dir=None, machine=None, artifacts=None, n_images: int = 32, out_dir=None,
        explicit_softmax: bool = False, progress: bool = True, image_size=IMAGE_SIZE):
    """Measure the PNG -> label pipeline of models x backends in this process; write pipeline.csv.

    Returns (rows as written, a status table per model x backend: style, calls, seconds, label
    accuracy on the real digits, agreement with the first backend's labels, status, reason).
    Backends that fail to prepare or to run are listed in the status table and in the metadata,
    and have no pipeline rows. Rows of other (model, backend) pairs already in the file are kept.
    """
    import os

    import pandas as pd
    from tqdm.auto import tqdm


    names = list(backends or registry.NAMES)
    for n in names:
        registry.get(n)
    threads = int(threads or os.cpu_count() or 1)
    if any(registry.get(n).family in TF_FAMILIES + ("numpy",) for n in names):
        import tensorflow  # noqa: F401  (imported here so that set_threads configures it before any op)
    registry.set_threads(threads)
    machine = machine or envinfo.machine_id()
    path = (Path(out_dir) if out_dir else config.results_dir(machine, data_dir)) / "pipeline.csv"
    all_rows, status = [], []
    todo = sweep.resolve_models(list(models), extra_models, data_dir)
    for model, mpath in tqdm(todo, desc="pipeline", disable=not progress):
        shape = input_shape(mpath)
        pngs, labels = png_digits(shape, n_images, data_dir, image_size)
        pipes, runners = {}, {}
        for b in names:
            try:
                runners[b] = registry.prepare(b, mpath, 1, threads, artifacts)
                pipes[b] = pipeline_for(b, shape, explicit_softmax)
                run_once(pipes[b], runners[b], pngs[0])
            except Exception as exc:  # a backend that cannot run here is reported, not fatal
                runners.pop(b, None)
                status.append({"model": model, "backend": b, "status": "failed", "reason": error_text(exc)})
        got = measure(pipes, runners, pngs, calls=calls, budget_s=budget_s, rounds=rounds)
        ref = None
        for b, res in got.items():
            n = len(res["labels"])
            truth = labels[np.arange(n) % len(labels)]
            ref = res["labels"] if ref is None else ref
            m = min(n, len(ref))
            status.append({"model": model, "backend": b, "status": "ok", "reason": "", "style": pipes[b].style,
                           "calls": n, "seconds": round(res["seconds"], 3),
                           "label_accuracy": float(np.mean(res["labels"] == truth)) if n else float("nan"),
                           "agree_with_first": float(np.mean(res["labels"][:m] == ref[:m])) if m else float("nan")})
            all_rows += rows(machine, model, b, res["samples"])
        del runners, pipes
    new = pd.DataFrame(all_rows, columns=COLUMNS)
    save_rows(new, path, COLUMNS)
    table = pd.DataFrame(status)
    envinfo.write_meta(path, extra={
        "stage": "pipeline", "models": [m for m, _ in todo], "backends": names, "calls": calls,
        "budget_s": budget_s, "rounds": rounds, "threads_setting": threads, "n_images": n_images,
        "explicit_softmax": explicit_softmax, "images": (f"real MNIST test digits as {image_size[0]}x{image_size[1]} RGB PNGs, resized to the "
                   "model's input by every path" if image_size else "real MNIST test digits as PNG at the "
                   "model's input size"),
        "image_size": list(image_size) if image_size else None,
        "gc": "on while timing, collected before every round",
        "input_conversion": "every runner takes NumPy and pays its own conversion (TF paths: tensor.numpy() "
                            "ends preprocess)",
        "total_us": "sum of the stage medians; share = stage median / total_us",
        "status": table.to_dict(orient="records")}, threads=threads)
    return new, table
