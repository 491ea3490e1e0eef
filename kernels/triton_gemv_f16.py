"""The high gear's batch-1 GEMV: x [1, in] @ W^T with the original 16-bit weight, on CUDA cores.

Why not cuBLAS (F.linear), which the high gear used alone until now:
- At the decoder's smaller shapes cuBLAS's batch-1 GEMV reads well below the card's bandwidth:
  on an H200, 2.67 TB/s at 4096x4096 against 3.85 at 14336x4096 (docs/benchmarks/kernels-h200.md).
- It cannot launch as a dependent of the kernel before it (gearterm.kernels.dependent_launch),
  so each of the high gear's projections starts only when the kernel before it has ended.

A program: BLOCK_N rows, `in` read BLOCK_K channels a step, float32 products summed per row at
the end. The next step's weights are loaded before this step's products (in registers, as the
gear GEMV does), and the first step's before the wait for the kernel before: no kernel of a
step writes the weights. Where it replaces cuBLAS: gearterm.kernels.matmul.own_high_gemv (on
Hopper, where it was timed faster: docs/benchmarks/kernels-h100.md).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from gearterm.kernels import dependent_launch


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _gemv_f16_kernel(
    x_ptr, w_ptr, y_ptr, r_ptr, K, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PDL: tl.constexpr,
    RESIDUAL: tl.constexpr,  # write r + x @ W^T (r at r_ptr, rounded as eager adds it)
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    y = _row_sums(x_ptr, w_ptr, rows, K, BLOCK_N, BLOCK_K, PDL).to(y_ptr.dtype.element_ty)
    if RESIDUAL:  # the products rounded, then the sum: as `r + F.linear(x, W)` rounds twice
        y = (tl.load(r_ptr + rows).to(tl.float32) + y.to(tl.float32)).to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + rows, y)


@triton.jit
def _row_sums(x_ptr, w_ptr, rows, K, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PDL: tl.constexpr):
    """The products of the rows `rows` [BLOCK_N] with x, float32: the kernels' loop."""
    cols = tl.arange(0, BLOCK_K)
    w_ptrs = w_ptr + rows[:, None].to(tl.int64) * K + cols[None, :]
    w = tl.load(w_ptrs, eviction_policy="evict_first")
    if PDL:  # x comes from the kernel before
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    acc = tl.full([BLOCK_N, BLOCK_K], 0.0, tl.float32)
    for k in range(BLOCK_K, K, BLOCK_K):
        ahead = tl.load(w_ptrs + k, eviction_policy="evict_first")
        x = tl.load(x_ptr + (k - BLOCK_K) + cols, eviction_policy="evict_last")
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        w = ahead
    x = tl.load(x_ptr + (K - BLOCK_K) + cols, eviction_policy="evict_last")
    acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    # tl.reduce with our own _add, not tl.sum: the interpreter tests can run it (triton_gears says why)
    return tl.reduce(acc, 1, _add)


def config(n: int, k: int) -> dict:
    """Block sizes for an out x in weight (bench kernels --sweep --impl high chooses them)."""
    return {"BLOCK_N": 4, "BLOCK_K": 1024 if k % 1024 == 0 else 512, "num_warps": 4}


def fits(x: torch.Tensor, weight: torch.Tensor, cfg: dict | None = None) -> bool:
    """Whether this kernel computes x @ weight^T: one contiguous row of x on a GPU, in the
    weight's 16-bit type, with sizes its blocks divide."""
    n, k = weight.shape
    cfg = cfg or config(n, k)
    return (
        x.is_cuda
        and x.dtype in (torch.float16, torch.bfloat16)
        and weight.dtype == x.dtype
        and weight.is_contiguous()
        and math.prod(x.shape[:-1]) == 1
        and x.shape[-1] == k
        and n % cfg["BLOCK_N"] == 0
        and k % cfg["BLOCK_K"] == 0
    )


def gemv_f16(
    x: torch.Tensor, weight: torch.Tensor, cfg: dict | None = None, residual: torch.Tensor | None = None
) -> torch.Tensor:
    """x [..., in] (one row) @ weight^T -> [..., out], where `fits`; plus `residual` (x's shape
    but `out` wide, contiguous, x's type) where given."""
    n, k = weight.shape
    cfg = {**config(n, k), **(cfg or {})}
    x1 = x.reshape(k).contiguous()
    y = torch.empty(*x.shape[:-1], n, dtype=x.dtype, device=x.device)
    pdl = dependent_launch.enabled(x.device)
    _gemv_f16_kernel[(n // cfg["BLOCK_N"],)](
        x1, weight, y, y if residual is None else residual, k, BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"],
        num_warps=cfg["num_warps"], PDL=pdl, launch_pdl=pdl, RESIDUAL=residual is not None,
    )  # fmt: skip
    return y
