"""A zoo of user-shaped models (tiny, seeded): what people run that is not shaped like the ladder.

``build(folder) -> {name: path}`` writes each model once into ``folder``:
- ``lstm``: LSTM classifier over (20, 8) sequences (.keras);
- ``text_gru``: Embedding + GRU text classifier over 12 integer token ids, vocabulary 50 (.keras);
- ``two_io``: functional model with inputs ``features`` (16,) and ``image`` (8, 8, 1) and outputs
  ``label`` (4-way softmax) and ``score`` (1) (.keras);
- ``dynamic_conv``: conv net over (None, None, 3) images (.keras);
- ``keras2_h5``: a small CNN written by tf_keras (Keras 2) as a legacy .h5 file;
- ``savedmodel``: a small MLP exported as a TensorFlow SavedModel folder.
"""
from __future__ import annotations

from pathlib import Path

NAMES = ("lstm", "text_gru", "two_io", "dynamic_conv", "keras2_h5", "savedmodel")


def _lstm(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((20, 8), name="sequence"), L.LSTM(8, name="lstm"),
                             L.Dense(5, activation="softmax", name="probs")], name="lstm")


def _text_gru(keras):
    L = keras.layers
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    h = L.Embedding(50, 8, name="embed")(tokens)
    h = L.GRU(8, name="gru")(h)
    return keras.Model(tokens, L.Dense(3, activation="softmax", name="probs")(h), name="text_gru")


def _two_io(keras):
    L = keras.layers
    feats = keras.Input((16,), name="features")
    image = keras.Input((8, 8, 1), name="image")
    h = L.Flatten(name="flat")(L.Conv2D(4, 3, activation="relu", name="conv")(image))
    h = L.Concatenate(name="join")([L.Dense(8, activation="relu", name="dense_f")(feats), h])
    label = L.Dense(4, activation="softmax", name="label")(h)
    score = L.Dense(1, name="score")(h)
    return keras.Model([feats, image], [label, score], name="two_io")


def _dynamic_conv(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((None, None, 3), name="image"), L.Conv2D(4, 3, activation="relu"),
                             L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")], name="dynamic_conv")


def _keras2_h5(path: Path) -> None:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    model = tf_keras.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)), L.MaxPooling2D(),
                                 L.Flatten(), L.Dense(6, activation="softmax")])
    model.save(path, save_format="h5")


def _savedmodel(keras, path: Path) -> None:
    L = keras.layers
    model = keras.Sequential([keras.Input((10,), name="x"), L.Dense(16, activation="relu"),
                              L.Dense(4, activation="softmax")], name="sm")
    model.export(str(path), verbose=False)


def build(folder, names=NAMES) -> dict[str, Path]:
    import keras

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        keras.utils.set_random_seed(0)
        if name == "keras2_h5":
            path = folder / "keras2.h5"
            if not path.exists():
                _keras2_h5(path)
        elif name == "savedmodel":
            path = folder / "savedmodel"
            if not path.exists():
                _savedmodel(keras, path)
        else:
            path = folder / f"{name}.keras"
            if not path.exists():
                globals()[f"_{name}"](keras).save(path)
        paths[name] = path
    return paths
