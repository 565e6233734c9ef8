"""Keras 3 on TensorFlow: predict, predict_on_batch and the eager call."""
from __future__ import annotations

from overhead.backends.core import _keras, _tf_info, catalogued, register


def _prep_keras(path, batch, threads, artifacts, how):
    model, load_s = _keras(path)
    if how == "predict":
        return (lambda x: model.predict(x, batch_size=batch, verbose=0)), _tf_info(
            "Keras predict (tf.data pipeline + compiled predict step)", load_s)
    if how == "predict_on_batch":
        return model.predict_on_batch, _tf_info("Keras predict_on_batch (compiled predict step)", load_s)
    if len(model.outputs) > 1:  # several outputs: a list of tensors
        return (lambda x: [t.numpy() for t in model(x, training=False)]), _tf_info("TF eager ops", load_s)
    return (lambda x: model(x, training=False).numpy()), _tf_info("TF eager ops", load_s)


register(catalogued("keras.predict", lambda *a: _prep_keras(*a, how="predict")))
register(catalogued("keras.predict_on_batch", lambda *a: _prep_keras(*a, how="predict_on_batch")))
register(catalogued("keras.call", lambda *a: _prep_keras(*a, how="call")))
