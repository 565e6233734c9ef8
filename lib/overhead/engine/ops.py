"""The engine's program representation: ops over numbered values, and the engine's errors.

Imports NumPy only, so a saved engine file can be loaded without TensorFlow or Keras.
"""
from __future__ import annotations

import numpy as np

F32 = np.float32

SUPPORTED = (
    "InputLayer; Conv2D (any kernel/strides, same/valid, no dilation, groups=1); DepthwiseConv2D "
    "(depth_multiplier >= 1, no dilation); BatchNormalization; Dense; Activation / ReLU / LeakyReLU / "
    "ELU / Softmax (activations: linear, relu, relu6, leaky_relu, elu, sigmoid, tanh, silu/swish, "
    "hard_sigmoid, hard_silu/hard_swish, gelu, softmax); grouped Conv2D; SeparableConv2D; "
    "MaxPooling2D / AveragePooling2D; GlobalAveragePooling2D / GlobalMaxPooling2D; Flatten; "
    "Reshape; ZeroPadding2D; Cropping2D; Rescaling; Normalization; LayerNormalization (last axis); "
    "Add / Subtract / Multiply / Average / Maximum / Minimum; +, -, *, / of tensors and constants; "
    "Concatenate; ConvNeXt's LayerScale / StochasticDepth; Dropout-like training-only layers (identity); "
    "nested Sequential/functional models; channels_last, float32 only"
)

# ops whose output is a zero-copy view of their input
ALIAS_KINDS = ("reshape", "identity")


class UnsupportedLayerError(ValueError):
    """A layer (or model feature) an engine does not implement; names the layer's class and name."""

    def __init__(self, layer, why: str = "", supported: str = SUPPORTED, who: str = "The NumPy engine",
                 cls: str | None = None, name: str | None = None):
        cls = cls or type(layer).__name__
        name = name or getattr(layer, "name", "?")
        self.layer_class, self.layer_name = cls, name
        detail = f": {why}" if why else ""
        super().__init__(f"unsupported layer {cls} {name!r}{detail}. {who} supports: {supported}.")


class Op:
    """One op of the program: output value `out` computed from values `ins`.

    `kind` selects the kernel, `p` holds its parameters (weights as arrays, the rest plain Python),
    `bias` an optional per-channel bias and `act` an optional activation spec (a tuple, see
    :mod:`overhead.engine.epilogue`) applied in place after it."""
    __slots__ = ("kind", "name", "cls", "ins", "out", "p", "bias", "act")

    def __init__(self, kind, name, cls, ins, out, p=None, bias=None, act=None):
        self.kind, self.name, self.cls = kind, name, cls
        self.ins, self.out = list(ins), out
        self.p, self.bias, self.act = p or {}, bias, act

    def __repr__(self):
        extra = ["bias"] if self.bias is not None else []
        if self.act is not None:
            extra.append(self.act[0])
        tail = f" +{'+'.join(extra)}" if extra else ""
        return f"{self.kind}[{self.name}]({','.join(map(str, self.ins))})->{self.out}{tail}"


class Val:
    """A value of the plan for one input shape: `arr` is its fixed buffer (or a view of one), None
    when it is derived from the model input and so only known at call time (then read env[idx])."""
    __slots__ = ("shape", "arr", "idx")

    def __init__(self, shape, arr, idx):
        self.shape, self.arr, self.idx = tuple(shape), arr, idx
