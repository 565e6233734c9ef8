"""LiteRT (TFLite) interpreters: float32 with and without XNNPACK, fp16, dynamic-range and full int8."""
from __future__ import annotations

import time

from overhead.backends import converters
from overhead.backends.core import catalogued, register


def _prep_litert(path, batch, threads, artifacts, variant="float", xnnpack=True, io=None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tfl, cinfo = converters.tflite(path, variant, artifacts, io=io)
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter()
    interp = Interpreter(model_content=tfl.read_bytes(), num_threads=threads,  # XNNPACK reads it only here
                         experimental_op_resolver_type=resolver)
    inp = interp.get_input_details()[0]
    out_index = interp.get_output_details()[0]["index"]
    dims = [int(d) for d in inp["shape"][1:]]
    if any(int(d) < 0 for d in inp.get("shape_signature", [])[1:]):  # dynamic dims: the sizes this run uses
        dims = list((io.concrete_shape(0) if io is not None else None) or dims)
    interp.resize_tensor_input(inp["index"], [batch, *dims])
    interp.allocate_tensors()
    load_s = round(time.perf_counter() - t0, 4)
    in_index, set_tensor, invoke, get_tensor = inp["index"], interp.set_tensor, interp.invoke, interp.get_tensor

    def run(x):
        set_tensor(in_index, x)
        invoke()
        return get_tensor(out_index)  # a copy, as a user gets it

    return run, {"convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(tfl),
                 "kernels": converters.tflite_kernels(interp), "threads_seen": [threads], "_interpreter": interp}


register(catalogued("litert", _prep_litert, takes_io=True))
register(catalogued("litert.builtin", lambda *a, **k: _prep_litert(*a, xnnpack=False, **k), takes_io=True))
register(catalogued("litert.fp16", lambda *a, **k: _prep_litert(*a, variant="fp16", **k), takes_io=True))
register(catalogued("litert.dynamic_int8", lambda *a, **k: _prep_litert(*a, variant="dynamic_int8", **k),
                    takes_io=True))
register(catalogued("litert.int8", lambda *a, **k: _prep_litert(*a, variant="int8", **k), takes_io=True))
