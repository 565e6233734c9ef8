"""The Keras Applications families users bring (issue 25), as ``make bench`` and ``make apps`` build them: offline
(``weights=None``) at small inputs, with BatchNorm statistics from one batch so their outputs are not degenerate."""
from __future__ import annotations

import numpy as np

# name -> (keras.applications builder, input size, extra arguments)
FAMILIES = {"MobileNetV2": ("MobileNetV2", 96, {"alpha": 0.35}), "MobileNetV3Small": ("MobileNetV3Small", 96, {}),
            "EfficientNetB0": ("EfficientNetB0", 64, {}), "DenseNet121": ("DenseNet121", 64, {}),
            "ResNet50": ("ResNet50", 64, {}), "ConvNeXtTiny": ("ConvNeXtTiny", 64, {}),
            "Xception": ("Xception", 72, {}), "NASNetMobile": ("NASNetMobile", 64, {}),
            "MobileNetV3Large": ("MobileNetV3Large", 96, {}), "EfficientNetB1": ("EfficientNetB1", 64, {}),
            "EfficientNetB2": ("EfficientNetB2", 64, {}), "EfficientNetV2B0": ("EfficientNetV2B0", 64, {}),
            "ResNet50V2": ("ResNet50V2", 64, {})}


def build(name: str, seed: int = 0):
    """The family `name` with random weights and BatchNorm statistics from one batch of random images (one
    training-mode pass with momentum 0)."""
    import keras
    builder, size, extra = FAMILIES[name]
    keras.utils.set_random_seed(seed)
    model = getattr(keras.applications, builder)(weights=None, input_shape=(size, size, 3), classes=10,
                                                 classifier_activation=None, **extra)
    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    model(np.random.default_rng(seed).uniform(-1, 1, (8, size, size, 3)).astype(np.float32), training=True)
    return model
