"""The NumPy inference engine: any supported Keras CNN/MLP, converted once, run with NumPy alone.

    from overhead.numpy_cnn import from_keras
    net = from_keras(model)            # or a path to a .keras / .h5 file
    probs = net(x)                     # == model(x, training=False), as a fresh np.ndarray

Conversion walks the Keras graph (Sequential chains, functional graphs with branches, shared
tensors, residual adds, nested models) into a flat program of ops holding float32 weights in
Keras' own NHWC/HWIO layout. Exact rewrites shrink it: a BatchNormalization that directly follows
a Conv2D/DepthwiseConv2D/Dense (sole consumer, linear activation) is folded into its weights; a
stand-alone activation is fused in place into its producer; the bias and a monotone activation of
a convolution feeding only a max-pool move after the pool (max(a+b) == max(a)+b, exactly, in float
arithmetic too), and a 'valid' max-pool with pool == strides is fused into the convolution.
Anything outside the supported set raises :class:`UnsupportedLayerError` at conversion, never a
wrong answer at call time.

For each input shape (and thread count, when it has large GEMMs) the program is compiled once into a
plan (see :mod:`overhead.numpy_layers`): steps bound to preallocated buffers, reused across layers
by liveness, so a call allocates nothing but its result.

Threads: ``threads=N`` (default: the BLAS thread count in force, so threadpoolctl limits are
honoured) is the number of threads a call may use. Large steps are split into chunks run by the
caller and N-1 engine worker threads while OpenBLAS is held to one thread (set and restored around
the call through threadpoolctl's library handle: two ctypes calls, ~1 us; models without large
GEMMs skip this entirely). ``OVERHEAD_NUMPY_PARALLEL=blas`` instead leaves the parallelism to
OpenBLAS (kept for comparison).
"""
from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

import numpy as np

from overhead import numpy_layers as nl
from overhead.numpy_layers import F32, Val

__all__ = ["from_keras", "NumpyModel", "UnsupportedLayerError", "SUPPORTED"]

SUPPORTED = (
    "InputLayer; Conv2D (any kernel/strides, same/valid, no dilation, groups=1); DepthwiseConv2D "
    "(depth_multiplier >= 1, no dilation); BatchNormalization; Dense; Activation / ReLU / LeakyReLU / "
    "ELU / Softmax (activations: linear, relu, relu6, leaky_relu, elu, sigmoid, tanh, silu/swish, "
    "softmax); MaxPooling2D / AveragePooling2D; GlobalAveragePooling2D / GlobalMaxPooling2D; Flatten; "
    "Reshape; ZeroPadding2D; Rescaling; Add / Subtract / Multiply / Average / Maximum / Minimum; "
    "Concatenate; Dropout-like training-only layers (identity); nested Sequential/functional models; "
    "channels_last, float32 only"
)
_PLAN_CACHE = 8  # input shapes whose buffers are kept (oldest dropped)
# "engine": chunked steps spread over the engine's own threads, BLAS single-threaded (default);
# "blas": chunks in order and BLAS threads doing the parallel work (kept for comparison).
PARALLEL = os.environ.get("OVERHEAD_NUMPY_PARALLEL", "engine")


class UnsupportedLayerError(ValueError):
    """A layer (or model feature) the NumPy engine does not implement; raised at conversion."""

    def __init__(self, layer, why: str = ""):
        cls = type(layer).__name__
        name = getattr(layer, "name", "?")
        self.layer_class, self.layer_name = cls, name
        detail = f": {why}" if why else ""
        super().__init__(f"unsupported layer {cls} {name!r}{detail}. The NumPy engine supports: {SUPPORTED}.")


class _Op:
    """One op of the program: output value `out` computed from values `ins`."""
    __slots__ = ("kind", "name", "cls", "ins", "out", "p", "bias", "act")

    def __init__(self, kind, layer, ins, out, p=None, bias=None, act=None):
        self.kind, self.ins, self.out = kind, list(ins), out
        self.name, self.cls = getattr(layer, "name", kind), type(layer).__name__
        self.p, self.bias, self.act = p or {}, bias, act

    def __repr__(self):
        extra = []
        if self.bias is not None:
            extra.append("bias")
        if self.act is not None:
            extra.append(self.act[0])
        return f"{self.kind}[{self.name}]({','.join(map(str, self.ins))})->{self.out}" + (
            f" +{'+'.join(extra)}" if extra else "")


ALIAS_KINDS = ("reshape", "identity")  # zero-copy views of their input


# =========================================================================== conversion

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
             A.silu: ("silu",), A.elu: ("elu", 1.0), A.softmax: ("softmax", -1)}
    for f, spec in table.items():
        if fn is f:
            return spec
    name = getattr(fn, "__name__", repr(fn))
    raise UnsupportedLayerError(layer, f"activation {name!r} is not supported")


class _Converter:
    def __init__(self):
        import keras
        self.keras = keras
        self.ops: list[_Op] = []
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
        if node is not None:
            self._check_call(layer, node)
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
        self.ops.append(_Op(kind, layer, ins, out, p, bias, act))
        return out

    # ---- layers
    @staticmethod
    def _bias(layer):
        return _np(layer.bias) if getattr(layer, "use_bias", False) and layer.bias is not None else None

    def _conv(self, layer, ins):
        if tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(layer, f"dilation_rate={tuple(layer.dilation_rate)} (dilated convolution)")
        if getattr(layer, "groups", 1) != 1:
            raise UnsupportedLayerError(layer, f"groups={layer.groups} (grouped convolution)")
        kernel = _np(layer.kernel)  # (kh, kw, cin, cout)
        kh, kw = kernel.shape[:2]
        sh, sw = layer.strides
        return self._emit("conv", layer, ins, {"kernel": kernel, "kh": kh, "kw": kw, "sh": sh, "sw": sw,
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


# =========================================================================== rewrites

def _consumers(ops):
    uses: dict[int, list[_Op]] = {}
    for op in ops:
        for v in op.ins:
            uses.setdefault(v, []).append(op)
    return uses


def _fold_bn(ops, outputs):
    """Fold BatchNormalization into the Conv2D/DepthwiseConv2D/Dense right before it when that op's
    output feeds only the BN, is not a model output and has a linear activation."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        if op.kind == "bn":
            src = producer.get(op.ins[0])
            axis_last = op.p["axis"] == op.p["rank"] - 1
            if (src is not None and src.kind in ("conv", "dwconv", "dense") and src.act is None
                    and len(uses[src.out]) == 1 and src.out not in outputs and axis_last):
                inv, shift = op.p["scale"], op.p["shift"]
                k = src.p["kernel"]
                if src.kind == "dwconv":
                    src.p["kernel"] = k * inv.reshape(k.shape[2], k.shape[3])
                else:
                    src.p["kernel"] = k * inv
                b = src.bias if src.bias is not None else 0.0
                src.bias = b * inv + shift
                src.out = op.out
                producer[src.out] = src
                src.p["folded"] = src.p.get("folded", ()) + (op.name,)
                continue
        keep.append(op)
    return keep


_FUSE_INTO = ("conv", "dwconv", "dense", "scale_shift", "merge", "pool", "gpool", "concat", "bn")


def _fuse_act(ops, outputs):
    """Apply a stand-alone activation in place in its producer's buffer when nothing else reads it."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        if op.kind == "act":
            src = producer.get(op.ins[0])
            if (src is not None and src.kind in _FUSE_INTO and src.act is None
                    and len(uses[src.out]) == 1 and src.out not in outputs):
                src.act = None if op.act == ("linear",) else op.act
                src.out = op.out
                producer[src.out] = src
                continue
        keep.append(op)
    return keep


def _commute_pool(ops, outputs):
    """conv(+bias, monotone act) -> max-pool  ==>  conv -> max-pool(+bias, act): 1/(ph*pw) the work.
    Exact: rounding x -> fl(x + b) and the activations are non-decreasing, so they commute with max."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    for op in ops:
        if op.kind != "pool" or op.p["mode"] != "max" or op.bias is not None:
            continue
        src = producer.get(op.ins[0])
        if (src is None or src.kind not in ("conv", "dwconv") or len(uses[src.out]) != 1
                or src.out in outputs or not nl.is_monotone(src.act)):
            continue
        if src.act is not None and op.act is not None:
            continue
        op.bias, src.bias = src.bias, None
        if src.act is not None:
            op.act, src.act = src.act, None
    return ops


def _fuse_conv_pool(ops, outputs):
    """conv -> max-pool (pool == strides, 'valid'; bias/act already moved after the pool) becomes
    one conv op that computes only the rows the pool keeps, partner-major (see build_conv)."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        p = op.p
        if (op.kind == "pool" and p["mode"] == "max" and p["padding"] == "valid"
                and (p["ph"], p["pw"]) == (p["sh"], p["sw"])):
            src = producer.get(op.ins[0])
            if (src is not None and src.kind == "conv" and "pool" not in src.p and len(uses[src.out]) == 1
                    and src.out not in outputs and src.bias is None and src.act is None):
                src.p["pool"] = (p["ph"], p["pw"])
                src.bias, src.act, src.out = op.bias, op.act, op.out
                src.p["fused"] = src.p.get("fused", ()) + (op.name,)
                producer[src.out] = src
                continue
        keep.append(op)
    return keep


def _finalize(ops):
    """Weights to their run-time form: contiguous float32, conv kernels as (kh*kw*cin, cout)."""
    for op in ops:
        if op.kind == "conv":
            k = op.p.pop("kernel")
            op.p["w2"] = np.ascontiguousarray(k.reshape(-1, k.shape[3]), dtype=F32)
            op.p["cin"] = k.shape[2]
        elif op.kind == "dwconv":
            op.p["w"] = np.ascontiguousarray(op.p.pop("kernel"), dtype=F32)
        elif op.kind == "dense":
            op.p["w"] = np.ascontiguousarray(op.p.pop("kernel"), dtype=F32)
        elif op.kind == "bn":  # stand-alone: becomes x * scale + shift along its axis
            op.kind = "scale_shift"
            bshape = (-1,) + (1,) * (op.p["rank"] - 1 - op.p["axis"])  # broadcast along its axis
            op.p["scale"] = op.p["scale"].reshape(bshape).astype(F32)
            op.p["shift"] = op.p["shift"].reshape(bshape).astype(F32)
        if op.bias is not None:
            op.bias = np.ascontiguousarray(op.bias, dtype=F32)
    return ops


# =========================================================================== plans

def _out_shape(op, shapes):
    """Output shape of `op` for input shapes `shapes` (batch included); ValueError if impossible."""
    s = shapes[0]
    k, p = op.kind, op.p
    if k in ("conv", "dwconv", "pool"):
        if len(s) != 4:
            raise ValueError(f"{op.cls} {op.name!r} needs a 4-D NHWC input, got shape {s}")
        kh, kw = (p["kh"], p["kw"]) if k != "pool" else (p["ph"], p["pw"])
        oh = nl.out_size(s[1], kh, p["sh"], p["padding"])[0]
        ow = nl.out_size(s[2], kw, p["sw"], p["padding"])[0]
        if k == "conv" and "pool" in p:
            oh, ow = oh // p["pool"][0], ow // p["pool"][1]
        if oh < 1 or ow < 1:
            raise ValueError(f"{op.cls} {op.name!r}: input {s} is smaller than its window")
        if k == "conv":
            if s[3] != p["cin"]:
                raise ValueError(f"{op.cls} {op.name!r} expects {p['cin']} channels, got {s[3]}")
            c = p["w2"].shape[1]
        elif k == "dwconv":
            if s[3] != p["w"].shape[2]:
                raise ValueError(f"{op.cls} {op.name!r} expects {p['w'].shape[2]} channels, got {s[3]}")
            c = s[3] * p["w"].shape[3]
        else:
            c = s[3]
        return (s[0], oh, ow, c)
    if k == "dense":
        if s[-1] != p["w"].shape[0]:
            raise ValueError(f"{op.cls} {op.name!r} expects {p['w'].shape[0]} features, got {s[-1]}")
        return s[:-1] + (p["w"].shape[1],)
    if k in ("scale_shift", "act", "identity"):
        return s
    if k == "gpool":
        if len(s) != 4:
            raise ValueError(f"{op.cls} {op.name!r} needs a 4-D NHWC input, got shape {s}")
        return (s[0], 1, 1, s[3]) if p["keepdims"] else (s[0], s[3])
    if k == "reshape":
        size = int(np.prod(s[1:]))
        t = p["target"]
        known = int(np.prod([d for d in t if d != -1]))
        if -1 in t:
            if known == 0 or size % known:
                raise ValueError(f"{op.cls} {op.name!r} cannot reshape {s} to {t}")
            t = tuple(size // known if d == -1 else d for d in t)
        if int(np.prod(t)) != size:
            raise ValueError(f"{op.cls} {op.name!r} cannot reshape {s} to {t}")
        return (s[0],) + tuple(t)
    if k == "zeropad":
        (pt, pb), (pl, pr) = p["pads"]
        return (s[0], s[1] + pt + pb, s[2] + pl + pr, s[3])
    if k == "merge":
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"{op.cls} {op.name!r}: incompatible input shapes {shapes}") from None
    if k == "concat":
        ax = p["axis"] % len(s)
        if ax == 0 or any(len(t) != len(s) or t[:ax] + t[ax + 1:] != s[:ax] + s[ax + 1:] for t in shapes):
            raise ValueError(f"{op.cls} {op.name!r}: cannot concatenate {shapes} on axis {p['axis']}")
        return s[:ax] + (sum(t[ax] for t in shapes),) + s[ax + 1:]
    raise AssertionError(k)


class _Pool:
    """Buffers for one plan: best-fit reuse of flat float32 blocks by liveness, plus persistent
    padded buffers (border fixed once) keyed by geometry."""

    def __init__(self):
        self.free: list[np.ndarray] = []
        self.blocks: list[np.ndarray] = []
        self.persist: dict = {}
        self.temps: list[np.ndarray] = []

    def take(self, shape) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, int(np.prod(shape)))
        fits = [b for b in self.free if b.size >= n]
        if fits:
            block = min(fits, key=lambda b: b.size)
            self.free = [b for b in self.free if b is not block]
        else:
            block = np.empty(n, F32)
            self.blocks.append(block)
        return block, block[: int(np.prod(shape))].reshape(shape)

    def give(self, block):
        self.free.append(block)

    # the interface the kernels see
    def temp(self, shape) -> np.ndarray:
        block, arr = self.take(shape)
        self.temps.append(block)
        return arr

    def persistent(self, key, shape, fill) -> np.ndarray:
        buf = self.persist.get(key)
        if buf is None:
            buf = self.persist[key] = np.full(shape, fill, F32)
        return buf

    def end_op(self):
        for b in self.temps:
            self.give(b)
        self.temps = []

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks) + sum(b.nbytes for b in self.persist.values())


class _Plan:
    """The program compiled for one input shape: steps over an env of values."""

    def __init__(self, ops, in_val, out_vals, in_shape, par, threads):
        self.in_shape = in_shape
        self.in_strides = np.empty(in_shape, F32).strides
        n_ops = len(ops)
        nv = 1 + max([in_val] + [op.out for op in ops])
        shapes = {in_val: tuple(in_shape)}
        base = {in_val: in_val}
        for op in ops:  # shapes and the buffer that owns each value
            shapes[op.out] = _out_shape(op, [shapes[v] for v in op.ins])
            base[op.out] = base[op.ins[0]] if op.kind in ALIAS_KINDS else op.out
        last = {}
        for i, op in enumerate(ops):
            for v in op.ins:
                last[base[v]] = i
        for v in out_vals:
            last[base[v]] = n_ops
        pool = _Pool()
        pool.par, pool.threads, pool.parallel = par, threads, False
        template: list = [None] * nv
        vals = {in_val: Val(shapes[in_val], None, in_val)}
        owner: dict[int, np.ndarray] = {}
        dying: dict[int, list[int]] = {}
        for b, i in last.items():
            dying.setdefault(i, []).append(b)
        steps, names, dynamic = [], [], []
        for i, op in enumerate(ops):
            ins = [vals[v] for v in op.ins]
            shape = shapes[op.out]
            if op.kind in ALIAS_KINDS:
                src = ins[0]
                if src.arr is not None:
                    arr = src.arr.reshape(shape)
                    vals[op.out] = Val(shape, arr, op.out)
                    template[op.out] = arr
                else:  # a view of the call's input, made per call
                    vals[op.out] = Val(shape, None, op.out)
                    step = _alias_step(src.idx, op.out, shape)
                    steps.append(step)
                    names.append(op)
                    dynamic.append(step)
            else:
                if op.kind == "zeropad":  # its border must stay zero: a buffer of its own
                    out = np.zeros(shape, F32)
                    pool.blocks.append(out)
                else:
                    owner[op.out], out = pool.take(shape)
                vals[op.out] = Val(shape, out, op.out)
                template[op.out] = out
                steps.append(nl.BUILDERS[op.kind](op, ins, out, pool))
                names.append(op)
                pool.end_op()
            for b in dying.get(i, ()):
                if b in owner:
                    pool.give(owner.pop(b))
        self.steps, self.ops, self.template = steps, names, template
        self.shapes = shapes
        self.in_val, self.out_vals = in_val, list(out_vals)
        self.out_shapes = [shapes[v] for v in out_vals]
        self.nbytes = pool.nbytes()
        self.parallel = pool.parallel  # has GEMMs big enough to split: compiled per thread count
        self.threads = threads
        if len(self.out_vals) == 1:
            self._out = self.out_vals[0]

    def run(self, x):
        env = self.template.copy()
        env[self.in_val] = x
        for step in self.steps:
            step(env)
        if len(self.out_vals) == 1:
            return env[self._out].copy()
        return [env[v].copy() for v in self.out_vals]


def _alias_step(src, dst, shape):
    def alias(env):
        env[dst] = env[src].reshape(shape)
    return alias


# =========================================================================== the model

class NumpyModel:
    """A converted model: ``net(x)`` == ``model(x, training=False)``, computed with NumPy only.

    `x` must be a float32 array shaped like the model input (any batch size). The result is a
    fresh array (never a buffer reused by the next call). Not safe to call from several threads at
    once on the same object (calls are serialised with a lock).
    """

    def __init__(self, ops, in_val, out_vals, input_shape, name="model", threads=None,
                 output_names=None):
        self._ops, self._in_val, self._out_vals = ops, in_val, out_vals
        self.input_shape = tuple(input_shape)  # (None, ...) like Keras
        self.name = name
        self.output_names = output_names
        self._plans: dict = {}  # shape -> plan (and (shape, threads) -> plan); oldest evicted first
        self._lock = threading.Lock()
        self._blas = None
        self._par = nl.Parallel()
        weakref.finalize(self, self._par.stop)
        self.threads = threads

    # ---- threads
    @property
    def threads(self):
        return self._threads

    @threads.setter
    def threads(self, threads):
        if threads is not None:
            threads = int(threads)
            if threads < 1:
                raise ValueError(f"threads must be a positive integer or None, got {threads}")
        self._threads = threads

    # ---- calls
    def __call__(self, x):
        if type(x) is not np.ndarray:
            x = np.asarray(x)
        plan = self._plans.get(x.shape)
        if plan is None:
            plan = self._plan_for(x)
        if x.dtype is not _F32_DTYPE and x.dtype != _F32_DTYPE:  # `is`: the fast, usual case
            raise ValueError(f"{self.name}: input dtype must be float32, got {x.dtype}")
        if x.strides != plan.in_strides:  # not C-contiguous (or an empty batch)
            if plan is _EMPTY:
                return self._empty(x.shape)
            x = np.ascontiguousarray(x)
        with self._lock:
            if not plan.parallel:  # small GEMMs only: BLAS runs them on one thread anyway
                return plan.run(x)
            plan, restore = self._enter_threads(x.shape)
            try:
                return plan.run(x)
            finally:
                restore()

    def _enter_threads(self, shape):
        """The plan for `shape` at the thread count in force, with BLAS set for it.
        Large GEMMs are split into chunks run on `threads` engine threads (default: the BLAS thread
        count in force, so threadpoolctl limits are honoured) with BLAS itself held to one thread
        meanwhile. Returns (plan, restore) where restore() undoes the settings."""
        blas = self._blas
        if blas is None:
            blas = self._blas = _blas_controllers()
        prev = [c.get_num_threads() for c in blas]
        n = self._threads or (max(prev) if prev else (os.cpu_count() or 1))
        if PARALLEL == "blas":  # for comparison: BLAS' own threads, one engine thread
            want, t = n, 1
        else:
            want, t = 1, n
        plan = self._plans.get((shape, t))
        if plan is None:
            plan = self._compile(shape, t)
        self._par.threads = t
        changed = [(c, p) for c, p in zip(blas, prev) if p != want]
        for c, _ in changed:
            c.set_num_threads(want)

        def restore():
            for c, p in changed:
                c.set_num_threads(p)
        return plan, restore

    def _check_shape(self, x):
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], x.shape[1:])):
            exp = "(batch, " + ", ".join("?" if d is None else str(d) for d in want[1:]) + ")"
            raise ValueError(f"{self.name}: input shape must be {exp}, got {x.shape}")
        if x.dtype != np.float32:
            raise ValueError(f"{self.name}: input dtype must be float32, got {x.dtype}")

    def _plan_for(self, x):
        """First call with this shape: validate, compile single-threaded (a plan without large GEMMs
        serves every thread count; one with them is recompiled per thread count on demand)."""
        self._check_shape(x)
        if x.shape[0] == 0:
            return _EMPTY
        return self._compile(x.shape, 1)

    def _compile(self, shape, threads):
        plan = _Plan(self._ops, self._in_val, self._out_vals, shape, self._par, threads)
        self._plans[shape] = self._plans.get(shape) or plan
        self._plans[(shape, threads)] = plan
        if plan.parallel:  # keep one thread count's buffers per shape
            for key in [k for k in self._plans if len(k) == 2 and isinstance(k[0], tuple)
                        and k[0] == shape and k[1] != threads]:
                del self._plans[key]
            if self._plans[shape] is not plan:
                self._plans[shape] = _Stub(plan)
        while len(self._plans) > 2 * _PLAN_CACHE:
            del self._plans[next(iter(self._plans))]
        return plan

    def _empty(self, shape):
        plan = self._plans.get((1,) + shape[1:]) or self._plan_for(np.empty((1,) + shape[1:], F32))
        outs = [np.empty((0,) + s[1:], F32) for s in plan.out_shapes]
        return outs[0] if len(outs) == 1 else outs

    # ---- introspection
    def plan(self, batch=1):
        """The plan for `batch` rows of the model's input shape at the current thread setting."""
        shape = (batch,) + tuple(d if d is not None else 1 for d in self.input_shape[1:])
        plan = self._plans.get(shape) or self._plan_for(np.empty(shape, F32))
        if not plan.parallel:
            return plan
        plan, restore = self._enter_threads(shape)
        restore()
        return plan

    def summary(self) -> str:
        lines = [f"NumpyModel {self.name!r}: input {self.input_shape}, {len(self._ops)} ops"]
        lines += [f"  {op!r}" for op in self._ops]
        return "\n".join(lines)

    def profile(self, x, repeats: int = 20) -> list[dict]:
        """Median time of every step of the plan for `x` (one row per op), for finding the hot spots."""
        import time
        self(x)
        with self._lock:
            plan, restore = self._plans[x.shape], (lambda: None)
            if plan.parallel:
                plan, restore = self._enter_threads(x.shape)
            env = plan.template.copy()
            env[plan.in_val] = np.ascontiguousarray(x)
            times = np.zeros((repeats, len(plan.steps)))
            try:
                for r in range(repeats):
                    for i, step in enumerate(plan.steps):
                        t0 = time.perf_counter_ns()
                        step(env)
                        times[r, i] = time.perf_counter_ns() - t0
            finally:
                restore()
        med, low = np.median(times, axis=0) / 1e3, times.min(axis=0) / 1e3
        return [{"op": op.name, "kind": op.kind, "class": op.cls, "us": float(t), "min_us": float(lo),
                 "flops": _op_flops(op, plan.shapes[op.out])}
                for op, t, lo in zip(plan.ops, med, low)]

    def __repr__(self):
        return f"NumpyModel({self.name!r}, input={self.input_shape}, ops={len(self._ops)}, threads={self._threads})"


def _op_flops(op, out_shape) -> int:
    """2 x multiply-adds of a Conv2D / DepthwiseConv2D / Dense op for its output shape (0 otherwise)."""
    rows = int(np.prod(out_shape[:-1]))
    if op.kind == "conv":
        ph, pw = op.p.get("pool", (1, 1))
        return 2 * rows * ph * pw * op.p["w2"].shape[0] * op.p["w2"].shape[1]
    if op.kind == "dense":
        return 2 * rows * op.p["w"].shape[0] * op.p["w"].shape[1]
    if op.kind == "dwconv":
        return 2 * rows * out_shape[-1] * op.p["kh"] * op.p["kw"]
    return 0


_F32_DTYPE = np.dtype(np.float32)


class _EmptyBatch:
    in_strides = None


_EMPTY = _EmptyBatch()


class _Stub:
    """Stands for a shape whose plans are per thread count (its single-threaded probe dropped)."""
    parallel = True

    def __init__(self, plan):
        self.out_shapes, self.in_strides = plan.out_shapes, plan.in_strides


def _blas_controllers():
    """threadpoolctl handles of the BLAS NumPy uses (all BLAS libraries if it cannot tell)."""
    from threadpoolctl import ThreadpoolController
    libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    mine = [c for c in libs if os.path.basename(os.path.dirname(c.filepath)).startswith("numpy")]
    return mine or libs


def from_keras(model_or_path, threads: int | None = None) -> NumpyModel:
    """Convert a Keras model (or a saved .keras/.h5 path) into a :class:`NumpyModel`.

    Weights are read once, here. Raises :class:`UnsupportedLayerError` for anything the engine does
    not implement. `threads` limits OpenBLAS during calls (None: leave the process setting alone).
    """
    import keras
    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        model = keras.models.load_model(model_or_path, compile=False)
    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras expects a keras.Model or a path, got {type(model).__name__}")
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
    outputs = set(out_vals)
    ops = _fold_bn(conv.ops, outputs)
    ops = _fuse_act(ops, outputs)
    ops = _commute_pool(ops, outputs)
    ops = _fuse_conv_pool(ops, outputs)
    ops = _finalize(ops)
    ops = _prune(ops, out_vals)
    shape = tuple(None if d is None else int(d) for d in inputs[0].shape)
    return NumpyModel(ops, in_val, out_vals, shape, name=model.name, threads=threads)


def _prune(ops, out_vals):
    """Drop ops whose results no output needs."""
    need = set(out_vals)
    keep = []
    for op in reversed(ops):
        if op.out in need:
            keep.append(op)
            need.update(op.ins)
    return keep[::-1]
