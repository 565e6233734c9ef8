"""Cached conversions of a .keras file: SavedModel, .tflite variants, .onnx.

Artifacts live in ``artifacts_dir()/<model stem>/<sha256[:12] of the .keras file>/`` so a retrained
model never reuses a stale conversion. Each artifact has a small JSON beside it recording how long
the conversion took (``convert_s``); loading it later is timed separately by the backends (``load_s``).
Every artifact is written to a temporary name and renamed into place, so an interrupted conversion
leaves nothing half-written behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from overhead.backends import onnx_export
from overhead.base import config, data
from overhead.usermodel import feed
from overhead.usermodel.modelfile import file_sha, load_keras, model_sha  # noqa: F401  (the backends' keys)

TFLITE_VARIANTS = ("float", "fp16", "dynamic_int8", "int8")
REPRESENTATIVE_SAMPLES = 100  # real training digits used to calibrate full-integer quantisation


def artifact_dir(model_path, artifacts=None) -> Path:
    """<artifacts root>/<model stem>/<content key>/ (created)."""
    root = Path(artifacts) if artifacts is not None else config.artifacts_dir()
    d = root / Path(model_path).stem / model_sha(model_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def input_shape(model) -> tuple[int, ...]:
    """Per-sample input shape of a (single-input) Keras model."""
    shape = model.inputs[0].shape
    return tuple(int(d) for d in shape[1:])


def _record(meta_path: Path, info: dict) -> None:
    meta_path.write_text(json.dumps(info, indent=2) + "\n")


def _read_record(meta_path: Path) -> dict:
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _quiet_stdout():
    """Converters print progress to stdout; send it to stderr (the worker protocol owns stdout)."""
    import sys

    old = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = old


def _cached_or_build(target: Path, build, kind: str) -> tuple[Path, dict]:
    """Return (target, info); build it (into a temp sibling, then rename) when missing."""
    meta_path = target.with_name(target.name + ".json")
    if target.exists() and meta_path.exists():
        info = _read_record(meta_path)
        info.update(artifact=str(target), cached=True)
        return target, info
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        t0 = time.perf_counter()
        with _quiet_stdout():
            built = build(tmp)  # the path of the artifact inside tmp, or (path, facts to record)
        built, facts = built if isinstance(built, tuple) else (built, {})
        convert_s = time.perf_counter() - t0
        size = (sum(f.stat().st_size for f in built.rglob("*") if f.is_file())
                if built.is_dir() else built.stat().st_size)
        try:
            os.replace(built, target)
        except OSError:  # another process finished the same conversion first
            if not target.exists():
                raise
        info = {"kind": kind, "convert_s": round(convert_s, 4), "bytes": int(size),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **facts}
        _record(meta_path, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = dict(info, artifact=str(target), cached=False)
    return target, info


def _keras_export(model_path, artifacts, name: str, fmt: str, kind: str) -> tuple[Path, dict]:
    """`model.export(<artifact>/name, format=fmt)`, cached like every conversion."""
    target = artifact_dir(model_path, artifacts) / name

    def build(tmp: Path) -> Path:
        out = tmp / name
        model = load_keras(model_path)
        if not getattr(model, "_called", True):  # a freshly loaded model: Keras's ONNX export wants one call
            import numpy as np

            model(np.zeros((1, *input_shape(model)), np.float32), training=False)
        model.export(str(out), format=fmt, verbose=False)
        return out

    return _cached_or_build(target, build, kind)


def savedmodel(model_path, artifacts=None) -> tuple[Path, dict]:
    """Keras `model.export(dir)` (a SavedModel with a `serve` endpoint / serving_default signature)."""
    if Path(model_path).is_dir():  # the user's SavedModel folder is already the artifact
        return Path(model_path), {"kind": "savedmodel", "convert_s": 0.0, "artifact": str(model_path)}
    return _keras_export(model_path, artifacts, "savedmodel", "tf_saved_model", "savedmodel")


def onnx(model_path, artifacts=None) -> tuple[Path, dict]:
    """Keras `model.export(path, format="onnx")` (tf2onnx underneath; dynamic batch dimension), or
    tf2onnx on the SavedModel where that export leaves constants as inputs (see onnx_export)."""
    if Path(model_path).is_dir():  # a user's SavedModel folder: tf2onnx reads its serving_default
        return _savedmodel_onnx(model_path, artifacts)
    target = artifact_dir(model_path, artifacts) / "model.onnx"

    def build(tmp: Path):
        out = tmp / "model.onnx"
        model = load_keras(model_path)
        if not getattr(model, "_called", True):  # a freshly loaded model: Keras's ONNX export wants one call
            model(np.zeros((1, *input_shape(model)), np.float32), training=False)
        return out, onnx_export.build(model, out)

    return _cached_or_build(target, build, "onnx")


def _savedmodel_onnx(sm_dir, artifacts=None) -> tuple[Path, dict]:
    """python -m tf2onnx.convert --saved-model DIR (in a child: tf2onnx's graph rewrites stay out of ours)."""
    import subprocess
    import sys

    target = artifact_dir(sm_dir, artifacts) / "model.onnx"

    def build(tmp: Path) -> Path:
        out = tmp / "model.onnx"
        proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(sm_dir), "--output",
                               str(out), "--signature_def", "serving_default"], capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            raise RuntimeError(f"tf2onnx could not convert the SavedModel: {lines[-1] if lines else proc.returncode}")
        return out

    return _cached_or_build(target, build, "onnx")


def representative_inputs(shape, n: int = REPRESENTATIVE_SAMPLES) -> np.ndarray:
    """Real training digits at the model's input shape (never the test digits used for accuracy)."""

    x, _ = data.inputs_for(shape, n, split="train")
    return x


def tflite(model_path, variant: str = "float", artifacts=None, io=None) -> tuple[Path, dict]:
    """A .tflite conversion of the model's SavedModel, float I/O in every variant.

    float: plain; fp16: float16 weights; dynamic_int8: int8 weights, float activations (dynamic range);
    int8: full-integer kernels calibrated on real digits, float32 input/output kept so every runner
    takes the same input (QUANTIZE/DEQUANTIZE ops at the edges). ``io``: a user model's
    :class:`~overhead.usermodel.feed.ModelIO` (calibration inputs generated from its signature).
    """
    if variant not in TFLITE_VARIANTS:
        raise ValueError(f"unknown tflite variant {variant!r}; choose one of {TFLITE_VARIANTS}")
    sm_dir, _ = savedmodel(model_path, artifacts)
    target = artifact_dir(model_path, artifacts) / f"model.{variant}.tflite"

    def build(tmp: Path) -> Path:
        import tensorflow as tf

        conv = tf.lite.TFLiteConverter.from_saved_model(str(sm_dir))
        if variant != "float":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "fp16":
            conv.target_spec.supported_types = [tf.float16]
        elif variant == "int8":
            if feed.is_ladder(model_path) or io is None:
                rep = representative_inputs(input_shape(load_keras(model_path)))
                samples = [[rep[i:i + 1]] for i in range(len(rep))]
            else:  # a user's model: inputs generated from its signature
                samples = io.representative(REPRESENTATIVE_SAMPLES)

            def dataset():
                yield from samples

            conv.representative_dataset = dataset
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.float32
            conv.inference_output_type = tf.float32
        out = tmp / target.name
        out.write_bytes(conv.convert())
        return out

    return _cached_or_build(target, build, f"tflite.{variant}")


def conversions(model_path, artifacts=None) -> dict[str, dict]:
    """The recorded conversions of a model (artifact name -> its JSON record), without converting."""
    d = artifact_dir(model_path, artifacts)
    return {p.name[:-5]: _read_record(p) for p in sorted(d.glob("*.json"))}


def tflite_kernels(interp) -> str:
    """Which ops ran in XNNPACK (delegate partitions) and which as TFLite builtin kernels."""
    ops = interp._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    plain = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o["index"] for o in plain for t in o["outputs"]}
    by_index = {o["index"]: o for o in plain}
    covered: set[int] = set()
    for d in delegates:
        inputs = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if n is None or n in covered or t in inputs:
                continue
            covered.add(n)
            stack.extend(int(i) for i in by_index[n]["inputs"] if int(i) >= 0)
    rest = [o["op_name"] for o in plain if o["index"] not in covered]
    total = len(plain)
    if not delegates:
        return f"builtin {total}/{total} ops"
    moved = sorted({by_index[i]["op_name"] for i in covered})
    text = f"xnnpack {len(covered)}/{total} ops in {len(delegates)} partition(s) [{','.join(moved)}]"
    if rest:
        text += f"; builtin {len(rest)} [{','.join(sorted(set(rest)))}]"
    return text
