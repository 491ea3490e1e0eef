"""Experiment (default off): the batch-1 low/mid gear GEMV of gearterm.kernels.triton_gemv_mma
with its codes streamed by the Hopper bulk-copy engine (TMA) through a ring of shared-memory buffers.

Why: there, each warp reads the next step's codes into registers and ptxas issues those loads at
the end of the step (kernels-h200.md), so a warp waits for most of a trip to memory every step;
holding them earlier costs registers, hence warps (the experiment PIN). Here Triton's pipeliner
keeps the codes of the next STAGES - 1 steps in flight as bulk copies into shared memory, one
copy a group of a program's KS chunks, an mbarrier a buffer: no register holds them in flight.
(Triton's cp.async pipelining of the same loads lost, kernels-h200.md: a 16-byte copy a lane.)

Same programs, lanes and inline PTX as triton_gemv_mma. A copy's block is one group of the
program's KS chunks through a view of the words (_descriptor) that reshapes to that kernel's
[16 KS, 16] tile; Triton reads it out of shared memory straight into the layout the
inline PTX needs (warp c on chunk c, lane 4r + t on rows r and r + 8, words 4t..4t+3; offline,
Triton 3.6 and 3.9), so no layout conversion stands between the copy and the products.
Hopper and later only; the CUDA tests check it against the reference.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from gearterm.kernels import dependent_launch
from gearterm.kernels.gear import Gear
from gearterm.kernels.triton_gemv_mma import STEP, _group, _program_tile, _scale_loads, _write_rows, splits, whole_steps
from gearterm.kernels.word_planes import TILE_ROWS, WordPlanes


def _setting(text: str) -> tuple[int, int | None]:
    """GEARTERM_GEMV_TMA=N[:KS]: every batch-1 tensor-core GEMV (the decode step's) takes this
    kernel with N stages (gearterm.kernels.triton_gears.gear_matmul), KS as given or as splits()
    says; unset or 0: off. "3" -> (3, None), "3:1" -> (3, 1)."""
    stages, _, ks = text.partition(":")
    return int(stages or 0), int(ks) if ks else None


STAGES_SETTING, KS_SETTING = _setting(os.environ.get("GEARTERM_GEMV_TMA", ""))
TILE = TILE_ROWS * 16  # words of one group of one row tile
_STEP = tl.constexpr(STEP)


# x read by inline PTX, which Triton's pipeliner leaves where it stands: as tl.load it would stage x
# through shared memory too (offline: 172 KB of it for the low gear at KS 4, stages 3).
_X_LOAD = tl.constexpr("ld.global.L1::evict_last.v4.b32 {$0, $1, $2, $3}, [$4];")


@triton.jit
def _x_load(pointers):
    return tl.inline_asm_elementwise(_X_LOAD, "=r,=r,=r,=r,l,l,l,l", [pointers], tl.int32, True, 4)


@triton.jit
def _group_at(acc, xw_ptr, x_chunk, g, wi, codes, low_codes, s, z, ls, j: tl.constexpr, MID: tl.constexpr, BF16: tl.constexpr):
    """triton_gemv_mma._group_at with x read by _x_load: 16 bytes a lane a load."""
    pairs = xw_ptr + x_chunk + g * 64 + (wi // 4) * 16 + wi % 4
    x0, x1, x2, x3 = _x_load(pairs), _x_load(pairs + 4), _x_load(pairs + 8), _x_load(pairs + 12)
    return _group(acc, x0, x1, x2, x3, codes, low_codes, s, z, ls, j, MID, BF16)


@triton.jit
def _codes(desc, block, g, KS: tl.constexpr):
    """Group g's codes of the program's chunks, [16 KS, 16] as triton_gemv_mma's tile."""
    if KS == 1:
        tile = tl.reshape(desc.load([block, g, 0, 0]), [16, 16])
    else:
        tile = tl.reshape(desc.load([0, block, g, 0, 0]), [16 * KS, 16])
    return tile


@triton.jit
def _step_codes(desc, block, g0, KS: tl.constexpr):
    """The codes of the step's four groups."""
    return _codes(desc, block, g0, KS), _codes(desc, block, g0 + 1, KS), _codes(desc, block, g0 + 2, KS), _codes(desc, block, g0 + 3, KS)


@triton.jit
def _gemv_tma_kernel(
    xw_ptr, h_codes, hs_ptr, hz_ptr, l_codes, ls_ptr, y_ptr, r_ptr, G,
    MID: tl.constexpr, BF16: tl.constexpr, KS: tl.constexpr, STAGES: tl.constexpr, PDL: tl.constexpr,
    SILU_TIMES_UP: tl.constexpr, RESIDUAL: tl.constexpr,  # the epilogues of triton_gemv_mma
):  # fmt: skip
    row, chunk, GC = _program_tile(G, KS)
    row_scales = row * G + chunk * GC
    x_chunk = chunk * (GC * 64)
    wi = tl.arange(0, 16)[None, :]
    block = tl.program_id(0) * KS
    acc = tl.full([16 * KS, 16], 0.0, tl.float32)
    if PDL:  # x comes from the kernel before (kernels.dependent_launch); the codes' first copies
        # are issued after this wait: the pipeliner puts them just before the loop
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    for g0 in tl.range(0, GC, _STEP, num_stages=STAGES):
        q0, q1, q2, q3 = _step_codes(h_codes, block, g0, KS)
        scales, s, z = _scale_loads(hs_ptr, hz_ptr, row_scales, wi, g0, True)
        if MID:
            l0, l1, l2, l3 = _step_codes(l_codes, block, g0, KS)
            ls = tl.load(ls_ptr + scales)
        else:
            l0, l1, l2, l3, ls = q0, q1, q2, q3, s
        acc = _group_at(acc, xw_ptr, x_chunk, g0, wi, q0, l0, s, z, ls, 0, MID, BF16)
        acc = _group_at(acc, xw_ptr, x_chunk, g0 + 1, wi, q1, l1, s, z, ls, 1, MID, BF16)
        acc = _group_at(acc, xw_ptr, x_chunk, g0 + 2, wi, q2, l2, s, z, ls, 2, MID, BF16)
        acc = _group_at(acc, xw_ptr, x_chunk, g0 + 3, wi, q3, l3, s, z, ls, 3, MID, BF16)
    _write_rows(acc, y_ptr, r_ptr, KS, SILU_TIMES_UP, RESIDUAL)


def _descriptor(words: torch.Tensor, ks: int) -> TensorDescriptor:
    """A copy's block: one group of the program's ks chunks, in the order of triton_gemv_mma's
    tile (row 8 h + r of chunk c at tile row 8 ks h + 8 c + r). The words [rows / 16, groups,
    16 rows x 16] as they are for one chunk; for more, as [row halves 2, rows / 16 x ks, groups / ks,
    8 rows, 16], a block [2, ks, 1, 8, 16]. That view's strides are not in the order of its
    dimensions (the halves' 128 words inside a group's 256), which the CUDA documentation's
    example of a tensor map does not show: should the driver refuse it, KS 1 still runs."""
    tiles, groups, _ = words.shape
    if ks == 1:
        return TensorDescriptor(words, [tiles, groups, TILE_ROWS, 16], [groups * TILE, TILE, 16, 1], [1, 1, TILE_ROWS, 16])
    gc = groups // ks
    return TensorDescriptor(words, [2, tiles * ks, gc, 8, 16], [128, gc * TILE, TILE, 16, 1], [2, ks, 1, 8, 16])


def gemv_tma(
    x: torch.Tensor,
    planes: WordPlanes,
    gear: Gear,
    ks: int | None = None,
    stages: int = 3,
    silu_times_up: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """triton_gemv_mma.gemv_mma's product and epilogues, on Hopper or later, where it fits;
    `stages`: the pipeliner's stages (stages - 1 steps of codes in flight)."""
    if torch.cuda.get_device_capability(x.device) < (9, 0):
        raise ValueError("the bulk-copy GEMV (GEARTERM_GEMV_TMA) needs a Hopper GPU or later")
    n, _ = planes.shape
    ks = ks or splits(n, planes.groups, gear)
    if not whole_steps(planes.groups, ks):
        raise ValueError(f"{planes.groups} groups do not split into {ks} chunks of whole {STEP}-group steps")
    y = torch.empty(1, n // 2 if silu_times_up else n, dtype=x.dtype, device=x.device)
    high = _descriptor(planes.h_words, ks)
    pdl = dependent_launch.enabled(x.device)
    _gemv_tma_kernel[(n // TILE_ROWS,)](
        x.view(torch.int32), high, planes.h_scale, planes.h_zero, _descriptor(planes.l_words, ks) if gear == Gear.MID else high,
        planes.l_scale, y, y if residual is None else residual, planes.groups, MID=gear == Gear.MID,
        BF16=x.dtype == torch.bfloat16, KS=ks, STAGES=stages, num_warps=ks, PDL=pdl, launch_pdl=pdl,
        SILU_TIMES_UP=silu_times_up, RESIDUAL=residual is not None,
    )  # fmt: skip
    return y
