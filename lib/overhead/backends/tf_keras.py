"""Keras 2 (the ``tf-keras`` package, what ``tf.keras`` was in TF 2.0-2.15): predict, predict_on_batch, call.

The ``.keras`` file is Keras 3's format, so :func:`rebuild` walks the Keras 3 graph layer by layer, makes the
same layer in ``tf_keras`` from its config and copies the weights; the parity gate proves the copy. A model used
as a layer (ConvNeXt's stem and downsampling blocks are Sequentials) is rebuilt the same way, recursively, and
ConvNeXt's own LayerScale gets a tf_keras twin here. A layer
``tf_keras`` cannot rebuild raises :class:`NotRebuildable` naming it (the row is recorded as failed with the
reason, the study goes on).
"""
from __future__ import annotations

import time

from overhead.backends import converters
from overhead.backends.core import _cached, _keras, _tf_info, catalogued, register

# Keras 3 config keys tf_keras does not know (training-only settings are dropped too: weights are copied)
_DROP = {"dtype", "quantization_config", "lora_rank", "lora_alpha", "synchronized", "kernel_initializer",
         "bias_initializer", "beta_initializer", "gamma_initializer", "moving_mean_initializer",
         "moving_variance_initializer", "depthwise_initializer", "pointwise_initializer",
         "kernel_regularizer", "bias_regularizer", "activity_regularizer", "beta_regularizer",
         "gamma_regularizer", "depthwise_regularizer", "pointwise_regularizer", "kernel_constraint",
         "bias_constraint", "beta_constraint", "gamma_constraint", "depthwise_constraint",
         "pointwise_constraint"}


# Keras 3 settings tf_keras lacks, dropped only at the value that means what tf_keras does anyway
_DROP_AT = {"rms_scaling": False}   # LayerNormalization (ConvNeXt's): the usual mean-and-variance form


class NotRebuildable(ValueError):
    """A Keras 3 layer or graph shape that tf_keras cannot rebuild; the message names it."""


def _layer_scale():
    """keras.applications.convnext's LayerScale (x times a learned per-channel gamma), which tf_keras lacks."""
    import tf_keras

    class LayerScale(tf_keras.layers.Layer):
        def __init__(self, init_values, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.init_values, self.projection_dim = init_values, projection_dim

        def build(self, _):
            self.gamma = self.add_weight(name="gamma", shape=(self.projection_dim,),
                                         initializer=tf_keras.initializers.Constant(self.init_values))

        def call(self, x):
            return x * self.gamma
    return LayerScale


# layers of Keras Applications modules (not keras.layers) that tf_keras has no twin for: name -> class factory
_APPLICATION_LAYERS = {"LayerScale": _layer_scale}


# Keras 3 ops on two tensors (keras.ops, what `a + b` on symbolic tensors records) -> the tf_keras merge layer
_OPS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply"}


def _tf_layer(layer):
    import tf_keras

    name = type(layer).__name__
    cls = getattr(tf_keras.layers, name, None)
    if cls is None and name in _APPLICATION_LAYERS and type(layer).__module__.startswith("keras.src.applications"):
        cls = _APPLICATION_LAYERS[name]()
    if cls is None:
        raise NotRebuildable(f"tf_keras has no layer {type(layer).__name__} (layer {layer.name!r})")
    cfg = {k: v for k, v in layer.get_config().items() if k not in _DROP}
    for key, usual in _DROP_AT.items():
        if key in cfg:
            if cfg[key] != usual:
                raise NotRebuildable(f"tf_keras has no {key}={cfg[key]!r} ({type(layer).__name__} {layer.name!r})")
            del cfg[key]
    try:
        return cls.from_config(cfg)
    except Exception as exc:
        raise NotRebuildable(f"tf_keras cannot rebuild {type(layer).__name__} {layer.name!r}: {exc}") from exc


def rebuild(model):
    """The same architecture as the Keras 3 `model`, in tf_keras, with its weights copied."""
    import keras
    import tf_keras

    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph in _functional
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise NotRebuildable(f"model {model.name!r} has {len(graph.inputs)} inputs / {len(graph.outputs)} outputs")
    inp = graph.inputs[0]
    tensors = {id(inp): tf_keras.Input(shape=tuple(inp.shape[1:]), dtype="float32", name="input")}
    pairs = []

    def swap(obj):
        if isinstance(obj, keras.KerasTensor):
            if id(obj) not in tensors:
                raise NotRebuildable(f"model {model.name!r}: a tensor outside the layer graph")
            return tensors[id(obj)]
        if isinstance(obj, (list, tuple)):
            return type(obj)(swap(o) for o in obj)
        if isinstance(obj, dict):
            return {k: swap(v) for k, v in obj.items()}
        return obj

    made = {}  # id(Keras 3 layer) -> its tf_keras twin

    def build(t):  # walk back from the output along each tensor's (layer, node) history
        if id(t) in tensors:
            return
        layer, node_index, _ = t._keras_history
        if isinstance(layer, keras.layers.InputLayer):
            raise NotRebuildable(f"model {model.name!r}: an input outside the model's inputs")
        node = layer._inbound_nodes[node_index]
        for parent in node.input_tensors:
            build(parent)
        if id(layer) in made:
            raise NotRebuildable(f"layer {layer.name!r} is called more than once (shared layer)")
        args, kwargs = swap(list(node.arguments.args)), swap(dict(node.arguments.kwargs))
        if not isinstance(layer, keras.layers.Layer):  # an op on tensors (`inputs + x` in ConvNeXt), no weights
            merge = _OPS.get(type(layer).__name__)
            if merge is None or kwargs or len(args) != 2:
                raise NotRebuildable(f"tf_keras has no twin for the op {type(layer).__name__} ({layer.name!r})")
            out = getattr(tf_keras.layers, merge)()(args)
            for k3 in node.output_tensors:
                tensors[id(k3)] = out
            return
        nested = isinstance(layer, keras.Model)
        new = rebuild(layer) if nested else _tf_layer(layer)  # a nested model comes back with its weights
        made[id(layer)] = new
        out = new(*args, **kwargs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for k3, k2 in zip(node.output_tensors, outs):
            tensors[id(k3)] = k2
        if not nested:
            pairs.append((layer, new))

    out = graph.outputs[0]
    build(out)
    rebuilt = tf_keras.Model(tensors[id(inp)], tensors[id(out)], name=model.name)
    for k3, k2 in pairs:
        weights = k3.get_weights()
        if len(weights) != len(k2.get_weights()):
            raise NotRebuildable(f"layer {k3.name!r}: {len(weights)} weights in Keras 3, "
                                 f"{len(k2.get_weights())} in tf_keras")
        k2.set_weights(weights)
    return rebuilt


def _tf_keras_model(path):
    model, _ = _keras(path)
    return _cached(("tf_keras", path, converters.model_sha(path)), lambda: rebuild(model))


def _prep_tf_keras(path, batch, threads, artifacts, how):
    import tf_keras

    t0 = time.perf_counter()
    model, rebuild_s = _tf_keras_model(path)
    extra = {"convert_s": rebuild_s, "artifact": f"tf_keras {tf_keras.__version__} rebuild (in memory)"}
    if how == "predict":
        return (lambda x: model.predict(x, batch_size=batch, verbose=0)), _tf_info(
            "Keras 2 predict (tf.data pipeline + tf.function predict step)", round(time.perf_counter() - t0, 4),
            **extra)
    if how == "predict_on_batch":
        return model.predict_on_batch, _tf_info("Keras 2 predict_on_batch (tf.function predict step)",
                                                round(time.perf_counter() - t0, 4), **extra)
    return (lambda x: model(x, training=False).numpy()), _tf_info("Keras 2 eager call (TF eager ops)",
                                                                  round(time.perf_counter() - t0, 4), **extra)


register(catalogued("tf_keras.predict", lambda *a: _prep_tf_keras(*a, how="predict")))
register(catalogued("tf_keras.predict_on_batch", lambda *a: _prep_tf_keras(*a, how="predict_on_batch")))
register(catalogued("tf_keras.call", lambda *a: _prep_tf_keras(*a, how="call")))
