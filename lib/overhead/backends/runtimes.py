"""Other runtimes reading the ONNX export: ONNX Runtime (CPU provider)."""
from __future__ import annotations

from overhead import converters
from overhead.backends.core import Backend, _cached, register
from overhead.backends.keras_tf import TF


def _ort_session(onnx_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def _prep_onnxruntime(path, batch, threads, artifacts):
    onnx_path, cinfo = converters.onnx(path, artifacts)
    sess, load_s = _cached(("ort", str(onnx_path), threads), lambda: _ort_session(onnx_path, threads))
    in_name, run_ = sess.get_inputs()[0].name, sess.run
    opts = sess.get_session_options()
    return (lambda x: run_(None, {in_name: x})[0]), {
        "convert_s": cinfo.get("convert_s"), "load_s": load_s, "artifact": str(onnx_path),
        "kernels": f"{','.join(sess.get_providers())}; spinning off",
        "threads_seen": [opts.intra_op_num_threads, opts.inter_op_num_threads]}


register(Backend("onnxruntime", "onnxruntime", "Keras ONNX export, ORT CPU provider", _prep_onnxruntime,
                 needs=TF + ("onnxruntime", "tf2onnx", "onnx")))
