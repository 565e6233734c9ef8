"""Open a user's model in the formats people have: ``.keras``, legacy Keras 2 ``.h5``, a SavedModel folder.

:func:`detect` looks at the path only (no TensorFlow import: the CLI calls it before starting workers);
:func:`open_model` loads the model in a worker and returns an :class:`OpenedModel` with its
:class:`~overhead.usermodel.signature.Signature`. Every refusal is a :class:`ModelFileError` whose message is one
line naming the problem and the fix that really applies to it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from overhead.usermodel import signature

FORMATS = ("keras", "h5", "savedmodel")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SAVE_HINT = "save it with model.save('name.keras'), or pass a Keras 2 .h5 file or a SavedModel folder"


class ModelFileError(ValueError):
    """A model path that cannot be used; the message is one line with the fix."""


@dataclass
class OpenedModel:
    """A loaded user model. ``keras_model`` is None for a SavedModel folder (no Keras object inside)."""

    path: Path
    format: str  # one of FORMATS
    loader: str  # "keras" (Keras 3), "tf_keras" (Keras 2) or "tf.saved_model"
    keras_model: object = None
    saved_model: object = None  # the tf.saved_model.load() object of a SavedModel folder
    signature: object = None  # overhead.usermodel.signature.Signature
    notes: list = field(default_factory=list)

    @property
    def has_keras(self) -> bool:
        return self.keras_model is not None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def detect(arg) -> tuple[Path, str]:
    """(resolved path, format) of a model path, checked without importing TensorFlow."""
    path = Path(arg).expanduser()
    if not path.exists():
        raise ModelFileError(f"model file not found: {arg}; pass a .keras file, a Keras 2 .h5 file or a "
                             "TensorFlow SavedModel folder")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"model is not readable: {arg}; check its permissions")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return path.resolve(), "savedmodel"
        raise ModelFileError(f"{arg} is a folder without saved_model.pb, so not a TensorFlow SavedModel; "
                             "pass a .keras file, a .h5 file or a folder written by model.export() / "
                             "tf.saved_model.save()")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_MAGIC:
        _check_h5(path, arg)
        return path.resolve(), "h5"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as zf:
                json.loads(zf.read("config.json"))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError):
            raise ModelFileError(f"not a valid Keras model file: {arg} is a zip archive without a readable "
                                 f"config.json (damaged, or another kind of archive); {SAVE_HINT}") from None
        if path.suffix != ".keras":
            raise ModelFileError(f"{arg} is a Keras model archive but Keras only opens it under a .keras "
                                 f"name; rename it to {path.stem}.keras")
        return path.resolve(), "keras"
    raise ModelFileError(f"not a valid Keras model file: {arg} is neither a .keras archive, an HDF5 (.h5) file "
                         f"nor a SavedModel folder; {SAVE_HINT}")


def _check_h5(path: Path, arg) -> None:
    try:
        import h5py
    except ImportError:  # h5py ships with TensorFlow; without it the loader will say what is wrong
        return
    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
    except OSError as exc:
        raise ModelFileError(f"{arg} is a damaged HDF5 file ({exc}); {SAVE_HINT}") from None
    if not has_config:
        raise ModelFileError(f"{arg} holds weights only (written by save_weights), not a model; save the "
                             "whole model with model.save('name.keras') (or model.save('name.h5') in Keras 2)")


def open_model(arg) -> OpenedModel:
    """Load a model file or folder; the signature is read from the loaded model."""

    path, fmt = detect(arg)
    if fmt == "savedmodel":
        opened = _open_savedmodel(path)
    elif fmt == "keras":
        opened = OpenedModel(path, fmt, "keras", keras_model=_load_keras3(path, arg))
    else:
        opened = _open_h5(path, arg)
    opened.signature = signature.of_opened(opened)
    return opened


def _load_keras3(path: Path, arg):
    import keras


    try:
        return load_keras(path)  # the process-wide cache the backends share
    except Exception as exc:
        raise ModelFileError(f"Keras {keras.__version__} cannot load {arg}: {_one_line(exc)}"
                             f"{_advice(exc)}") from None


def _advice(exc: BaseException) -> str:
    text = str(exc)
    if "custom" in text.lower() or "Could not locate" in text or "Unknown layer" in text:
        return ("; the model uses a custom layer or function: decorate it with "
                "@keras.saving.register_keras_serializable() and import it before loading")
    return ""


def _open_h5(path: Path, arg) -> OpenedModel:
    """Keras 3 reads most Keras 2 .h5 files; what it cannot read, tf_keras (Keras 2) can."""
    import keras


    try:
        model = load_keras(path)  # the process-wide cache the backends share
        return OpenedModel(path, "h5", "keras", keras_model=model)
    except Exception as exc:
        first = _one_line(exc, 120)
    try:
        import tf_keras
    except ImportError:
        raise ModelFileError(f"Keras {keras.__version__} cannot load the Keras 2 file {arg} ({first}) and "
                             "tf_keras is not installed; install tf-keras or re-save the model as .keras "
                             "with Keras 3") from None
    try:
        model = tf_keras.models.load_model(str(path), compile=False)
    except Exception as exc2:
        raise ModelFileError(f"neither Keras {keras.__version__} ({first}) nor tf_keras "
                             f"({_one_line(exc2, 120)}) can load {arg}{_advice(exc2)}") from None
    return OpenedModel(path, "h5", "tf_keras", keras_model=model,
                       notes=[f"loaded with tf_keras: Keras {keras.__version__} said {first}"])


def _open_savedmodel(path: Path) -> OpenedModel:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelFileError(f"TensorFlow cannot load the SavedModel {path}: {_one_line(exc)}") from None
    if "serving_default" not in getattr(loaded, "signatures", {}):
        raise ModelFileError(f"the SavedModel {path} has no 'serving_default' signature; export it with "
                             "model.export(folder) or tf.saved_model.save(obj, folder, signatures=fn)")
    return OpenedModel(path, "savedmodel", "tf.saved_model", saved_model=loaded)


@functools.lru_cache(maxsize=64)
def _sha_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha(path) -> str:
    """sha256 of a file's content (hex), cached per (path, mtime, size)."""
    p = Path(path).resolve()
    if p.is_dir():  # a SavedModel folder: the hash of its files
        return tree_sha(p)
    st = p.stat()
    return _sha_cached(str(p), st.st_mtime_ns, st.st_size)


def model_sha(path) -> str:
    """The short content key of a model file (first 12 hex digits of its sha256)."""
    return file_sha(path)[:12]


@functools.lru_cache(maxsize=8)
def _load_keras_cached(path: str, sha: str):
    import keras  # keras (and TensorFlow) only when a model is really loaded

    return keras.saving.load_model(path, compile=False)


def load_keras(model_path):
    """The Keras model of a .keras file, loaded once per process (keyed on its content)."""
    p = str(Path(model_path).resolve())
    return _load_keras_cached(p, file_sha(p))


def tree_sha(path) -> str:
    """sha256 (hex) of a file, or of a folder's files (relative names and contents, sorted)."""
    p = Path(path)
    if not p.is_dir():
        return file_sha(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def keras_object_skip_reason(opened: OpenedModel, backend: str) -> str | None:
    """Why a backend that needs a Keras object cannot run this model, or None if it can."""
    if opened.has_keras:
        return None
    return (f"a SavedModel folder holds no Keras model, and {backend} runs a Keras object; "
            "pass the .keras (or .h5) file to run it")
