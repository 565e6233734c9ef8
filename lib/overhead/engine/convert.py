"""Keras graph -> the engine's program (a flat list of :class:`~overhead.engine.ops.Op`).

Walks Sequential chains, functional graphs with branches, shared tensors, residual adds and nested
models, reading weights once in Keras' own NHWC/HWIO layout (float64 here; the passes fold and
then store float32). Anything outside the supported set raises :class:`UnsupportedLayerError`.
Keras is imported here only, inside the functions (``import overhead.engine`` stays TF-free).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overhead.engine import convert_apps
from overhead.engine.ops import F32, Op, UnsupportedLayerError


@dataclass
class Program:
    """A converted model before planning: ops in execution order over numbered values."""
    ops: list
    in_val: int
    out_vals: list
    input_shape: tuple  # (None, ...) like Keras
    name: str


def _np(v) -> np.ndarray:
    import keras
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)


def _act_spec(fn, layer):
    """Normalised activation spec from a Keras activation function, or UnsupportedLayerError."""
    import keras
    A = keras.activations
    if fn is None or fn is A.linear:
        return None
    table = {A.relu: ("relu", 0.0, None, 0.0), A.relu6: ("relu", 0.0, 6.0, 0.0),
             A.leaky_relu: ("relu", 0.2, None, 0.0), A.sigmoid: ("sigmoid",), A.tanh: ("tanh",),
             A.silu: ("silu",), A.elu: ("elu", 1.0), A.softmax: ("softmax", -1),
             A.hard_sigmoid: ("hard_sigmoid",), A.hard_silu: ("hard_silu",), A.gelu: ("gelu", False)}
    for f, spec in table.items():
        if fn is f:
            return spec
    name = getattr(fn, "__name__", repr(fn))
    raise UnsupportedLayerError(layer, f"activation {name!r} is not supported")


class _Converter:
    def __init__(self):
        import keras
        self.keras = keras
        self.ops: list[Op] = []
        self.nvals = 0
        L = keras.layers
        self.identity = {L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
                         L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
                         L.Identity}
        self.handlers = {
            L.Conv2D: self._conv, L.DepthwiseConv2D: self._dwconv, L.Dense: self._dense,
            L.BatchNormalization: self._bn, L.Activation: self._activation, L.ReLU: self._relu,
            L.LeakyReLU: self._leaky, L.ELU: self._elu, L.Softmax: self._softmax,
            L.MaxPooling2D: self._pool, L.AveragePooling2D: self._pool,
            L.GlobalAveragePooling2D: self._gpool, L.GlobalMaxPooling2D: self._gpool,
            L.Flatten: self._flatten, L.Reshape: self._reshape, L.ZeroPadding2D: self._zeropad,
            L.Rescaling: self._rescaling, L.Add: self._merge, L.Subtract: self._merge,
            L.Multiply: self._merge, L.Average: self._merge, L.Maximum: self._merge,
            L.Minimum: self._merge, L.Concatenate: self._concat,
        }
        self.handlers.update(convert_apps.handlers(self))
        self.act_spec = _act_spec

    def new_val(self) -> int:
        self.nvals += 1
        return self.nvals - 1

    # ---- graph walking
    def model(self, model, in_vals: list[int]) -> list[int]:
        keras = self.keras
        from keras.src.models.functional import Functional
        if isinstance(model, keras.Sequential):
            if len(in_vals) != 1:
                raise UnsupportedLayerError(model, "a Sequential model takes exactly one input")
            v = in_vals[0]
            for layer in model.layers:
                (v,) = self.operation(layer, [v], None)
            return [v]
        if type(model) is not Functional and not isinstance(model, Functional):
            raise UnsupportedLayerError(model, "subclassed models have no graph to convert; "
                                               "use a Sequential or functional model")
        if type(model).call is not Functional.call:
            raise UnsupportedLayerError(model, "a functional model subclass that overrides call()")
        tmap = {id(t): v for t, v in zip(model.inputs, in_vals)}
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                op = node.operation
                if op is None or node.is_input or isinstance(op, keras.layers.InputLayer):
                    continue
                if any(id(t) not in tmap for t in node.input_tensors):
                    continue  # not reachable from the inputs (Keras skips it too)
                outs = self.operation(op, [tmap[id(t)] for t in node.input_tensors], node)
                if len(outs) != len(node.outputs):
                    raise UnsupportedLayerError(op, "unexpected number of outputs")
                for t, v in zip(node.outputs, outs):
                    tmap[id(t)] = v
        return [tmap[id(t)] for t in model.outputs]

    def operation(self, layer, ins: list[int], node) -> list[int]:
        keras = self.keras
        if node is not None and isinstance(layer, keras.layers.Layer):
            self._check_call(layer, node)
        if not isinstance(layer, keras.layers.Layer) and node is not None:  # x + 3.0 and the like
            return [convert_apps.keras_op(self, layer, node, ins)]
        if isinstance(layer, keras.Model):
            return self.model(layer, ins)
        if type(layer) is keras.layers.InputLayer:
            return ins
        dtype = getattr(layer, "compute_dtype", "float32")
        if dtype != "float32":
            raise UnsupportedLayerError(layer, f"compute dtype {dtype} (only float32)")
        if getattr(layer, "quantization_mode", None):
            raise UnsupportedLayerError(layer, "quantized layers")
        if getattr(layer, "lora_enabled", False):
            raise UnsupportedLayerError(layer, "LoRA-enabled layers")
        if type(layer) in self.identity:
            self._one(layer, ins)
            return [self._emit("identity", layer, ins)]
        handler = self.handlers.get(type(layer))  # exact class: a subclass may override call()
        if handler is None:
            raise UnsupportedLayerError(layer)
        if type(layer) not in (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply,
                               keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum,
                               keras.layers.Concatenate):
            self._one(layer, ins)
        if getattr(layer, "data_format", "channels_last") not in ("channels_last", None):
            raise UnsupportedLayerError(layer, "data_format='channels_first'")
        return [handler(layer, ins)]

    def _check_call(self, layer, node):
        kt = self.keras.KerasTensor
        args, kwargs = node.arguments.args, node.arguments.kwargs
        for key, value in kwargs.items():
            if key in ("training", "mask") and (value is None or value is False):
                continue
            raise UnsupportedLayerError(layer, f"called with {key}={value!r}")
        flat = self.keras.tree.flatten(args)
        if any(not isinstance(a, kt) for a in flat if a is not None):
            raise UnsupportedLayerError(layer, "called with non-tensor positional arguments")

    @staticmethod
    def _one(layer, ins):
        if len(ins) != 1:
            raise UnsupportedLayerError(layer, f"expects one input, got {len(ins)}")

    def _emit(self, kind, layer, ins, p=None, bias=None, act=None) -> int:
        out = self.new_val()
        self.ops.append(Op(kind, getattr(layer, "name", kind), type(layer).__name__, ins, out, p, bias, act))
        return out

    # ---- layers
    @staticmethod
    def _bias(layer):
        return _np(layer.bias) if getattr(layer, "use_bias", False) and layer.bias is not None else None

    def _conv(self, layer, ins):
        if tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(layer, f"dilation_rate={tuple(layer.dilation_rate)} (dilated convolution)")
        kernel = _np(layer.kernel)  # (kh, kw, cin, cout)
        kind = "conv"
        if getattr(layer, "groups", 1) != 1:
            kind, kernel = convert_apps.grouped_kernel(layer, kernel)
        kh, kw = kernel.shape[:2]
        sh, sw = layer.strides
        return self._emit(kind, layer, ins, {"kernel": kernel, "kh": kh, "kw": kw, "sh": sh, "sw": sw,
                                               "padding": self._padding(layer)},
                          self._bias(layer), _act_spec(layer.activation, layer))

    def _dwconv(self, layer, ins):
        if tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(layer, f"dilation_rate={tuple(layer.dilation_rate)} (dilated convolution)")
        kernel = _np(layer.kernel)  # (kh, kw, cin, mult)
        sh, sw = layer.strides
        return self._emit("dwconv", layer, ins, {"kernel": kernel, "kh": kernel.shape[0], "kw": kernel.shape[1],
                                                 "sh": sh, "sw": sw, "padding": self._padding(layer)},
                          self._bias(layer), _act_spec(layer.activation, layer))

    def _dense(self, layer, ins):
        return self._emit("dense", layer, ins, {"kernel": _np(layer.kernel)}, self._bias(layer),
                          _act_spec(layer.activation, layer))

    def _bn(self, layer, ins):
        c = layer.moving_mean.shape[0]
        gamma = _np(layer.gamma) if layer.scale else np.ones(c)
        beta = _np(layer.beta) if layer.center else np.zeros(c)
        inv = gamma / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
        shift = beta - _np(layer.moving_mean) * inv
        spec = getattr(layer, "input_spec", None)
        rank = getattr(spec, "ndim", None) or len(layer._reduction_axes) + 1
        return self._emit("bn", layer, ins, {"axis": int(layer.axis) % rank, "rank": rank,
                                             "scale": inv, "shift": shift})

    def _activation(self, layer, ins):
        return self._emit("act", layer, ins, act=_act_spec(layer.activation, layer) or ("linear",))

    def _relu(self, layer, ins):
        mv = None if layer.max_value is None else float(layer.max_value)
        spec = ("relu", float(layer.negative_slope), mv, float(layer.threshold))
        return self._emit("act", layer, ins, act=spec)

    def _leaky(self, layer, ins):
        return self._emit("act", layer, ins, act=("relu", float(layer.negative_slope), None, 0.0))

    def _elu(self, layer, ins):
        return self._emit("act", layer, ins, act=("elu", float(layer.alpha)))

    def _softmax(self, layer, ins):
        axis = layer.axis
        axis = tuple(axis) if isinstance(axis, (list, tuple)) else int(axis)
        return self._emit("act", layer, ins, act=("softmax", axis))

    @staticmethod
    def _padding(layer):
        pad = str(layer.padding).lower()
        if pad not in ("same", "valid"):
            raise UnsupportedLayerError(layer, f"padding={pad!r}")
        return pad

    def _pool(self, layer, ins):
        ph, pw = layer.pool_size
        sh, sw = layer.strides
        mode = "max" if isinstance(layer, self.keras.layers.MaxPooling2D) else "avg"
        return self._emit("pool", layer, ins, {"ph": ph, "pw": pw, "sh": sh, "sw": sw, "mode": mode,
                                               "padding": self._padding(layer)})

    def _gpool(self, layer, ins):
        mode = "max" if isinstance(layer, self.keras.layers.GlobalMaxPooling2D) else "avg"
        return self._emit("gpool", layer, ins, {"mode": mode, "keepdims": bool(layer.keepdims)})

    def _flatten(self, layer, ins):
        return self._emit("reshape", layer, ins, {"target": (-1,)})

    def _reshape(self, layer, ins):
        return self._emit("reshape", layer, ins, {"target": tuple(int(d) for d in layer.target_shape)})

    def _zeropad(self, layer, ins):
        (t, b), (l, r) = layer.padding
        return self._emit("zeropad", layer, ins, {"pads": ((int(t), int(b)), (int(l), int(r)))})

    def _rescaling(self, layer, ins):
        scale = np.asarray(_np(layer.scale) if not np.isscalar(layer.scale) else layer.scale, np.float64)
        offset = np.asarray(_np(layer.offset) if not np.isscalar(layer.offset) else layer.offset, np.float64)
        return self._emit("scale_shift", layer, ins, {"scale": scale.astype(F32), "shift": offset.astype(F32)})

    def _merge(self, layer, ins):
        if len(ins) < 2:
            raise UnsupportedLayerError(layer, "a merge layer needs at least two inputs")
        mode = type(layer).__name__.lower()
        if mode == "subtract" and len(ins) != 2:
            raise UnsupportedLayerError(layer, "Subtract takes exactly two inputs")
        return self._emit("merge", layer, ins, {"mode": mode})

    def _concat(self, layer, ins):
        if int(layer.axis) == 0:
            raise UnsupportedLayerError(layer, "concatenation along the batch axis")
        return self._emit("concat", layer, ins, {"axis": int(layer.axis)})


def load_keras(model_or_path):
    """A keras.Model from a model or a .keras/.h5 path (TypeError for anything else)."""
    import keras
    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        model = keras.models.load_model(model_or_path, compile=False)
    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras expects a keras.Model or a path, got {type(model).__name__}")
    return model


def convert(model_or_path) -> Program:
    """The unrewritten program of a Keras model (or .keras/.h5 path), one op per layer."""
    model = load_keras(model_or_path)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise UnsupportedLayerError(model, "the model has no defined input (build it with an Input first)")
    if len(inputs) != 1:
        raise UnsupportedLayerError(model, f"models with {len(inputs)} inputs (only one)")
    if str(inputs[0].dtype) != "float32":
        raise UnsupportedLayerError(model, f"input dtype {inputs[0].dtype} (only float32)")
    conv = _Converter()
    in_val = conv.new_val()
    out_vals = conv.model(model, [in_val])
    shape = tuple(None if d is None else int(d) for d in inputs[0].shape)
    return Program(conv.ops, in_val, out_vals, shape, model.name)
