"""Other runtimes reading the ONNX export: ONNX Runtime (CPU provider; the export as is, or after ORT's dynamic
int8 quantization) and OpenVINO (CPU plugin)."""
from __future__ import annotations

from overhead.backends import converters
from overhead.backends.core import _cached, catalogued, register


def _ort_session(onnx_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def onnx_int8(model_path, artifacts=None) -> tuple:
    """The ONNX export after ``onnxruntime.quantization.quantize_dynamic`` with its defaults (int8 weights per
    tensor, activations quantised at run time), cached beside the export like every conversion; the record
    names the integer ops it produced."""
    src, _ = converters.onnx(model_path, artifacts)
    target = converters.artifact_dir(model_path, artifacts) / "model.int8.onnx"

    def build(tmp):
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = tmp / target.name
        quantize_dynamic(src, out, weight_type=QuantType.QInt8)
        ops = sorted({n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node
                      if "Integer" in n.op_type or n.op_type == "DynamicQuantizeLinear"})
        return out, {"quantization": "quantize_dynamic(weight_type=QInt8)", "integer_ops": ops}

    return converters._cached_or_build(target, build, "onnx.int8")


def _prep_onnxruntime(path, batch, threads, artifacts, int8=False):
    onnx_path, cinfo = (onnx_int8 if int8 else converters.onnx)(path, artifacts)
    sess, load_s = _cached(("ort", str(onnx_path), threads), lambda: _ort_session(onnx_path, threads))
    in_name, run_ = sess.get_inputs()[0].name, sess.run
    if len(sess.get_inputs()) > 1 or len(sess.get_outputs()) > 1:  # several: by input order, all outputs
        names = [i.name for i in sess.get_inputs()]
        multi = (lambda xs: run_(None, dict(zip(names, xs if isinstance(xs, list) else [xs]))))
    opts = sess.get_session_options()
    return (multi if len(sess.get_inputs()) > 1 or len(sess.get_outputs()) > 1 else
            (lambda x: run_(None, {in_name: x})[0])), {
        "convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(onnx_path),
        "kernels": f"{','.join(sess.get_providers())}; spinning off"
                   + (f"; int8 [{','.join(cinfo.get('integer_ops') or []) or 'no op quantised'}]" if int8 else ""),
        "threads_seen": [opts.intra_op_num_threads, opts.inter_op_num_threads]}


def _ov_compiled(onnx_path, threads):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    # f32 precision: on CPUs with AMX/AVX512-BF16 the plugin otherwise defaults to bf16 inference
    return core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads),
                                             "INFERENCE_PRECISION_HINT": "f32"})


def _type_name(t) -> str:
    return t.get_type_name() if hasattr(t, "get_type_name") else str(t)


def _prep_openvino(path, batch, threads, artifacts):
    import openvino as ov

    onnx_path, cinfo = converters.onnx(path, artifacts)
    compiled, load_s = _cached(("openvino", str(onnx_path), threads), lambda: _ov_compiled(onnx_path, threads))
    request = compiled.create_infer_request()  # one request, reused for every call
    out_port = compiled.output(0)
    infer = request.infer

    def run(x):
        return infer({0: x})[out_port].copy()  # a copy: the request's buffer is overwritten by the next call

    # several inputs: a list by input order; several outputs: all of them, as a list. One output is always
    # an array (an ONNX file with more inputs than the model is refused by OpenVINO, naming them)
    if len(compiled.inputs) > 1 or len(compiled.outputs) > 1:
        ports = [compiled.output(k) for k in range(len(compiled.outputs))]

        def run(xs):  # noqa: F811
            res = infer(dict(enumerate(xs if isinstance(xs, list) else [xs])))
            outs = [res[p].copy() for p in ports]
            return outs[0] if len(outs) == 1 else outs

    seen = [int(compiled.get_property("INFERENCE_NUM_THREADS"))]
    kernels = (f"OpenVINO {ov.get_version().split('-')[0]} CPU; hint {compiled.get_property('PERFORMANCE_HINT')}; "
               f"precision {_type_name(compiled.get_property('INFERENCE_PRECISION_HINT'))}; "
               f"streams {compiled.get_property('NUM_STREAMS')}")
    return run, {"convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(onnx_path),
                 "kernels": kernels, "threads_seen": seen, "_infer_request": request}


register(catalogued("onnxruntime", _prep_onnxruntime))
register(catalogued("onnxruntime.int8", lambda *a: _prep_onnxruntime(*a, int8=True)))
register(catalogued("openvino", _prep_openvino))
