"""TensorFlow graphs without Keras's predict loop: tf.function (plain and XLA) and the SavedModel signature."""
from __future__ import annotations

import time

from overhead.backends import converters
from overhead.backends.core import _cached, _keras, _tf, _tf_info, catalogued, register
from overhead.usermodel import feed


def _prep_tf_function(path, batch, threads, artifacts, jit=False):
    tf = _tf()
    model, load_s = _keras(path)
    specs = [tf.TensorSpec((batch, *t.shape[1:]), t.dtype) for t in model.inputs]  # None: a dynamic dim
    spec = specs[0] if len(specs) == 1 else specs
    f = tf.function(lambda t: model(t, training=False), input_signature=[spec], jit_compile=jit,
                    reduce_retracing=False)
    t0 = time.perf_counter()
    f.get_concrete_function()  # trace now (XLA compiles on the first call, during the parity check)
    info = _tf_info("XLA:CPU (jit_compile=True)" if jit else "TF graph (tf.function)", load_s,
                    trace_s=round(time.perf_counter() - t0, 4), _tf_function=f)
    if len(model.outputs) > 1:
        return (lambda x: [t.numpy() for t in f(x)]), info
    return (lambda x: f(x).numpy()), info


def _prep_savedmodel(path, batch, threads, artifacts, io=None):
    tf = _tf()
    sm_dir, cinfo = converters.savedmodel(path, artifacts)
    loaded, load_s = _cached(("savedmodel", str(sm_dir)), lambda: tf.saved_model.load(str(sm_dir)))
    sig = loaded.signatures["serving_default"]  # what TF Serving calls
    arg_names, out_names = list(sig.structured_input_signature[1]), list(sig.structured_outputs)
    const = tf.constant
    if len(arg_names) > 1 or len(out_names) > 1:  # several: fed by input name, outputs in the model's order
        sig_of = io.signature if io is not None else None
        names, out_names = feed.input_names(sig_of, arg_names), feed.output_names(sig_of, out_names)

        def run(xs):
            out = sig(**{n: const(a) for n, a in zip(names, xs if isinstance(xs, list) else [xs])})
            return [out[k].numpy() for k in out_names]
    else:
        (arg_name,), (out_name,) = arg_names, out_names

        def run(x):
            return sig(**{arg_name: const(x)})[out_name].numpy()

    return run, _tf_info("TF graph (SavedModel serving_default)", load_s, convert_s=cinfo.get("convert_s"),
                         artifact=str(sm_dir))


register(catalogued("tf.function", _prep_tf_function))
register(catalogued("tf.function.xla", lambda *a: _prep_tf_function(*a, jit=True)))
register(catalogued("tf.savedmodel", _prep_savedmodel, takes_io=True))
