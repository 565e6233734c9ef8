"""A slow, loop-based reference for the NumPy engine's fast paths (tests only, float64).

Written from the definitions, not from the engine: explicit TensorFlow 'same' padding arithmetic,
one output position at a time.
"""
from __future__ import annotations

import math

import numpy as np


def tf_pads(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(out, before, after) along one axis, as TensorFlow computes them."""
    if padding == "valid":
        return math.floor((size - k) / s) + 1, 0, 0
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid"):
    """NHWC x, HWIO kernel -> NHWC, float64."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    n, h, w, c = x.shape
    kh, kw, cin, cout = kernel.shape
    assert cin == c
    oh, pt, _ = tf_pads(h, kh, strides[0], padding)
    ow, pl, _ = tf_pads(w, kw, strides[1], padding)
    out = np.zeros((n, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r = i * strides[0] + a - pt
                    q = j * strides[1] + b - pl
                    if 0 <= r < h and 0 <= q < w:
                        out[:, i, j, :] += x[:, r, q, :] @ kernel[a, b]
    if bias is not None:
        out += bias
    return out


def depthwise_conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid"):
    """kernel (kh, kw, C, mult); output channel c*mult + m."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    n, h, w, c = x.shape
    kh, kw, _, mult = kernel.shape
    oh, pt, _ = tf_pads(h, kh, strides[0], padding)
    ow, pl, _ = tf_pads(w, kw, strides[1], padding)
    out = np.zeros((n, oh, ow, c * mult))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r = i * strides[0] + a - pt
                    q = j * strides[1] + b - pl
                    if 0 <= r < h and 0 <= q < w:
                        for ch in range(c):
                            out[:, i, j, ch * mult:(ch + 1) * mult] += x[:, r, q, ch, None] * kernel[a, b, ch]
    if bias is not None:
        out += bias
    return out


def pool2d(x, pool=(2, 2), strides=None, padding="valid", mode="max"):
    """Max / average pooling; 'same' average counts only the cells inside the input (TF)."""
    x = np.asarray(x, np.float64)
    strides = strides or pool
    n, h, w, c = x.shape
    oh, pt, _ = tf_pads(h, pool[0], strides[0], padding)
    ow, pl, _ = tf_pads(w, pool[1], strides[1], padding)
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            cells = []
            for a in range(pool[0]):
                for b in range(pool[1]):
                    r = i * strides[0] + a - pt
                    q = j * strides[1] + b - pl
                    if 0 <= r < h and 0 <= q < w:
                        cells.append(x[:, r, q, :])
            stack = np.stack(cells)
            out[:, i, j, :] = stack.max(0) if mode == "max" else stack.mean(0)
    return out


def dense(x, kernel, bias=None):
    x = np.asarray(x, np.float64)
    out = np.tensordot(x, np.asarray(kernel, np.float64), axes=([x.ndim - 1], [0]))
    return out if bias is None else out + bias


def batchnorm(x, gamma, beta, mean, var, eps, axis=-1):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: np.asarray(v, np.float64).reshape(shape)
    return (np.asarray(x, np.float64) - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


def relu(x):
    return np.maximum(x, 0)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- the layers of the Keras Applications families (float64, from their definitions)

def gelu(x):
    """0.5 x (1 + erf(x / sqrt 2)), erf from the standard library, one element at a time."""
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def hard_sigmoid(x):
    return np.clip(np.asarray(x, np.float64) + 3, 0, 6) / 6


def hard_silu(x):
    return np.asarray(x, np.float64) * hard_sigmoid(x)


def layer_norm(x, gamma, beta, eps):
    """Normalised over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def normalization(x, mean, var, eps=1e-7):
    return (np.asarray(x, np.float64) - mean) / np.maximum(np.sqrt(var), eps)


def grouped_conv2d(x, kernel, groups, bias=None, strides=(1, 1), padding="valid"):
    """Conv2D with `groups`: group g's input channels to group g's output channels only."""
    cin, cout = x.shape[-1], kernel.shape[-1]
    ci, co = cin // groups, cout // groups
    parts = [conv2d(x[..., g * ci:(g + 1) * ci], kernel[..., g * co:(g + 1) * co], None, strides, padding)
             for g in range(groups)]
    out = np.concatenate(parts, axis=-1)
    return out if bias is None else out + bias


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, strides=(1, 1), padding="valid"):
    return conv2d(depthwise_conv2d(x, depthwise_kernel, None, strides, padding), pointwise_kernel, bias)


def crop2d(x, crops):
    (t, b), (l, r) = crops
    return np.asarray(x, np.float64)[:, t:x.shape[1] - b, l:x.shape[2] - r, :]
