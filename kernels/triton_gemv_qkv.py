"""Experiment (default off, GEARTERM_QKV_EPILOGUE=1): the decode step's q, k and v projection
in the batch-1 low/mid gear GEMV of gearterm.kernels.triton_gemv_mma, with the rotary embedding
and the KV cache write as its epilogue.

Why: around that GEMV a compiled decode step runs three small kernels a layer (q's rotation, k's
rotation with its cache write, v's cache write: 0.074 ms of a 2.5 ms low-gear step on an H200,
decode-h200.md, plus a launch's latency each). With each rotary pair of a head's rows in one
tile of 16 (backends.decoder.rotary_order), the program that computes a row also holds its
partner, and can rotate and store both itself.

The rows come out of the loop as the default kernel's do (_row_sums), are rounded to 16 bits
as that kernel writes them, then rotated in float32 and rounded once (as inductor's fused
rotation computes it). q goes to its own [1, q rows] tensor; k and v into the cache at the
position the device holds. Inline PTX: CUDA only; the CUDA tests check it against the decoder's
own rotation and cache write.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gearterm.kernels import dependent_launch, triton_gemv_f16
from gearterm.kernels.gear import Gear
from gearterm.kernels import triton_gemv_mma
from gearterm.kernels.triton_gemv_mma import _program_rows, _row_sums, prefetch_steps, splits, x_ahead
from gearterm.kernels.word_planes import TILE_ROWS, WordPlanes

ROTARY_TILE = 8  # backends.decoder.ROTARY_TILE: a program's rows 0-7 and their partners, rows 8-15


@triton.jit
def _gemv_qkv_kernel(
    xw_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, G, positions,
    Q_ROWS: tl.constexpr, KV_ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, ROTARY_DIM: tl.constexpr,
    MID: tl.constexpr, BF16: tl.constexpr, KS: tl.constexpr, X_AHEAD: tl.constexpr, PREFETCH: tl.constexpr,
    PDL: tl.constexpr,
):  # fmt: skip
    acc = _row_sums(xw_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, G, MID, BF16, KS, X_AHEAD, PREFETCH, PDL, 0, False)
    y = _program_rows(acc, KS).to(q_ptr.dtype.element_ty).to(tl.float32)  # rounded as the GEMV writes them
    first, second = tl.split(tl.permute(y, (1, 0)))  # rows 0-7 and their partners, rows 8-15
    _write_qkv(first, second, tl.program_id(0) * 16, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, positions,
               Q_ROWS, KV_ROWS, HEAD_DIM, ROTARY_DIM, 8)  # fmt: skip


@triton.jit
def _gemv_f16_qkv_kernel(
    x_ptr, w_ptr, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, K, positions,
    Q_ROWS: tl.constexpr, KV_ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, ROTARY_DIM: tl.constexpr,
    BLOCK_K: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """The high gear's: triton_gemv_f16's loop over 8 rows, 4 and their 4 partners 8 rows on (rows
    4 (p % 2).. of tile p // 2), then the same epilogue."""
    row = (tl.program_id(0) // 2) * 16 + (tl.program_id(0) % 2) * 4
    j = tl.arange(0, 8)
    y = triton_gemv_f16._row_sums(x_ptr, w_ptr, row + (j // 4) * 8 + j % 4, K, 8, BLOCK_K, PDL)
    y = y.to(q_ptr.dtype.element_ty).to(tl.float32)  # rounded as the GEMV writes them
    first, second = tl.split(tl.permute(tl.reshape(y, [2, 4]), (1, 0)))
    _write_qkv(first, second, row, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, positions,
               Q_ROWS, KV_ROWS, HEAD_DIM, ROTARY_DIM, 4)  # fmt: skip


@triton.jit
def _write_qkv(
    first, second, row, q_ptr, cos_ptr, sin_ptr, pos_ptr, k_ptr, v_ptr, positions,
    Q_ROWS: tl.constexpr, KV_ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, ROTARY_DIM: tl.constexpr, HALF: tl.constexpr,
):  # fmt: skip
    """A program's rows row..row + HALF - 1 (`first`) and their rotary partners 8 rows on
    (`second`), [HALF] float32 each: q's rotated into q_ptr, k's rotated and v's into the cache
    at the position pos_ptr holds."""
    dtype = q_ptr.dtype.element_ty
    in_head = row % HEAD_DIM  # q, k and v are whole heads
    i = tl.arange(0, HALF)
    if (row < Q_ROWS + KV_ROWS) & (in_head < ROTARY_DIM):  # q or k, and dims that rotate
        dims = (in_head // 16) * 8 + in_head % 16 + i  # the first rows' dims: the first half's cos and sin
        c = tl.load(cos_ptr + dims).to(tl.float32)
        s = tl.load(sin_ptr + dims).to(tl.float32)
        first, second = first * c - second * s, second * c + first * s
    if row < Q_ROWS:
        tl.store(q_ptr + row + i, first.to(dtype))
        tl.store(q_ptr + row + 8 + i, second.to(dtype))
    else:
        kv_row = row - Q_ROWS
        cache = k_ptr
        if kv_row >= KV_ROWS:
            kv_row -= KV_ROWS
            cache = v_ptr
        at = cache + (kv_row // HEAD_DIM) * positions * HEAD_DIM + tl.load(pos_ptr) * HEAD_DIM + in_head
        tl.store(at + i, first.to(dtype))
        tl.store(at + 8 + i, second.to(dtype))


def _whole_tiles(head_dim: int, rotary_dim: int) -> bool:
    """Whether a head is whole row tiles of 16 and its rotating dims whole tiles of rotary pairs
    (then q, k and v, whole heads, are whole row tiles too)."""
    return rotary_dim % (2 * ROTARY_TILE) == 0 and head_dim % TILE_ROWS == 0


def fits(x: torch.Tensor, planes: WordPlanes, head_dim: int, rotary_dim: int) -> bool:
    """Whether the low/mid gear's kernel can run the q, k and v projection: the default kernel's
    shapes (triton_gemv_mma.fits), in whole tiles."""
    return triton_gemv_mma.fits(x, planes) and _whole_tiles(head_dim, rotary_dim)


def gemv_qkv(x, planes: WordPlanes, gear: Gear, cos, sin, pos, k_cache, v_cache, q_rows: int, rotary_dim: int) -> torch.Tensor:
    """x [1, in] @ W_gear^T for q, k and v stacked, each head's q and k rows in rotary tiles
    (backends.decoder.tile_rotary): returns q [1, q_rows] rotated; writes k rotated and v into the
    caches [kv heads, positions, head dim] at position pos ([1], on the device). cos and sin: the
    position's [rotary_dim] (halves repeated); x, the caches, cos and sin of one 16-bit type."""
    n, _ = planes.shape
    head_dim = k_cache.shape[-1]
    ks = splits(n, planes.groups, gear)  # whole steps wherever `fits`
    ahead = x_ahead(n, x.device)
    q = torch.empty(1, q_rows, dtype=x.dtype, device=x.device)
    pdl = dependent_launch.enabled(x.device)
    _gemv_qkv_kernel[(n // TILE_ROWS,)](
        x.view(torch.int32), planes.h_words, planes.h_scale, planes.h_zero, planes.l_words, planes.l_scale, q,
        cos, sin, pos, k_cache, v_cache, planes.groups, k_cache.shape[1],
        Q_ROWS=q_rows, KV_ROWS=(n - q_rows) // 2, HEAD_DIM=head_dim, ROTARY_DIM=rotary_dim,
        MID=gear == Gear.MID, BF16=x.dtype == torch.bfloat16, KS=ks, X_AHEAD=ahead, PREFETCH=prefetch_steps(gear, ahead),
        PDL=pdl, launch_pdl=pdl, num_warps=ks,
    )  # fmt: skip
    return q


def fits_high(x: torch.Tensor, weight: torch.Tensor, head_dim: int, rotary_dim: int) -> bool:
    """Whether the high gear's q/k/v kernel can run: triton_gemv_f16's shapes, in whole tiles."""
    return triton_gemv_f16.fits(x, weight) and _whole_tiles(head_dim, rotary_dim)


def gemv_f16_qkv(x, weight, cos, sin, pos, k_cache, v_cache, q_rows: int, rotary_dim: int) -> torch.Tensor:
    """gemv_qkv in the high gear: the original 16-bit weight, where fits_high."""
    n, k = weight.shape
    q = torch.empty(1, q_rows, dtype=x.dtype, device=x.device)
    pdl = dependent_launch.enabled(x.device)
    # 8 rows a program in 8 warps: 17.9 us at 6144x4096 on an H100 against 18.3 for the default 4
    # rows in 4 warps (bench kernels --sweep --impl high, 2026-12-07, kernels-h100-high-sweep.json).
    _gemv_f16_qkv_kernel[(n // 8,)](
        x.reshape(k), weight, q, cos, sin, pos, k_cache, v_cache, k, k_cache.shape[1], Q_ROWS=q_rows,
        KV_ROWS=(n - q_rows) // 2, HEAD_DIM=k_cache.shape[-1], ROTARY_DIM=rotary_dim,
        BLOCK_K=triton_gemv_f16.config(n, k)["BLOCK_K"], PDL=pdl, launch_pdl=pdl, num_warps=8,
    )  # fmt: skip
    return q
