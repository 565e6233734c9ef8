"""Exact rewrite passes over a converted program, and the weights' run-time form.

- fold_pad: a ZeroPadding2D read only by a 'valid' Conv2D/DepthwiseConv2D becomes that op's explicit
  padding (its padded copy is made once, by the convolution, instead of twice);
- fold_bn: a BatchNormalization right after a Conv2D/DepthwiseConv2D/Dense (sole consumer, linear
  activation) is folded into its weights;
- fuse_act: a stand-alone activation runs in place in its producer's buffer;
- commute_pool: the bias and a monotone activation of a convolution feeding only a max-pool move
  after the pool (max(a+b) == max(a)+b exactly, in float arithmetic too);
- fuse_conv_pool: a 'valid' max-pool with pool == strides is fused into the convolution;
- finalize: contiguous float32 weights, conv kernels as (kh*kw*cin, cout); prune: drop dead ops.
"""
from __future__ import annotations

import numpy as np

from overhead.engine.ops import F32, Op


def optimize(ops, out_vals):
    """All passes in order: the program the engine runs."""
    outputs = set(out_vals)
    ops = fold_pad(ops, outputs)
    ops = fold_bn(ops, outputs)
    ops = fuse_act(ops, outputs)
    ops = commute_pool(ops, outputs)
    ops = fuse_conv_pool(ops, outputs)
    return prune(finalize(ops), out_vals)


def is_monotone(spec) -> bool:
    """Non-decreasing activations commute with max-pooling (and with adding a per-channel bias)."""
    if spec is None or spec[0] in ("linear", "sigmoid", "tanh"):
        return True
    if spec[0] == "relu":
        _, slope, max_value, threshold = spec
        return threshold == 0 and slope >= 0 and (max_value is None or max_value >= 0)
    return False


def _consumers(ops):
    uses: dict[int, list[Op]] = {}
    for op in ops:
        for v in op.ins:
            uses.setdefault(v, []).append(op)
    return uses


def _absorber(op, kinds, producer, uses, outputs):
    """The op producing `op`'s input when it may absorb `op`: one of `kinds`, no activation of its own,
    read by `op` alone and not a model output; else None."""
    src = producer.get(op.ins[0])
    if (src is not None and src.kind in kinds and src.act is None
            and len(uses[src.out]) == 1 and src.out not in outputs):
        return src
    return None


def fold_pad(ops, outputs):
    """ZeroPadding2D -> 'valid' Conv2D/DepthwiseConv2D (its only reader, not a model output) becomes the
    convolution with explicit padding ((top, bottom), (left, right)): the same zeros, the same sums."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    drop = set()
    for op in ops:
        if op.kind in ("conv", "dwconv") and op.p["padding"] == "valid":
            src = producer.get(op.ins[0])
            if (src is not None and src.kind == "zeropad" and src.bias is None and src.act is None
                    and len(uses[src.out]) == 1 and src.out not in outputs):
                op.p["padding"] = tuple((int(a), int(b)) for a, b in src.p["pads"])
                op.ins = list(src.ins)
                op.p["folded"] = op.p.get("folded", ()) + (src.name,)
                drop.add(id(src))
    return [op for op in ops if id(op) not in drop]


def fold_bn(ops, outputs):
    """Fold BatchNormalization into the Conv2D/DepthwiseConv2D/Dense right before it when that op's
    output feeds only the BN, is not a model output and has a linear activation."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        if op.kind == "bn":
            src = _absorber(op, ("conv", "dwconv", "dense"), producer, uses, outputs)
            if src is not None and op.p["axis"] == op.p["rank"] - 1:
                inv, shift = op.p["scale"], op.p["shift"]
                k = src.p["kernel"]
                if src.kind == "dwconv":
                    src.p["kernel"] = k * inv.reshape(k.shape[2], k.shape[3])
                else:
                    src.p["kernel"] = k * inv
                b = src.bias if src.bias is not None else 0.0
                src.bias = b * inv + shift
                src.out = op.out
                producer[src.out] = src
                src.p["folded"] = src.p.get("folded", ()) + (op.name,)
                continue
        keep.append(op)
    return keep


_FUSE_INTO = ("conv", "dwconv", "dense", "scale_shift", "merge", "pool", "gpool", "concat", "bn", "layernorm",
              "crop")


def fuse_act(ops, outputs):
    """Apply a stand-alone activation in place in its producer's buffer when nothing else reads it."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        if op.kind == "act":
            src = _absorber(op, _FUSE_INTO, producer, uses, outputs)
            if src is not None:
                src.act = None if op.act == ("linear",) else op.act
                src.out = op.out
                producer[src.out] = src
                continue
        keep.append(op)
    return keep


def commute_pool(ops, outputs):
    """conv(+bias, monotone act) -> max-pool  ==>  conv -> max-pool(+bias, act): 1/(ph*pw) the work.
    Exact: rounding x -> fl(x + b) and the activations are non-decreasing, so they commute with max."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    for op in ops:
        if op.kind != "pool" or op.p["mode"] != "max" or op.bias is not None:
            continue
        src = producer.get(op.ins[0])
        if (src is None or src.kind not in ("conv", "dwconv") or len(uses[src.out]) != 1
                or src.out in outputs or not is_monotone(src.act)):
            continue
        if src.act is not None and op.act is not None:
            continue
        op.bias, src.bias = src.bias, None
        if src.act is not None:
            op.act, src.act = src.act, None
    return ops


def fuse_conv_pool(ops, outputs):
    """conv -> max-pool (pool == strides, 'valid'; bias/act already moved after the pool) becomes
    one conv op that computes only the rows the pool keeps, partner-major (see build_conv)."""
    producer = {op.out: op for op in ops}
    uses = _consumers(ops)
    keep = []
    for op in ops:
        p = op.p
        if (op.kind == "pool" and p["mode"] == "max" and p["padding"] == "valid"
                and (p["ph"], p["pw"]) == (p["sh"], p["sw"])):
            src = producer.get(op.ins[0])
            if (src is not None and src.kind == "conv" and "pool" not in src.p and len(uses[src.out]) == 1
                    and src.out not in outputs and src.bias is None and src.act is None):
                src.p["pool"] = (p["ph"], p["pw"])
                src.bias, src.act, src.out = op.bias, op.act, op.out
                src.p["fused"] = src.p.get("fused", ()) + (op.name,)
                producer[src.out] = src
                continue
        keep.append(op)
    return keep


def finalize(ops):
    """Weights to their run-time form: contiguous float32, conv kernels as (kh*kw*cin, cout)."""
    for op in ops:
        if op.kind == "conv":
            k = op.p.pop("kernel")
            op.p["w2"] = np.ascontiguousarray(k.reshape(-1, k.shape[3]), dtype=F32)
            op.p["cin"] = k.shape[2]
        elif op.kind == "dwconv":
            op.p["w"] = np.ascontiguousarray(op.p.pop("kernel"), dtype=F32)
        elif op.kind == "dense":
            op.p["w"] = np.ascontiguousarray(op.p.pop("kernel"), dtype=F32)
        elif op.kind == "bn":  # stand-alone: becomes x * scale + shift along its axis
            op.kind = "scale_shift"
            bshape = (-1,) + (1,) * (op.p["rank"] - 1 - op.p["axis"])  # broadcast along its axis
            op.p["scale"] = op.p["scale"].reshape(bshape).astype(F32)
            op.p["shift"] = op.p["shift"].reshape(bshape).astype(F32)
        if op.bias is not None:
            op.bias = np.ascontiguousarray(op.bias, dtype=F32)
    return ops


def prune(ops, out_vals):
    """Drop ops whose results no output needs."""
    need = set(out_vals)
    keep = []
    for op in reversed(ops):
        if op.out in need:
            keep.append(op)
            need.update(op.ins)
    return keep[::-1]
