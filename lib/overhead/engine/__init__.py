"""The NumPy inference engine: a Keras CNN/MLP converted once, run (and reloaded) with NumPy alone.

    from overhead.engine import from_keras, load
    net = from_keras(model)            # or a path to a .keras / .h5 file (imports Keras)
    probs = net(x)                     # == model(x, training=False), as a fresh np.ndarray
    net.save("model.npz"); net2 = load("model.npz")   # load imports NumPy and the engine only

Modules, one job each: ``convert`` (Keras graph -> program; ``convert_apps``: the layers the Keras
Applications families add), ``passes`` (BN folding, activation
and pool fusion), ``plan`` (buffers for one input shape), ``kernels`` / ``gemm`` / ``epilogue`` /
``views`` / ``layerops`` / ``dwconv`` (the steps), ``threadpool`` (the engine's threads), ``model`` (NumpyModel), ``format``
(the .npz engine file), ``plain`` (``numpy.plain``: the NumPy a reader would write).
Importing this package never imports TensorFlow or Keras; ``from_keras`` does, lazily.
"""
from __future__ import annotations

from overhead.engine import format as _format
from overhead.engine.convert import convert
from overhead.engine.format import EngineFileError
from overhead.engine.model import NumpyModel
from overhead.engine.ops import SUPPORTED, UnsupportedLayerError
from overhead.engine.passes import optimize

__all__ = ["from_keras", "load", "NumpyModel", "UnsupportedLayerError", "EngineFileError", "SUPPORTED"]


def from_keras(model_or_path, threads: int | None = None) -> NumpyModel:
    """Convert a Keras model (or a saved .keras/.h5 path) into a :class:`NumpyModel`.

    Weights are read once, here. Raises :class:`UnsupportedLayerError` for anything the engine does
    not implement. `threads`: the number of threads one call may use (None: the BLAS thread count
    in force when called); see :class:`NumpyModel`.
    """
    prog = convert(model_or_path)
    ops = optimize(prog.ops, prog.out_vals)
    return NumpyModel(ops, prog.in_val, prog.out_vals, prog.input_shape, name=prog.name, threads=threads)


def load(path, threads: int | None = None) -> NumpyModel:
    """The :class:`NumpyModel` saved in the engine file `path` (NumPy only; see :mod:`overhead.engine.format`)."""
    return _format.load(path, threads, factory=NumpyModel)
