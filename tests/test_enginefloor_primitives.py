"""make bench's NumPy floor (overhead.experiments.enginefloor): one primitive per Conv2D, Dense and DepthwiseConv2D
op, covering exactly the op's multiply-adds (fewer only where the engine's dense depthwise product skips the zero
border), run in the engine's own buffers without changing what the engine then computes."""
import numpy as np
import pytest
from engine_models import assert_close, every_engine_layer, randomize

keras = pytest.importorskip("keras")
L = keras.layers

from overhead.engine import from_keras  # noqa: E402
from overhead.engine.dwdense import use_dense  # noqa: E402
from overhead.experiments.enginefloor import primitive_floor, primitive_steps  # noqa: E402


def mobile_block(seed=0):
    """Depthwise layers of every kind the engine plans: stride 1 padded, stride 2 (phases and direct), a
    multiplier of 2, a 5x5 kernel on a 2x2 map (the dense product), with 1x1 and 3x3 convolutions and a Dense."""
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(16, 1)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = L.DepthwiseConv2D(5, padding="same")(x)
    x = L.Flatten()(x)
    out = L.Dense(10)(x)
    return randomize(keras.Model(inp, out), seed)


@pytest.mark.parametrize("build", [mobile_block, every_engine_layer])
@pytest.mark.parametrize("batch", [1, 3])
def test_one_primitive_per_arithmetic_op_with_its_multiply_adds(build, batch):
    m = build()
    net = from_keras(m)
    x = np.random.default_rng(1).random((batch,) + tuple(m.input_shape[1:]), dtype=np.float32)
    steps = primitive_steps(net, x)
    flops = {p["op"]: p["flops"] for p in net.profile(x, repeats=1)}
    plan = net.plan(batch)
    kinds = {op.name: op.kind for op in plan.ops}
    dense = {op.name for op in plan.ops if op.kind == "dwconv"
             and use_dense(plan.shapes[op.ins[0]], op.p, op.p["w"].shape[3])}
    assert [s[0] for s in steps] == [k for k, v in kinds.items() if v in ("conv", "dense", "dwconv")]
    for name, _, macs in steps:
        if name in dense:  # 5x5 on 2x2: the engine's dense product skips the taps on the zero border
            assert 0 < 2 * macs < flops[name]
        else:
            assert 2 * macs == flops[name], name
    assert len(dense) == (build is mobile_block)


def test_the_floor_runs_in_the_engines_buffers_and_leaves_its_results_exact():
    m = mobile_block()
    net = from_keras(m)
    x = np.random.default_rng(2).random((1, 16, 16, 3), dtype=np.float32)
    before = net(x)
    floor = primitive_floor(net, x)
    for _ in range(3):
        floor()
    assert_close(net(x), np.asarray(m(x, training=False)))
    np.testing.assert_array_equal(net(x), before)


def test_a_model_without_arithmetic_ops_has_no_floor():
    inp = keras.Input((4, 4, 2))
    net = from_keras(keras.Model(inp, L.ReLU()(inp)))
    assert primitive_floor(net, np.ones((1, 4, 4, 2), np.float32)) is None


def test_the_floor_applies_each_ops_activation_to_fresh_values_every_call():
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="hard_silu")(x)
    x = L.Conv2D(8, 1)(x)
    x = L.Flatten()(x)
    m = randomize(keras.Model(inp, L.Dense(6, activation="sigmoid")(x)), 3)
    net = from_keras(m)
    x = np.random.default_rng(4).standard_normal((1, 12, 12, 3), dtype=np.float32)
    floor = primitive_floor(net, x)
    plan = net.plan(1)
    outs = {op.name: plan.template[op.out] for op in plan.ops if op.kind in ("conv", "dwconv", "dense")}
    acts = {op.name: op.act for op in plan.ops if op.name in outs}
    relu_conv, silu_dw, linear_conv, sig_dense = list(outs)
    assert acts[linear_conv] in (None, ("linear",))
    floor()
    first = {k: v.copy() for k, v in outs.items()}
    assert first[relu_conv].min() == 0 and first[relu_conv].max() > 0
    assert first[silu_dw].min() >= -0.375  # hard_silu's minimum, x * relu6(x + 3) / 6 at x = -1.5
    assert first[linear_conv].min() < -0.375
    assert 0 < first[sig_dense].min() and first[sig_dense].max() < 1
    for _ in range(3):
        floor()
    for k, v in outs.items():
        np.testing.assert_array_equal(v, first[k], err_msg=k)
