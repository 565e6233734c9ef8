"""The model ladder: named Keras builders spanning five decades of FLOPs, with analytic FLOPs and params."""
from __future__ import annotations

import json
from pathlib import Path

from overhead.base import config
from overhead.base.modelnames import canonical

MNIST_SHAPE = (28, 28, 1)
# pixel mean and standard deviation of the MNIST training digits in [0, 1]: what EfficientNet's built-in
# Normalization standardises with here, in the place of ImageNet's statistics
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# name -> (builder kwargs, one-line description); ordered by FLOPs, smallest first.
SPECS: dict[str, tuple[dict, str]] = {
    "logreg": ({"kind": "mlp", "hidden": ()}, "softmax regression 784-10"),
    "mlp_tiny": ({"kind": "mlp", "hidden": (32,)}, "tiny MLP 784-32-10"),
    "cnn_seed": ({"kind": "cnn", "convs": (8,), "pool_each": False, "dense": ()},
                 "the seed's small CNN: conv 3x3x8, ReLU, 2x2 max-pool, dense 10"),
    "mlp_wide": ({"kind": "mlp", "hidden": (256, 256)}, "MLP 784-256-256-10"),
    "cnn_small": ({"kind": "cnn", "convs": (16, 32), "pool_each": True, "dense": ()},
                  "conv16-pool-conv32-pool-dense10"),
    "mobilenetv2_035_32px": ({"kind": "app", "app": "MobileNetV2", "input_shape": (32, 32, 3), "alpha": 0.35},
                             "Keras Applications MobileNetV2, width multiplier 0.35, at 32x32x3 (10 outputs, "
                             "random init); trained on resized MNIST digits, fed in [0, 1] like every ladder "
                             "model (no [-1, 1] preprocess_input: BatchNorm follows the first conv)"),
    "cnn_medium": ({"kind": "cnn", "convs": (32, 64), "pool_each": True, "dense": (128,)},
                   "conv32-pool-conv64-pool-dense128-dense10"),
    "efficientnetb0_32px": ({"kind": "app", "app": "EfficientNetB0", "input_shape": (32, 32, 3)},
                            "Keras Applications EfficientNet-B0 at 32x32x3 (10 outputs, random init); trained on "
                            "resized MNIST digits, fed in [0, 1]: its built-in Rescaling(1/255) is set to 1 and its "
                            "Normalization standardises them with MNIST's pixel mean and std"),
    "cnn_mnist": ({"kind": "cnn", "convs": (32, 64), "pool_each": False, "dense": (128,)},
                  "the classic Keras MNIST convnet: conv32-conv64-pool-dense128-dense10"),
    "resnet_mnist": ({"kind": "resnet", "input_shape": MNIST_SHAPE, "widths": (24, 48, 96),
                      "blocks": (2, 2, 2), "stem": "cifar", "classes": 10},
                     "small ResNet on 28x28x1: 3 stages x 2 basic blocks, widths 24-48-96"),
    "resnet18_32px_halfwidth": ({"kind": "resnet", "input_shape": (32, 32, 3), "widths": (32, 64, 128, 256),
                                 "blocks": (2, 2, 2, 2), "stem": "cifar", "classes": 10},
                                "ResNet-18 at 32x32x3 (3x3 stem as for CIFAR), half width; trained on resized MNIST "
                                "digits"),
    "resnet18_32px": ({"kind": "resnet", "input_shape": (32, 32, 3), "widths": (64, 128, 256, 512),
                       "blocks": (2, 2, 2, 2), "stem": "cifar", "classes": 10},
                      "ResNet-18 at 32x32x3 (3x3 stem as for CIFAR); trained on resized MNIST digits"),
    "resnet18_224px": ({"kind": "resnet", "input_shape": (224, 224, 3), "widths": (64, 128, 256, 512),
                        "blocks": (2, 2, 2, 2), "stem": "imagenet", "classes": 1000},
                       "ResNet-18 at 224x224x3 (7x7/2 stem and max-pool as for ImageNet, 1000 outputs); trained "
                       "on resized MNIST digits"),
}
LADDER: list[str] = list(SPECS)
DESCRIPTIONS: dict[str, str] = {name: desc for name, (_spec, desc) in SPECS.items()}
# the Keras Applications architectures of the ladder (depthwise convolutions, squeeze-and-excitation); the others are
# the plain MLPs, CNNs and ResNets
APPLICATIONS: tuple[str, ...] = tuple(name for name, (spec, _desc) in SPECS.items() if spec["kind"] == "app")


def build(name: str, seed: int = 0):
    """A fresh, seeded Keras model of the ladder (softmax output, float32)."""
    import keras

    name = canonical(name)  # old names (resnet18_cifar, resnet18_imagenet, ...) still build
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(LADDER)}")
    keras.utils.set_random_seed(seed)
    spec = dict(SPECS[name][0])
    kind = spec.pop("kind")
    model = {"mlp": _mlp, "cnn": _cnn, "resnet": _resnet, "app": _application}[kind](keras, **spec)
    model.name = name
    return model


def _mlp(keras, hidden):
    L = keras.layers
    x = inp = keras.Input((784,))
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", name=f"dense{i}")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="logits")(x))


def _cnn(keras, convs, pool_each, dense):
    L = keras.layers
    x = inp = keras.Input(MNIST_SHAPE)
    for i, filters in enumerate(convs):
        x = L.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        if pool_each:
            x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    if not pool_each:
        x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten()(x)
    for i, units in enumerate(dense):
        x = L.Dense(units, activation="relu", name=f"dense{i}")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="logits")(x))


def _conv_bn(keras, x, filters, kernel, stride, name, relu=True):
    L = keras.layers
    x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    # momentum 0.9 so the moving statistics settle within the few epochs we can afford on a CPU
    x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(keras, x, filters, stride, name):
    shortcut = x
    y = _conv_bn(keras, x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(keras, y, filters, 3, 1, f"{name}_b", relu=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(keras, x, filters, 1, stride, f"{name}_down", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _resnet(keras, input_shape, widths, blocks, stem, classes):
    L = keras.layers
    x = inp = keras.Input(input_shape)
    if stem == "imagenet":
        x = _conv_bn(keras, x, widths[0], 7, 2, "stem")
        x = L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _conv_bn(keras, x, widths[0], 3, 1, "stem")
    for s, (filters, n) in enumerate(zip(widths, blocks)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            x = _basic_block(keras, x, filters, stride, f"s{s}b{b}")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax", name="logits")(x))


def _application(keras, app, input_shape, **extra):
    """A keras.applications architecture built offline (weights=None) with a 10-way softmax head.

    EfficientNet's built-in preprocessing expects 0-255 pixels (Rescaling(1/255)) and standardises them with
    a Normalization that stays mean 0, variance 1 without ImageNet weights. Our digits are already in [0, 1]:
    the Rescaling becomes 1 and the Normalization standardises with MNIST's statistics. (Folding both into
    the Normalization instead leaves a tensor of range ~0.004 that TFLite's int8 quantizer gives the scale
    of the standardised one: every input then quantizes to the same values and the model's output is constant.)
    """
    model = getattr(keras.applications, app)(input_shape=input_shape, weights=None, classes=10,
                                             classifier_activation="softmax", **extra)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling) and layer.scale == 1 / 255 and not layer.offset:
            layer.scale = 1.0  # read at call time and saved with the config: the file says 1 too
        elif isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            _standardise_digits(layer)
    return model


def _standardise_digits(layer):
    """Set an un-adapted Normalization (mean 0, variance 1 when built without weights) so that digits x in
    [0, 1] come out as (x - MNIST_MEAN) / MNIST_STD."""
    import numpy as np

    shape = tuple(layer.adapt_mean.shape)
    layer.adapt_mean.assign(np.full(shape, MNIST_MEAN, np.float32))
    layer.adapt_variance.assign(np.full(shape, MNIST_STD ** 2, np.float32))
    layer.finalize_state()  # the layer computes with constants derived from those weights


def _shape(t):
    return tuple(int(d) for d in t.shape[1:])


def count_macs(model) -> int:
    """Multiply-adds of the Conv2D (grouped, 1x1 and squeeze-and-excitation ones included) / DepthwiseConv2D /
    SeparableConv2D / Dense layers, from the layer shapes alone (element-wise products, pooling and normalisation not counted)."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):  # not a Conv2D: a depthwise then a 1x1 stage
            kh, kw = layer.kernel_size
            mid = _shape(layer.input)[-1] * layer.depth_multiplier
            out = _shape(layer.output)
            macs += out[0] * out[1] * mid * (kh * kw + layer.filters)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            out = _shape(layer.output)
            macs += out[0] * out[1] * out[2] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = _shape(layer.input)[-1]
            out = _shape(layer.output)
            macs += out[0] * out[1] * out[2] * kh * kw * cin // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            inp = _shape(layer.input)
            rows = 1
            for d in inp[:-1]:
                rows *= d
            macs += rows * inp[-1] * layer.units
    return macs


def count_flops(model) -> int:
    """FLOPs as 2 x multiply-adds (the usual convention; bias, activations and pooling not counted)."""
    return 2 * count_macs(model)


def count_params(model, trainable_only: bool = False) -> int:
    """Parameters from the layer shapes (BatchNorm moving statistics and an adapted Normalization's mean and
    variance count as non-trainable)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            mid = _shape(layer.input)[-1] * layer.depth_multiplier
            total += mid * (kh * kw + layer.filters) + (layer.filters if layer.use_bias else 0)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            c = _shape(layer.input)[-1] * layer.depth_multiplier
            total += kh * kw * c + (c if layer.use_bias else 0)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = _shape(layer.input)[-1]
            total += kh * kw * cin * layer.filters // layer.groups + (layer.filters if layer.use_bias else 0)
        elif isinstance(layer, keras.layers.Dense):
            total += _shape(layer.input)[-1] * layer.units + (layer.units if layer.use_bias else 0)
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = _shape(layer.input)[-1]
            total += c * (int(layer.center) + int(layer.scale) + (0 if trainable_only else 2))
        elif isinstance(layer, keras.layers.Normalization) and layer.input_mean is None and not trainable_only:
            total += 2 * _shape(layer.input)[-1] + 1  # adapted mean and variance per channel, and a count
    return total


def describe(model) -> dict:
    """Architecture facts recorded with every model file."""
    return {
        "params": count_params(model),
        "trainable_params": count_params(model, trainable_only=True),
        "macs": count_macs(model),
        "flops": count_flops(model),
        "input_shape": list(_shape(model.inputs[0])),
        "classes": int(model.outputs[0].shape[-1]),
    }


def model_path(name: str, data_dir=None) -> Path:
    return config.models_dir(data_dir) / f"{canonical(name)}.keras"


def save(model, meta: dict, data_dir=None) -> Path:
    """Save <name>.keras and <name>.json (architecture facts + the given training metadata)."""
    path = model_path(model.name, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    full = {"name": model.name, "description": SPECS.get(model.name, (None, "user model"))[1],
            **describe(model), **meta}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n")
    tmp.replace(path)
    return path


def load_meta(name_or_path, data_dir=None) -> dict:
    """The metadata of a saved model, by ladder name or by .keras/.json path."""
    p = Path(name_or_path)
    if p.suffix in (".keras", ".json"):
        return json.loads(p.with_suffix(".json").read_text())
    return json.loads(model_path(str(name_or_path), data_dir).with_suffix(".json").read_text())
