"""Op kernel time per call from the TensorFlow profiler's host events (graph paths of the decomposition,
:mod:`overhead.experiments.breakdown`): per op, median duration x count per call. Eager ops have no
separate kernel events."""
from __future__ import annotations

import re

KERNEL_EVENT_RE = re.compile(r"^[^\s:]+:([A-Za-z_]\w*)$")  # "scope/op:OpType" on the host plane
NOT_KERNELS = re.compile(r"Iterator|Dataset")


def tf_kernel_durations(fn, calls: int, logdir) -> dict:
    """Run `fn` under the TensorFlow profiler (host tracer only); {op kernel event: [seconds]}.

    Host-plane events named like ``scope/op:OpType`` are the op kernels of graph execution;
    tf.data's threads and iterator / dataset ops are left out."""
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    opts = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                    device_tracer_level=0)
    tf.profiler.experimental.start(str(logdir), options=opts)
    try:
        for _ in range(calls):
            fn()
    finally:
        tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as fh:
        space.ParseFromString(fh.read())
    out: dict = {}
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_data"):
                continue
            for e in line.events:
                m = KERNEL_EVENT_RE.match(names.get(e.metadata_id, ""))
                if m and not NOT_KERNELS.search(m.group(1)):
                    out.setdefault(m.group(0), []).append(e.duration_ps * 1e-12)
    return out


def kernel_seconds_per_call(durations: dict, n_calls: int) -> float:
    """Kernel time per call from {op event name: [durations, s]}: per op median x count per call."""
    import numpy as np

    return sum(float(np.median(d)) * len(d) / n_calls for d in durations.values() if len(d))
