"""The activation entropy gate: does a hidden state look simple enough (low histogram
entropy, compressible bytes) to pass? Vectorized over a batch of vectors on any device.

Reference semantics, per vector v (float32):
    counts, _ = numpy.histogram(v, 64)
    entropy = scipy.stats.entropy(counts, base=2) / log2(64)
    compressibility = len(zlib.compress(v.tobytes(), 6)) / v.nbytes     (exact)
                    = order-0 entropy of the same bytes in bits / 8        (fast)
    passed = entropy <= 0.80 and compressibility <= 0.90
Where numpy.histogram refuses a vector (a NaN or Inf in it, or a range too narrow
for 64 distinct float32 bin edges) the entropy is NaN and the vector fails the gate.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import torch

BINS = 64
LN2 = math.log(2.0)
Mode = Literal["fast", "exact"]


@dataclass(frozen=True)
class GateThresholds:
    entropy: float = 0.80  # normalized histogram entropy, 0..1
    compressibility: float = 0.90  # compressed / raw bytes (or byte entropy / 8)


@dataclass
class GateMetrics:
    entropy: torch.Tensor  # [n] float64; NaN where numpy.histogram refuses the vector
    compressibility: torch.Tensor  # [n] float64
    passed: torch.Tensor  # [n] bool


def _normalized_entropy(counts: torch.Tensor, total: int, max_bits: float) -> torch.Tensor:
    """Shannon entropy / max_bits of each row of float64 counts that sum to `total`.

    -sum(p log2 p) = log2(N) - sum(c ln c) / (N ln 2); empty bins add nothing (xlogy(0, 0) = 0)."""
    scale = -1.0 / (total * LN2 * max_bits)
    return torch.special.xlogy(counts, counts).sum(-1).mul_(scale).add_(math.log2(total) / max_bits)


@functools.cache
def _edge_numbers(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(BINS + 1, dtype=torch.float32, device=device)
    return k, k / BINS


def _bin_edges(first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """[n, 65] float32 edges built with the same float32 operations as numpy.linspace."""
    k, k_fraction = _edge_numbers(first.device)
    delta = (last - first)[:, None]
    step = delta / BINS
    # numpy divides first when the step underflows to zero (a subnormal range).
    edges = torch.where(step == 0, k_fraction * delta, k * step).add_(first[:, None])
    edges[:, -1] = last
    return edges


def histogram_counts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """64-bin counts [n, 64] (float64) of each row over its own min..max, bin for bin what
    numpy.histogram(row, 64) gives, and a [n] mask of the rows numpy refuses.

    Written for few operations: in decode this runs once per token on a handful of vectors,
    where each operation's fixed cost, not the arithmetic, is the time."""
    x = x.float()
    lo, hi = torch.aminmax(x, dim=1)
    half = (lo == hi) * 0.5  # numpy widens a constant vector's range by 0.5 each way
    first, last = lo - half, hi + half
    edges = _bin_edges(first, last)
    # NaN or Inf anywhere makes the range non-finite (aminmax propagates NaN).
    refused = ~(last - first).isfinite() | (edges[:, 1:] <= edges[:, :-1]).any(1)
    f = (x - first[:, None]).div_((last - first)[:, None]).mul_(BINS)
    # numpy truncates to an index and puts the top value in the last bin; the clamp also
    # keeps refused rows' NaN-derived indices in range.
    idx = f.long().clamp_(0, BINS - 1)
    # float rounding can put a value one bin off; numpy corrects against the edges.
    idx -= (x < edges.gather(1, idx)).long()
    idx.clamp_(min=0)
    edges[:, -1] = math.inf  # the last bin is closed on the right: nothing moves past it
    idx += (x >= edges.gather(1, idx + 1)).long()
    counts = torch.zeros(x.shape[0], BINS, dtype=torch.float64, device=x.device)
    counts.scatter_add_(1, idx, torch.ones_like(x, dtype=torch.float64))
    return counts, refused


def histogram_entropy(x: torch.Tensor) -> torch.Tensor:
    """Normalized 64-bin histogram entropy of each row of x [n, d], 0..1, float64."""
    counts, refused = histogram_counts(x)
    return _normalized_entropy(counts, x.shape[1], math.log2(BINS)).masked_fill_(refused, math.nan)


def byte_entropy(x: torch.Tensor) -> torch.Tensor:
    """Order-0 entropy of each row's float32 bytes, in bits per byte / 8: the fast,
    on-device stand-in for the zlib ratio (zlib cannot run on a GPU)."""
    raw = x.float().contiguous().view(torch.uint8).long()  # [n, 4d], little-endian as tobytes()
    counts = torch.zeros(raw.shape[0], 256, dtype=torch.float64, device=x.device)
    counts.scatter_add_(1, raw, torch.ones_like(raw, dtype=torch.float64))
    return _normalized_entropy(counts, raw.shape[1], 8.0)


def _zlib_ratios(rows) -> list[float]:
    return [len(zlib.compress(row.tobytes(), 6)) / row.nbytes for row in rows]


def zlib_ratio(x: torch.Tensor) -> torch.Tensor:
    """len(zlib.compress(row_bytes, 6)) / len(row_bytes) for each float32 row, on the CPU
    (in threads: zlib releases the GIL), returned on x's device as float64."""
    rows = x.detach().float().cpu().contiguous().numpy()
    workers = min(os.cpu_count() or 1, max(1, len(rows) // 256))
    chunks = [rows[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(_zlib_ratios, chunks))
    ratios = torch.empty(len(rows), dtype=torch.float64)
    for i, part in enumerate(parts):
        ratios[i::workers] = torch.tensor(part, dtype=torch.float64)
    return ratios.to(x.device)


def _fused_available(x: torch.Tensor) -> bool:
    if x.device.type != "cuda":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def gate_metrics(
    x: torch.Tensor, mode: Mode = "fast", thresholds: GateThresholds = GateThresholds()
) -> GateMetrics:
    """Entropy, compressibility and the pass decision of every row of x [n, d].

    fast: everything on x's device, no host sync: numpy on the CPU, one fused Triton
    kernel on CUDA, torch operations elsewhere. exact: the same entropy, zlib on the CPU."""
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"the gate takes a batch of vectors [n, d] with d >= 1, got shape {tuple(x.shape)}")
    if mode not in ("fast", "exact"):
        raise ValueError(f"unknown gate mode {mode!r}: use fast or exact")
    if x.device.type == "cpu":
        from gearterm.kernels.gate_numpy import numpy_gate_entropies

        entropy, byte_h = (torch.from_numpy(a) for a in numpy_gate_entropies(x.detach().float().numpy()))
        compressibility = byte_h if mode == "fast" else zlib_ratio(x)
    elif mode == "fast" and _fused_available(x):
        from gearterm.kernels.gate_triton import fused_gate_metrics

        entropy, compressibility = fused_gate_metrics(x)
    else:
        entropy = histogram_entropy(x)
        compressibility = byte_entropy(x) if mode == "fast" else zlib_ratio(x)
    # NaN entropy compares False: a refused vector never passes.
    passed = (entropy <= thresholds.entropy) & (compressibility <= thresholds.compressibility)
    return GateMetrics(entropy, compressibility, passed)


def gate_passed(x: torch.Tensor, thresholds: GateThresholds = GateThresholds()) -> torch.Tensor:
    """Fast-path decisions [n] bool on x's device: what decode runs once per token."""
    return gate_metrics(x, "fast", thresholds).passed
