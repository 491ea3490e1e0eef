"""The fast gate path as one Triton kernel: a row per program, both histograms in one pass.

Same numbers as gearterm.kernels.gate's torch version (histogram_entropy, byte_entropy), which is
its reference; one launch instead of about twenty matters in eager decode on a GPU."""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

BINS = tl.constexpr(64)


@triton.jit
def _edge(k, step, delta, first, last):
    """Bin edge k (float32) as numpy.linspace computes it; k == 64 is the range's top."""
    kf = k.to(tl.float32)
    y = tl.where(step == 0.0, tl.math.div_rn(kf, 64.0) * delta, kf * step)
    return tl.where(k == 64, last, y + first)


@triton.jit(do_not_specialize=["d"])  # d == 1 would otherwise become a Python int in the kernel
def _gate_kernel(x_ptr, xlogx_ptr, entropy_ptr, comp_ptr, d, stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    inside = offs < d
    x = tl.load(x_ptr + row * stride + offs, mask=inside, other=0.0).to(tl.float32)
    pad = BLOCK - d

    # numpy.histogram refuses non-finite values and ranges too narrow for 64 distinct edges.
    nonfinite = tl.sum(((x != x) | (tl.abs(x) == float("inf"))).to(tl.int32), 0)
    lo = tl.min(tl.where(inside, x, float("inf")), 0)
    hi = tl.max(tl.where(inside, x, -float("inf")), 0)
    same = lo == hi
    first = tl.where(same, lo - 0.5, lo)
    last = tl.where(same, hi + 0.5, hi)
    delta = last - first
    step = tl.math.div_rn(delta, 64.0)
    k = tl.arange(0, BINS)
    narrow = tl.sum((_edge(k, step, delta, first, last) >= _edge(k + 1, step, delta, first, last)).to(tl.int32), 0)

    f = tl.math.div_rn(x - first, delta) * 64.0
    f = tl.minimum(tl.maximum(tl.where(f == f, f, 0.0), 0.0), 64.0)
    idx = f.to(tl.int32)
    idx = tl.where(idx == 64, 63, idx)
    idx = tl.where(x < _edge(idx, step, delta, first, last), idx - 1, idx)
    idx = tl.minimum(tl.maximum(idx, 0), 63)
    idx = tl.where((x >= _edge(idx + 1, step, delta, first, last)) & (idx != 63), idx + 1, idx)
    idx = tl.where(inside, idx, 0)
    counts = tl.histogram(idx, BINS)
    counts = tl.where(k == 0, counts - pad, counts)  # padding was counted in bin 0
    # Entropy in bits = (N ln N - sum c ln c) / (N ln 2), every c ln c read from a float64
    # table: no float64 logarithm or literal in the kernel (both would round through float32).
    ln2 = tl.load(xlogx_ptr + 2) / 2
    n = d.to(tl.float64)
    bits = (tl.load(xlogx_ptr + d) - tl.sum(tl.load(xlogx_ptr + counts), 0)) / (n * ln2)
    entropy = bits / 6.0
    entropy = tl.where((nonfinite > 0) | (narrow > 0), float("nan"), entropy)
    tl.store(entropy_ptr + row, entropy)

    # Order-0 entropy of the 4d little-endian bytes; padding adds 4 zero bytes per slot.
    raw = x.to(tl.int32, bitcast=True)
    byte_counts = tl.histogram(raw & 0xFF, 256)
    byte_counts += tl.histogram((raw >> 8) & 0xFF, 256)
    byte_counts += tl.histogram((raw >> 16) & 0xFF, 256)
    byte_counts += tl.histogram((raw >> 24) & 0xFF, 256)
    byte_counts = tl.where(tl.arange(0, 256) == 0, byte_counts - 4 * pad, byte_counts)
    byte_bits = (tl.load(xlogx_ptr + 4 * d) - tl.sum(tl.load(xlogx_ptr + byte_counts), 0)) / (4 * n * ln2)
    tl.store(comp_ptr + row, byte_bits / 8.0)


@functools.cache
def _xlogx_table(d: int, device: torch.device) -> torch.Tensor:
    """c ln c for c = 0 .. 4d (the most a byte count can reach), float64."""
    c = torch.arange(4 * d + 1, dtype=torch.float64, device=device)
    return torch.special.xlogy(c, c)


def fused_gate_metrics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalized histogram entropy, byte entropy / 8), float64 [n] each, for x [n, d]."""
    if x.stride(1) != 1:
        x = x.contiguous()
    n, d = x.shape
    entropy = torch.empty(n, dtype=torch.float64, device=x.device)
    compressibility = torch.empty(n, dtype=torch.float64, device=x.device)
    block = max(triton.next_power_of_2(d), 16)
    warps = max(1, min(8, block // 256))
    # No fused multiply-add: the edges must round exactly as numpy's separate mul and add do.
    _gate_kernel[(n,)](
        x,
        _xlogx_table(max(d, 1), x.device),
        entropy,
        compressibility,
        d,
        x.stride(0),
        BLOCK=block,
        num_warps=warps,
        enable_fp_fusion=False,
    )
    return entropy, compressibility

