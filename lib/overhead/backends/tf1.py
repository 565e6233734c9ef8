"""'Vanilla' TensorFlow, TF1 style: a frozen constant graph run by a ``tf.compat.v1.Session``.

The Keras model is traced once to a concrete function, frozen with ``convert_variables_to_constants_v2``,
its GraphDef imported into a fresh ``tf.Graph`` and run by a session whose ``ConfigProto`` carries the
thread setting, through a callable made once with ``Session.make_callable`` (feeds and fetches resolved
once, as TF1 serving code did).
"""
from __future__ import annotations

import time

from overhead.backends.core import _keras, _tf, _tf_info, catalogued, register


def frozen_graph_def(model, batch: int):
    """(GraphDef, input tensor name, output tensor name) of `model` at a fixed batch, variables as constants."""
    tf = _tf()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((batch, *model.inputs[0].shape[1:]), model.inputs[0].dtype, name="x")  # None: dynamic
    concrete = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    return frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name


def _prep_tf1_session(path, batch, threads, artifacts):
    tf = _tf()
    model, load_s = _keras(path)
    t0 = time.perf_counter()
    graph_def, in_name, out_name = frozen_graph_def(model, batch)
    convert_s = round(time.perf_counter() - t0, 4)
    t0 = time.perf_counter()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
    sess = tf.compat.v1.Session(graph=graph, config=config)
    x_t, y_t = graph.get_tensor_by_name(in_name), graph.get_tensor_by_name(out_name)
    call = sess.make_callable(y_t, feed_list=[x_t])
    info = _tf_info("TF1 Session over a frozen GraphDef (make_callable)", round(time.perf_counter() - t0, 4),
                    convert_s=convert_s, artifact=f"frozen GraphDef ({len(graph_def.node)} nodes, in memory)",
                    _session=sess)
    # what this session was configured with (the process-wide TF pools are in threads_readback)
    info["threads_seen"] = [sess._config.intra_op_parallelism_threads, sess._config.inter_op_parallelism_threads]
    return call, info


register(catalogued("tf1.session", _prep_tf1_session))
