"""LiteRT (TFLite) interpreters: float32 with and without XNNPACK, fp16, dynamic-range and full int8."""
from __future__ import annotations

import time

from overhead.backends import converters
from overhead.backends.core import Backend, register
from overhead.backends.keras_tf import TF

NEEDS = TF + ("ai_edge_litert",)


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


for _b in [
    Backend("litert", "litert", "LiteRT float32, XNNPACK on", _prep_litert, needs=NEEDS, takes_io=True),
    Backend("litert.builtin", "litert", "LiteRT float32, XNNPACK off (builtin kernels)",
            lambda *a, **k: _prep_litert(*a, xnnpack=False, **k), needs=NEEDS, takes_io=True),
    Backend("litert.fp16", "litert", "LiteRT, float16 weights", lambda *a, **k: _prep_litert(*a, variant="fp16", **k),
            max_abs=1e-2, needs=NEEDS, takes_io=True),
    Backend("litert.dynamic_int8", "litert", "LiteRT, dynamic-range int8 weights",
            lambda *a, **k: _prep_litert(*a, variant="dynamic_int8", **k), max_abs=None, min_top1=0.9,
            max_acc_drop=0.03, quantized=True, needs=NEEDS, takes_io=True),
    Backend("litert.int8", "litert", "LiteRT full-integer int8 (calibrated on 100 real digits), float I/O",
            lambda *a, **k: _prep_litert(*a, variant="int8", **k), max_abs=None, min_top1=0.9, max_acc_drop=0.03,
            quantized=True, needs=NEEDS, takes_io=True),
]:
    register(_b)
