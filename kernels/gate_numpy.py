"""The gate's two entropies in numpy: the CPU path. In decode the gate sees a handful of
vectors per token, where each operation's fixed cost is the time, and a numpy operation
costs about half a torch one. Same numbers as gearterm.kernels.gate's torch version."""

from __future__ import annotations

import math

import numpy as np

BINS = 64
LN2 = math.log(2.0)
_K = np.arange(BINS + 1, dtype=np.float32)
_K_FRACTION = _K / np.float32(BINS)


@np.errstate(all="ignore")  # non-finite rows are refused; their arithmetic is moot
def numpy_gate_entropies(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normalized 64-bin histogram entropy, byte entropy / 8), float64 [n] each, of the rows
    of a float32 array [n, d]; the entropy is NaN where numpy.histogram refuses the row."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    lo, hi = x.min(1), x.max(1)
    half = (lo == hi) * np.float32(0.5)  # numpy widens a constant row's range by 0.5 each way
    first, last = lo - half, hi + half
    delta = (last - first)[:, None]
    step = delta / np.float32(BINS)
    # numpy.linspace's float32 edges, dividing first when the step underflows to zero
    edges = np.where(step == 0, _K_FRACTION * delta, _K * step) + first[:, None]
    edges[:, -1] = last
    refused = ~np.isfinite(delta[:, 0]) | (edges[:, 1:] <= edges[:, :-1]).any(1)
    idx = ((x - first[:, None]) / delta * np.float32(BINS)).astype(np.int64)
    np.clip(idx, 0, BINS - 1, out=idx)
    rows = np.arange(n)[:, None]
    # float rounding can put a value one bin off; numpy.histogram corrects against the edges
    idx -= x < edges[rows, idx]
    np.maximum(idx, 0, out=idx)
    edges[:, -1] = np.inf  # the last bin is closed on the right: nothing moves past it
    idx += x >= edges[rows, idx + 1]
    # One bincount for both histograms: row r's value bins at r*320 + 0..63, its bytes at + 64..319.
    width = BINS + 256
    raw = x.view(np.uint8).reshape(n, 4 * d)
    slots = np.concatenate([idx + rows * width, raw + (rows * width + BINS)], axis=1)
    counts = np.bincount(slots.ravel(), minlength=n * width).reshape(n, width).astype(np.float64)
    clogc = counts * np.log(np.maximum(counts, 1.0))  # 0 log 0 = 0
    entropy = (math.log2(d) - clogc[:, :BINS].sum(1) / (d * LN2)) / math.log2(BINS)
    entropy[refused] = np.nan
    byte_entropy = (math.log2(4 * d) - clogc[:, BINS:].sum(1) / (4 * d * LN2)) / 8
    return entropy, byte_entropy
