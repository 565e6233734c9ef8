"""Result files written atomically (temp file in the same folder + ``os.replace``), and raw-sample files.

Readers see either the old file or the complete new one, never a partial write.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Mapping

import numpy as np


class UnwritableDirectoryError(OSError):
    """The folder meant to hold a result file cannot be created or written."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; results should get the usual permissions of a new file.
_FILE_MODE = 0o666 & ~_umask()


def _prepare_dir(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableDirectoryError(
            f"cannot write {path}: folder {path.parent} cannot be created ({exc.strerror or exc})") from exc


@contextmanager
def atomic_open(path, mode: str = "w", **open_kwargs):
    """Open a temp file beside `path`; on success it replaces `path`, on any error it is removed.

    Readers therefore see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    _prepare_dir(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UnwritableDirectoryError(
            f"cannot write {path}: folder {path.parent} is not writable ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_csv(df, path, **to_csv_kwargs) -> Path:
    """Write a DataFrame as CSV atomically (index=False unless given)."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, **to_csv_kwargs)
    return Path(path)


def save_samples(path, samples: Mapping[str, np.ndarray]) -> Path:
    """Save named raw sample arrays to a compressed .npz, atomically (the path is used as given)."""
    arrays = {str(name): np.asarray(values) for name, values in samples.items()}
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def load_samples(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
