"""The per-call decomposition's bookkeeping, on synthetic samples (no timing assertions)."""
import math

import pytest

from overhead.experiments import breakdown as bd
from overhead.experiments import breakdown_buckets as buckets
from overhead.experiments import breakdown_kernels as kernels
from overhead.experiments import breakdown_sampler as bsampler

SP = "/venv/lib/python3.11/site-packages/"
ROOT = ("/work/app.py", 1, "<lambda>")
PREDICT = (SP + "keras/src/backend/tensorflow/trainer.py", 500, "predict")
ADAPTER = (SP + "keras/src/trainers/data_adapters/array_data_adapter.py", 40, "__init__")
NEST = (SP + "tensorflow/python/util/nest.py", 300, "flatten")  # named by no rule: inherits
GEN_DS = (SP + "tensorflow/python/ops/gen_dataset_ops.py", 100, "make_iterator")
CALL_FLAT = (SP + "tensorflow/python/eager/polymorphic_function/concrete_function.py", 1267, "_call_flat")
QUICK = (SP + "tensorflow/python/eager/execute.py", 28, "quick_execute")
TRACE = (SP + "tensorflow/python/eager/polymorphic_function/tracing_compilation.py", 295,
         "_create_concrete_function")
PER_CALL = (SP + "tensorflow/python/eager/polymorphic_function/tracing_compilation.py", 125, "trace_function")
CONST = (SP + "tensorflow/python/framework/constant_op.py", 75, "convert_to_eager_tensor")
NUMPY = (SP + "tensorflow/python/framework/tensor.py", 1, "numpy")
CALLBACK = (SP + "keras/src/callbacks/callback_list.py", 90, "on_predict_batch_end")
INSPECT = ("/usr/lib/python3.11/inspect.py", 3000, "signature")
EXEC_LINE = "    tensors = pywrap_tfe.TFE_Py_Execute(ctx._handle, device_name, op_name,\n"
FAST_LINE = "      _result = pywrap_tfe.TFE_Py_FastPathExecute(\n"


def test_classify_names_the_documented_buckets():
    assert buckets.classify(PREDICT) == buckets.KERAS
    assert buckets.classify(ADAPTER) == buckets.DATA and buckets.classify(GEN_DS) == buckets.DATA
    assert buckets.classify(CALL_FLAT) == buckets.TFFUNC
    assert buckets.classify(PER_CALL) == buckets.TFFUNC  # runs on every call: only _create_concrete_function traces
    assert buckets.classify(QUICK) == buckets.DISPATCH
    assert buckets.classify(TRACE) == buckets.TRACING
    assert buckets.classify(CONST) == buckets.CONVERT and buckets.classify(NUMPY) == buckets.CONVERT
    assert buckets.classify(CALLBACK) == buckets.CALLBACKS
    assert buckets.classify(NEST) is None and buckets.classify(ROOT) is None and buckets.classify(INSPECT) is None


def test_short_path():
    assert buckets.short_path(SP + "keras/src/x.py") == "keras/src/x.py"
    assert buckets.short_path("/usr/lib/python3.11/inspect.py") == "stdlib/inspect.py"
    assert buckets.short_path("/work/app.py") == "/work/app.py"


@pytest.mark.parametrize("stack, line, bucket", [
    ((ROOT,), "", buckets.OTHER),
    ((ROOT, PREDICT), "", buckets.KERAS),
    ((ROOT, PREDICT, NEST, INSPECT), "", buckets.KERAS),             # unnamed code inherits its caller's bucket
    ((ROOT, PREDICT, ADAPTER, NEST), "", buckets.DATA),
    ((ROOT, PREDICT, ADAPTER, GEN_DS), FAST_LINE, buckets.DATA),     # C++ work of a tf.data op is tf.data's
    ((ROOT, PREDICT, CALL_FLAT, QUICK), EXEC_LINE, buckets.CPP),     # the graph function itself: C++ runtime
    ((ROOT, PREDICT, CALL_FLAT, QUICK), "    ctx.ensure_initialized()\n", buckets.DISPATCH),
    ((ROOT, PREDICT, ADAPTER, TRACE, CONST), "", buckets.TRACING),   # tracing absorbs what it calls
    ((ROOT, PREDICT, ADAPTER, TRACE, QUICK), EXEC_LINE, buckets.TRACING),
    ((ROOT, PREDICT, CALLBACK, NUMPY), "", buckets.CALLBACKS),       # so do callbacks
    ((ROOT, PREDICT, NUMPY), "", buckets.CONVERT),
    ((ROOT, PREDICT, CONST, NEST), EXEC_LINE, buckets.CONVERT),  # C++ work of a conversion stays a conversion
    ((ROOT, CONST, QUICK), EXEC_LINE, buckets.CPP),  # ... but not below a named dispatcher
])
def test_stack_bucket(stack, line, bucket):
    assert buckets.stack_bucket(stack, line) == bucket


def test_aggregate_sums_samples_of_the_kept_calls():
    samples = [
        (0, (ROOT, PREDICT), "", 2),
        (0, (ROOT, PREDICT, CALL_FLAT, QUICK), EXEC_LINE, 3),
        (1, (ROOT, PREDICT, ADAPTER), "", 1),
        (1, (ROOT, PREDICT, CALL_FLAT, QUICK), EXEC_LINE, 4),
        (2, (ROOT, PREDICT), "", 100),  # an outlier call left out
    ]
    got = buckets.aggregate(samples, 0.001, {0, 1})
    assert got == pytest.approx({buckets.KERAS: 0.001, buckets.CPP: 0.0035, buckets.DATA: 0.0005})
    assert math.isclose(sum(got.values()), 10 * 0.001 / 2)
    assert buckets.aggregate(samples, 0.001, set()) == {}
    top = buckets.top_functions(samples, 0.001, {0, 1}, n=1)
    assert {r["bucket"] for r in top} == {buckets.KERAS, buckets.CPP, buckets.DATA}
    cpp = next(r for r in top if r["bucket"] == buckets.CPP)
    assert "execute.py:28(quick_execute)" in cpp["function"] and cpp["us_per_call"] == pytest.approx(3500)


def test_central_calls_leave_out_slow_outliers_but_not_sampled_calls():
    import numpy as np

    net = np.full(100, 1e-3)
    net[:10] = 1.2e-3                  # ten sampled calls: 0.2 ms slower because they were sampled
    net[95:] = 9e-3                     # five preempted calls
    keep, perturb = bsampler.central_calls(net, list(range(10)) + [96], typical_s=1e-3)
    assert perturb == pytest.approx(0.2e-3)
    assert set(range(10)) <= keep and not keep & set(range(95, 100)) and len(keep) == 95
    keep, perturb = bsampler.central_calls(np.r_[np.linspace(1, 2, 49), 10.0], range(50), typical_s=1.5)  # all sampled
    assert perturb == 0.0 and keep == set(range(49))


def test_finish_moves_kernels_out_of_the_cpp_runtime():
    done = buckets.finish({buckets.CPP: 100.0, buckets.KERAS: 5.0, buckets.OTHER: -1.0}, kernel_s=30.0, eager=False)
    assert done == {buckets.KERAS: 5.0, buckets.CPP: 70.0, buckets.KERNELS: 30.0, buckets.OTHER: 0.0}
    assert buckets.finish({buckets.CPP: 10.0}, kernel_s=30.0, eager=False) == {buckets.CPP: 0.0, buckets.KERNELS: 10.0}
    assert buckets.finish({buckets.CPP: 10.0}, kernel_s=None, eager=True) == {buckets.CPP_EAGER: 10.0}
    assert list(done) == [b for b in buckets.BUCKETS if b in done]


def test_kernel_time_per_call_uses_per_op_medians():
    durations = {"m/conv:Conv2D": [1.0, 1.0, 9.0, 1.0], "m/dense:MatMul": [0.5, 0.5, 0.5, 0.5]}
    assert kernels.kernel_seconds_per_call(durations, 4) == pytest.approx(1.5)
    assert kernels.KERNEL_EVENT_RE.match("cnn/conv0/Relu:_MklNativeFusedConv2D")
    assert not kernels.KERNEL_EVENT_RE.match("EagerLocalExecute: Conv2D")
    assert kernels.NOT_KERNELS.search("IteratorGetNext")


# A workload whose functions live in "keras" and "tf.data" files, so the rules apply to real frames.
FAKE = {
    SP + "keras/src/backend/tensorflow/trainer.py":
        "def predict(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s + adapt(n)\n",
    SP + "keras/src/trainers/data_adapters/fake.py":
        "def adapt(n):\n    s = 0\n    for i in range(2 * n):\n        s += i % 7\n    return s\n",
}


def test_sampler_records_real_stacks_and_restores_the_signal_handler():
    import signal

    ns: dict = {}
    for path, src in FAKE.items():
        exec(compile(src, path, "exec"), ns)
    before = signal.getsignal(signal.SIGALRM)
    sampler = bsampler.Sampler(interval_s=0.0005)
    sampler.run(lambda: ns["predict"](20_000), 12)
    sampler.run(lambda: ns["predict"](20_000), 8)  # runs accumulate, call indices continue
    assert signal.getsignal(signal.SIGALRM) == before
    assert len(sampler.walls) == len(sampler.handler_s) == 20
    assert all(w > h for w, h in zip(sampler.walls, sampler.handler_s))
    assert {c for c, *_ in sampler.samples} <= set(range(20))
    assert sampler.samples and all(c > 0 for *_, c in sampler.samples)
    got = buckets.aggregate(sampler.samples, sampler.dt, set(range(20)))
    assert set(got) <= {buckets.KERAS, buckets.DATA, buckets.OTHER} and buckets.DATA in got
    # a signal still pending when fn returns is handled in _checkpoint (its purpose), so a sample's
    # outermost frame is the timed function or, rarely, that checkpoint (a loaded machine delays signals)
    outermost = [stack[0][2] for _, stack, *_ in sampler.samples]
    assert set(outermost) <= {"<lambda>", "_checkpoint"} and "<lambda>" in outermost
    assert all(len(f) == 3 for _, stack, *_ in sampler.samples for f in stack)


def test_keras2_frames_fall_in_the_same_buckets():
    k2_predict = (SP + "tf_keras/src/engine/training.py", 2400, "predict")
    k2_adapter = (SP + "tf_keras/src/engine/data_adapter.py", 1200, "__init__")
    k2_callback = (SP + "tf_keras/src/callbacks.py", 300, "on_predict_batch_end")
    assert buckets.classify(k2_predict) == buckets.KERAS
    assert buckets.classify(k2_adapter) == buckets.DATA
    assert buckets.classify(k2_callback) == buckets.CALLBACKS
    assert buckets.stack_bucket((ROOT, k2_predict, k2_adapter, GEN_DS), FAST_LINE) == buckets.DATA
    assert buckets.stack_bucket((ROOT, k2_predict, CALL_FLAT, QUICK), EXEC_LINE) == buckets.CPP
    assert "tf_keras.predict" in bd.DEFAULT_BACKENDS and "tf_keras.call" in bd.EAGER


def test_a_handler_run_inside_the_handler_is_dropped_not_counted_twice(monkeypatch):
    import sys

    sampler = bsampler.Sampler(interval_s=1e-6)
    sampler.t0, sampler.done, sampler.stop, sampler.inside, sampler.call = 0.0, 0, None, True, 0
    sampler.handler_s = [0.0]
    nested = []
    real = bsampler.linecache.getline

    def getline(*a):  # the next expiry's handler runs in the middle of this one, as Python may run it
        if not nested:
            nested.append(True)
            sampler._handler(14, sys._getframe())
        return real(*a)
    monkeypatch.setattr(bsampler.linecache, "getline", getline)
    sampler._handler(14, sys._getframe())
    assert nested and len(sampler.samples) == 1
