"""The batch-1 low/mid gear GEMV on tensor cores: mma.sync m16n8k16 through inline PTX.

Why: a CUDA-core GEMV spends at least three instructions a weight (unpack, make the code,
FMA) and on an H100 that arithmetic does not hide behind the loads (docs/benchmarks/
kernels-h100.md). Here one LOP3 turns two codes into a pair of 16-bit floats, 1024 + c
(or 1024 + 16 c), that the matrix instruction multiplies by x directly: about 0.6 integer
instructions a code plus one m16n8k16 per 256 codes.

How, per group of 128 channels and 16 rows (the words' tile, gearterm.kernels.word_planes):
- Lane 4r + t of a warp holds rows r and r + 8 and words 4t..4t+3 of the group, which is
  how Triton lays out a [16, 16] int32 tile (8 x 4 lanes, 4 words a lane) and also the
  fragment order of the A operand; x's B fragment is the same channel pairs, loaded as
  they lie in memory. Each column of B is the same x, so every column of the product is
  the row's dot product.
- The codes come out offset: pairs of channels 0-1 and 2-3 of a word as 1024 + c, pairs
  4-5 and 6-7 as 1024 + 16 c (bf16: 128 + c for both, with two more shifts). The products
  are exact and the sum is float32, so sum(c x) = A + B / 16 - (1024 sum_A x + 64 sum_B x):
  the offsets are one more product per group, of a constant matrix with the same x.
- y += s * sum(c x) + z * sum(x) per group and row (mid: + ls * sum(c_l x) - 7.5 ls sum(x)).
`in` is split over KS warps of a program (a chunk each); their sums are added at the end.

Inline PTX does not run in TRITON_INTERPRET: without a GPU, gearterm.kernels.triton_gears' CUDA-core
kernel reads the same layout and the CUDA tests check this one against the reference.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from gearterm.kernels import dependent_launch
from gearterm.kernels.gear import Gear
from gearterm.kernels.word_planes import TILE_ROWS, WordPlanes

GROUP = 128  # channels a group must have: four lanes x four words x eight codes
STEP = 4  # groups a loop step reads; their scales come as one 8-byte vector a row


def _formats(bf16: bool) -> dict:
    """Magic numbers of the code pairs: mantissa bits that a nibble drops into."""
    if bf16:  # 7 mantissa bits: every nibble goes to bits 0-3 of its half (128 + c)
        return {"kind": "bf16", "magic": "0x43004300", "minus": "0xC300C300", "b_shift": (4, 12),
                "b_mask": "0x000F000F", "b_scale": "0f3F800000", "per_offset": "0fBC000000"}  # fmt: skip
    # float16: nibbles 1, 5 and 3, 7 stay at bits 4-7 (1024 + 16 c): one shift a word
    return {"kind": "f16", "magic": "0x64006400", "minus": "0xE400E400", "b_shift": (0, 8),
            "b_mask": "0x00F000F0", "b_scale": "0f3D800000", "per_offset": "0fBA800000"}  # fmt: skip


def _mma(kind: str, acc: str, a: tuple, b: tuple, zero: bool = False) -> str:
    d = f"{{{acc}0,{acc}1,{acc}2,{acc}3}}"
    c = "{0f00000000,0f00000000,0f00000000,0f00000000}" if zero else d
    return f"mma.sync.aligned.m16n8k16.row.col.f32.{kind}.{kind}.f32 {d}, {{{','.join(a)}}}, {{{b[0]},{b[1]}}}, {c};"


def group_sums_asm(bf16: bool) -> str:
    """Per group, in every lane: the offsets' sum (-1024 sum_A x - 64 sum_B x; bf16: -128
    sum x) and sum(x). Operands: out offsets 0-3, sum 4-7; in x's pairs of word m of the
    lane, elements k, at 8 + 4m + k."""
    f = _formats(bf16)
    x = lambda word, k: f"${8 + 4 * word + k}"  # noqa: E731
    lines = ["{", ".reg .b32 n;", ".reg .f32 a<4>, b<4>, t, u;", f"mov.b32 n, {f['minus']};"]
    for word in range(4):
        lines.append(_mma(f["kind"], "a", ("n",) * 4, (x(word, 0), x(word, 1)), zero=word == 0))
        lines.append(_mma(f["kind"], "b", ("n",) * 4, (x(word, 2), x(word, 3)), zero=word == 0))
    lines += [f"fma.rn.f32 u, b0, {f['b_scale']}, a0;", "add.f32 t, a0, b0;", f"mul.f32 t, t, {f['per_offset']};"]
    lines += [f"mov.f32 ${i}, u;" for i in range(4)] + [f"mov.f32 ${4 + i}, t;" for i in range(4)] + ["}"]
    return "\n".join(lines)


def rows_asm(mid: bool, bf16: bool, j: int) -> tuple[str, str]:
    """Rows r and r + 8 of a lane, group j of the step: the lane's four words of each row
    into the rows' sums (elements 0 and 4 of the output; the others stay zero).
    Returns the PTX and its constraints."""
    f = _formats(bf16)
    operands = iter(range(8, 1000, 8))
    acc, codes = next(operands), [next(operands) for _ in range(2 if mid else 1)]
    xs = [next(operands) for _ in range(4)]
    offsets, xsum = next(operands), next(operands)
    s = next(operands)  # fp16 scales pack two to a register: four registers for eight
    z, ls = s + 4, s + 8
    half = "lo" if j % 2 == 0 else "hi"
    lines = ["{", ".reg .b32 h<3>, c<8>;", ".reg .f32 ca<4>, cb<4>, t<2>, fs<2>, fz<2>, fl<2>;", ".reg .b16 lo, hi;"]
    for r in range(2):
        for name, reg in [("fs", s), ("fz", z)] + ([("fl", ls)] if mid else []):
            lines += [f"mov.b32 {{lo, hi}}, ${reg + 2 * r + j // 2};", f"cvt.f32.f16 {name}{r}, {half};"]
        if mid:
            lines.append(f"fma.rn.f32 fz{r}, fl{r}, 0fC0F00000, fz{r};")  # z - 7.5 ls
    shift_b0, shift_b1 = f["b_shift"]
    for plane, base in enumerate(codes):
        for word in range(4):
            for r in range(2):
                q = f"${base + 4 * r + word}"
                lines += [f"shr.u32 h0, {q}, 8;", f"lop3.b32 c{r}, {q}, 0x000F000F, {f['magic']}, 0xEA;"]
                lines.append(f"lop3.b32 c{2 + r}, h0, 0x000F000F, {f['magic']}, 0xEA;")
                if shift_b0:
                    lines.append(f"shr.u32 h1, {q}, {shift_b0};")
                if shift_b1 != 8:
                    lines.append(f"shr.u32 h2, {q}, {shift_b1};")
                lines.append(f"lop3.b32 c{4 + r}, {'h1' if shift_b0 else q}, {f['b_mask']}, {f['magic']}, 0xEA;")
                lines.append(f"lop3.b32 c{6 + r}, {'h0' if shift_b1 == 8 else 'h2'}, {f['b_mask']}, {f['magic']}, 0xEA;")
            x = xs[word]
            lines.append(_mma(f["kind"], "ca", ("c0", "c1", "c2", "c3"), (f"${x}", f"${x + 1}"), zero=word == 0))
            lines.append(_mma(f["kind"], "cb", ("c4", "c5", "c6", "c7"), (f"${x + 2}", f"${x + 3}"), zero=word == 0))
        for r in range(2):
            out, scale = f"${4 * r}", ("fs" if plane == 0 else "fl") + str(r)
            lines += [f"fma.rn.f32 t{r}, cb{2 * r}, {f['b_scale']}, ca{2 * r};", f"add.f32 t{r}, t{r}, ${offsets};"]
            lines.append(f"fma.rn.f32 {out}, {scale}, t{r}, {f'${acc + 4 * r}' if plane == 0 else out};")
    lines += [f"fma.rn.f32 ${4 * r}, fz{r}, ${xsum}, ${4 * r};" for r in range(2)]
    lines += [f"mov.f32 ${e}, 0f00000000;" for e in (1, 2, 3, 5, 6, 7)] + ["}"]
    constraints = ["=f"] * 8 + ["f"] * 8 + ["r"] * (8 * len(codes) + 32) + ["f"] * 16 + ["r"] * (12 if mid else 8)
    return "\n".join(lines), ",".join(constraints)


def loads_only_asm(mid: bool, j: int) -> tuple[str, str]:
    """The probe LOADS_ONLY: rows_asm's operands but the group sums (the accumulator's bits, the
    codes, x's pairs, the scales of group j) folded by three-input XORs into the rows' outputs
    (elements 0 and 4), so that every word the products read is loaded and none is multiplied.
    Offline (sm_90, Triton 3.6, KS 4, x not ahead): the same loads in the loop; 158 instructions
    a loop step instead of 390 (low), 231 instead of 672 (mid); 69 registers instead of 123 (low),
    128 instead of 165 (mid), so more programs fit an SM where the grid has them. Returns the PTX
    and its constraints."""
    operands = iter(range(8, 1000, 8))
    acc, codes = next(operands), [next(operands) for _ in range(2 if mid else 1)]
    xs = [next(operands) for _ in range(4)]
    s = next(operands)
    planes = [s, s + 4] + ([s + 8] if mid else [])  # scales and zeros (and the low plane's scales)
    words = [
        [f"${base + 4 * r + w}" for base in codes for w in range(4)] + [f"${p + 2 * r + j // 2}" for p in planes]
        for r in range(2)
    ]
    words[0] += [f"${x + k}" for x in xs for k in range(4)]  # x is the same for both rows
    lines = ["{", ".reg .b32 t<2>;"]
    for r in range(2):
        lines.append(f"mov.b32 t{r}, ${acc + 4 * r};")
        row = words[r]
        lines += [f"lop3.b32 t{r}, t{r}, {a}, {b}, 0x96;" for a, b in zip(row[::2], row[1::2])]
        lines += [f"xor.b32 t{r}, t{r}, {row[-1]};"] if len(row) % 2 else []
    lines += ["mov.b32 $0, t0;", "mov.b32 $4, t1;"] + [f"mov.b32 ${e}, 0;" for e in (1, 2, 3, 5, 6, 7)] + ["}"]
    constraints = ["=r"] * 8 + ["r"] * (8 + 8 * len(codes) + 32 + 4 * len(planes))
    return "\n".join(lines), ",".join(constraints)


_SUMS_F16 = tl.constexpr(group_sums_asm(False))
_SUMS_BF16 = tl.constexpr(group_sums_asm(True))
_SUMS_CONSTRAINTS = tl.constexpr(",".join(["=f"] * 8 + ["r"] * 16))
# Indexed by the step's group j.
_LOW_F16 = tl.constexpr(tuple(rows_asm(False, False, j)[0] for j in range(STEP)))
_LOW_BF16 = tl.constexpr(tuple(rows_asm(False, True, j)[0] for j in range(STEP)))
_MID_F16 = tl.constexpr(tuple(rows_asm(True, False, j)[0] for j in range(STEP)))
_MID_BF16 = tl.constexpr(tuple(rows_asm(True, True, j)[0] for j in range(STEP)))
_LOW_CONSTRAINTS = tl.constexpr(rows_asm(False, False, 0)[1])
_MID_CONSTRAINTS = tl.constexpr(rows_asm(True, False, 0)[1])
_LOW_PROBE = tl.constexpr(tuple(loads_only_asm(False, j)[0] for j in range(STEP)))
_MID_PROBE = tl.constexpr(tuple(loads_only_asm(True, j)[0] for j in range(STEP)))
_LOW_PROBE_CONSTRAINTS = tl.constexpr(loads_only_asm(False, 0)[1])
_MID_PROBE_CONSTRAINTS = tl.constexpr(loads_only_asm(True, 0)[1])
_TILE = tl.constexpr(TILE_ROWS * 16)  # words of one group of one row tile
_TILE_ROWS = tl.constexpr(TILE_ROWS)
_STEP = tl.constexpr(STEP)
_PREFETCH = tl.constexpr("prefetch.global.L2 [$4];\nmov.u32 $0, 0;\nmov.u32 $1, 0;\nmov.u32 $2, 0;\nmov.u32 $3, 0;")


@triton.jit
def _step_loads(
    hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, tile_words, row_scales, wi, g0, GC, MID: tl.constexpr, PIN: tl.constexpr
):  # fmt: skip
    """Codes of STEP groups ([rows, 16] each) and their scales, four groups to a vector.
    Past the chunk's end (the prefetch of the last step) nothing is read. PIN 2: the scales and
    the first half of the codes (low) or the high plane (mid) held above a warp barrier (_pin_loads)."""
    ok = g0 < GC
    words = tile_words + g0 * _TILE + wi
    if PIN == 2:
        scales, s, z = _scale_loads(hs_ptr, hz_ptr, row_scales, wi, g0, ok)
    q0 = tl.load(hw_ptr + words, mask=ok, other=0)
    q1 = tl.load(hw_ptr + words + _TILE, mask=ok, other=0)
    if PIN == 2 and not MID:
        _pin_loads(wi)
    q2 = tl.load(hw_ptr + words + 2 * _TILE, mask=ok, other=0)
    q3 = tl.load(hw_ptr + words + 3 * _TILE, mask=ok, other=0)
    if PIN != 2:  # after the codes: placed first, the default x-ahead kernel took 194 registers, not 188
        scales, s, z = _scale_loads(hs_ptr, hz_ptr, row_scales, wi, g0, ok)
    if PIN == 2 and MID:
        _pin_loads(wi)
    if MID:
        l0 = tl.load(lw_ptr + words, mask=ok, other=0)
        l1 = tl.load(lw_ptr + words + _TILE, mask=ok, other=0)
        l2 = tl.load(lw_ptr + words + 2 * _TILE, mask=ok, other=0)
        l3 = tl.load(lw_ptr + words + 3 * _TILE, mask=ok, other=0)
        ls = tl.load(ls_ptr + scales, mask=ok, other=0.0)
    else:
        l0, l1, l2, l3, ls = q0, q1, q2, q3, s
    return q0, q1, q2, q3, s, z, l0, l1, l2, l3, ls


@triton.jit
def _scale_loads(hs_ptr, hz_ptr, row_scales, wi, g0, ok):
    """Where a step's scales of the lane's rows lie (four groups to a vector), and its scales and zeros."""
    scales = tl.max_contiguous(tl.multiple_of(row_scales + g0 + wi % 4, [1, 4]), [1, 4])
    return scales, tl.load(hs_ptr + scales, mask=ok, other=0.0), tl.load(hz_ptr + scales, mask=ok, other=0.0)


@triton.jit
def _prefetch_step(hw_ptr, lw_ptr, tile_words, wi, g0, GC, MID: tl.constexpr):
    """The codes of the step at group g0 (the chunk's last step's, where g0 is past it) asked
    into L2: prefetch.global.L2, which holds no register. (ptxas issues the register loads of the
    next step at the loop's end, not where they stand: they wait a whole trip to memory.)"""
    words = tile_words + tl.minimum(g0, GC - _STEP) * _TILE + wi
    for j in tl.static_range(_STEP):
        _prefetch(hw_ptr + words + j * _TILE)
        if MID:
            _prefetch(lw_ptr + words + j * _TILE)


@triton.jit
def _pin_loads(wi):
    """A warp barrier (bar.warp.sync), which ptxas does not move loads across: the next step's
    loads above it are issued at the step's top, before the step's first x load, not sunk to its
    end (offline for sm_90, Triton 3.9: at 5-12% of the low gear's loop instead of 76-80%), at the
    cost of the registers that hold them for the whole step (low 156 instead of 123, mid 245
    instead of 165). With x read ahead the step has no load left to anchor its products, ptxas
    hoists them above the barrier, and the loads sink as before."""
    tl.inline_asm_elementwise("bar.warp.sync -1;\nmov.u32 $0, 0;", "=r,r", [wi], tl.int32, False, 1)


@triton.jit
def _prefetch(pointers):
    # Four words of a lane's row a time (pack 4): the 16 bytes its vector load reads.
    tl.inline_asm_elementwise(_PREFETCH, "=r,=r,=r,=r,l,l,l,l", [pointers], tl.int32, False, 4)


@triton.jit
def _x_loads(xw_ptr, x_chunk, g, wi, GC, AHEAD: tl.constexpr):
    """x as int32 pairs for group g: a lane reads the 16 pairs of its four words, word m's four
    pairs in xm. Read AHEAD, past the chunk's end (after the last step) nothing is read."""
    pairs = tl.max_contiguous(tl.multiple_of(x_chunk + g * 64 + (wi // 4) * 16 + wi % 4, [1, 4]), [1, 4])
    if AHEAD:
        ok = g < GC
        x0 = tl.load(xw_ptr + pairs, mask=ok, other=0, eviction_policy="evict_last")
        x1 = tl.load(xw_ptr + pairs + 4, mask=ok, other=0, eviction_policy="evict_last")
        x2 = tl.load(xw_ptr + pairs + 8, mask=ok, other=0, eviction_policy="evict_last")
        x3 = tl.load(xw_ptr + pairs + 12, mask=ok, other=0, eviction_policy="evict_last")
    else:
        x0 = tl.load(xw_ptr + pairs, eviction_policy="evict_last")
        x1 = tl.load(xw_ptr + pairs + 4, eviction_policy="evict_last")
        x2 = tl.load(xw_ptr + pairs + 8, eviction_policy="evict_last")
        x3 = tl.load(xw_ptr + pairs + 12, eviction_policy="evict_last")
    return x0, x1, x2, x3


@triton.jit
def _group(
    acc, x0, x1, x2, x3, q, ql, s, z, ls, j: tl.constexpr, MID: tl.constexpr, BF16: tl.constexpr,
    LOADS_ONLY: tl.constexpr = False,
):  # fmt: skip
    """acc + one group (the step's j-th) of the lane's rows, x's pairs in x0..x3."""
    if LOADS_ONLY:
        return _xor_words(acc, x0, x1, x2, x3, q, ql, s, z, ls, j, MID)
    # (The asm strings are constexprs: Triton takes them only as direct arguments.)
    xs = [x0, x1, x2, x3]
    if BF16:
        offsets, xsum = tl.inline_asm_elementwise(_SUMS_BF16, _SUMS_CONSTRAINTS, xs, (tl.float32, tl.float32), True, 4)
    else:
        offsets, xsum = tl.inline_asm_elementwise(_SUMS_F16, _SUMS_CONSTRAINTS, xs, (tl.float32, tl.float32), True, 4)
    if MID:
        args = [acc, q, ql, x0, x1, x2, x3, offsets, xsum, s, z, ls]
        if BF16:
            return tl.inline_asm_elementwise(_MID_BF16[j], _MID_CONSTRAINTS, args, tl.float32, True, 8)
        return tl.inline_asm_elementwise(_MID_F16[j], _MID_CONSTRAINTS, args, tl.float32, True, 8)
    args = [acc, q, x0, x1, x2, x3, offsets, xsum, s, z]
    if BF16:
        return tl.inline_asm_elementwise(_LOW_BF16[j], _LOW_CONSTRAINTS, args, tl.float32, True, 8)
    return tl.inline_asm_elementwise(_LOW_F16[j], _LOW_CONSTRAINTS, args, tl.float32, True, 8)


@triton.jit
def _xor_words(acc, x0, x1, x2, x3, q, ql, s, z, ls, j: tl.constexpr, MID: tl.constexpr):
    """The probe LOADS_ONLY in place of _group (loads_only_asm). Its result is not the product."""
    bits = acc.to(tl.int32, bitcast=True)
    if MID:
        args = [bits, q, ql, x0, x1, x2, x3, s, z, ls]
        bits = tl.inline_asm_elementwise(_MID_PROBE[j], _MID_PROBE_CONSTRAINTS, args, tl.int32, True, 8)
    else:
        args = [bits, q, x0, x1, x2, x3, s, z]
        bits = tl.inline_asm_elementwise(_LOW_PROBE[j], _LOW_PROBE_CONSTRAINTS, args, tl.int32, True, 8)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _group_at(
    acc, xw_ptr, x_chunk, g, wi, GC, q, ql, s, z, ls, j: tl.constexpr, MID: tl.constexpr, BF16: tl.constexpr,
    LOADS_ONLY: tl.constexpr = False,
):  # fmt: skip
    """_group with x of group g read just before it: 16 registers of x live at a time."""
    x0, x1, x2, x3 = _x_loads(xw_ptr, x_chunk, g, wi, GC, False)
    return _group(acc, x0, x1, x2, x3, q, ql, s, z, ls, j, MID, BF16, LOADS_ONLY)


@triton.jit
def _gemv_mma_kernel(
    xw_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, y_ptr, r_ptr, G,
    MID: tl.constexpr, BF16: tl.constexpr, KS: tl.constexpr, X_AHEAD: tl.constexpr, PREFETCH: tl.constexpr,
    PDL: tl.constexpr,
    SILU_TIMES_UP: tl.constexpr,  # rows 0-7 of each 16 are gate rows, 8-15 their up rows: write SiLU(gate) * up
    RESIDUAL: tl.constexpr,  # write r + x @ W^T (r at r_ptr, rounded as eager adds it)
    PIN: tl.constexpr = 0,  # experiment: the next step's loads held at the step's top (_pin_loads); 2: some (_step_loads)
    LOADS_ONLY: tl.constexpr = False,  # probe: the same loads without the products (_xor_words)
):  # fmt: skip
    acc = _row_sums(xw_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, G, MID, BF16, KS, X_AHEAD, PREFETCH, PDL, PIN, LOADS_ONLY)
    _write_rows(acc, y_ptr, r_ptr, KS, SILU_TIMES_UP, RESIDUAL)


@triton.jit
def _row_sums(
    xw_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, G,
    MID: tl.constexpr, BF16: tl.constexpr, KS: tl.constexpr, X_AHEAD: tl.constexpr, PREFETCH: tl.constexpr,
    PDL: tl.constexpr, PIN: tl.constexpr, LOADS_ONLY: tl.constexpr,
):  # fmt: skip
    """The program's lanes' sums [16 KS, 16] (what _write_rows reads), the kernels' loop."""
    row, chunk, GC = _program_tile(G, KS)
    tile_words = tl.program_id(0) * (G * _TILE) + (row % _TILE_ROWS) * 16 + chunk * (GC * _TILE)
    row_scales = row * G + chunk * GC
    x_chunk = chunk * (GC * 64)
    wi = tl.arange(0, 16)[None, :]
    acc = tl.full([16 * KS, 16], 0.0, tl.float32)
    # The next step's codes are asked for before this step's products (ptxas issues the loads at
    # the loop's end all the same, offline for sm_90: see _prefetch_step). (Reading
    # two steps ahead was slower, 9.0 against 12.1 us for the mid gear at 4096x4096 on an H100;
    # Triton's shared-memory pipelining was slower too: it stages x as well, 4 bytes a copy.)
    q0, q1, q2, q3, s, z, l0, l1, l2, l3, ls = _step_loads(hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, tile_words, row_scales, wi, 0, GC, MID, PIN)  # fmt: skip
    if PDL:  # the first codes are in flight; x comes from the kernel before (kernels.dependent_launch)
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    # X_AHEAD: x of the next step is read with its codes, so that its trip to L2 is not waited
    # for at the top of every step. A lane holds 64 more registers of it (x_ahead says where).
    if X_AHEAD:
        na0, na1, na2, na3 = _x_loads(xw_ptr, x_chunk, 0, wi, GC, True)
        nb0, nb1, nb2, nb3 = _x_loads(xw_ptr, x_chunk, 1, wi, GC, True)
        nc0, nc1, nc2, nc3 = _x_loads(xw_ptr, x_chunk, 2, wi, GC, True)
        nd0, nd1, nd2, nd3 = _x_loads(xw_ptr, x_chunk, 3, wi, GC, True)
    for g0 in range(0, GC, _STEP):
        c0, c1, c2, c3, cs, cz, d0, d1, d2, d3, dls = q0, q1, q2, q3, s, z, l0, l1, l2, l3, ls
        q0, q1, q2, q3, s, z, l0, l1, l2, l3, ls = _step_loads(hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, tile_words, row_scales, wi, g0 + _STEP, GC, MID, PIN)  # fmt: skip
        if PIN == 1:
            _pin_loads(wi)
        if X_AHEAD:
            xa0, xa1, xa2, xa3, xb0, xb1, xb2, xb3 = na0, na1, na2, na3, nb0, nb1, nb2, nb3
            xc0, xc1, xc2, xc3, xd0, xd1, xd2, xd3 = nc0, nc1, nc2, nc3, nd0, nd1, nd2, nd3
            na0, na1, na2, na3 = _x_loads(xw_ptr, x_chunk, g0 + _STEP, wi, GC, True)
            nb0, nb1, nb2, nb3 = _x_loads(xw_ptr, x_chunk, g0 + _STEP + 1, wi, GC, True)
            nc0, nc1, nc2, nc3 = _x_loads(xw_ptr, x_chunk, g0 + _STEP + 2, wi, GC, True)
            nd0, nd1, nd2, nd3 = _x_loads(xw_ptr, x_chunk, g0 + _STEP + 3, wi, GC, True)
            acc = _group(acc, xa0, xa1, xa2, xa3, c0, d0, cs, cz, dls, 0, MID, BF16, LOADS_ONLY)
            acc = _group(acc, xb0, xb1, xb2, xb3, c1, d1, cs, cz, dls, 1, MID, BF16, LOADS_ONLY)
            acc = _group(acc, xc0, xc1, xc2, xc3, c2, d2, cs, cz, dls, 2, MID, BF16, LOADS_ONLY)
            acc = _group(acc, xd0, xd1, xd2, xd3, c3, d3, cs, cz, dls, 3, MID, BF16, LOADS_ONLY)
        else:
            acc = _group_at(acc, xw_ptr, x_chunk, g0, wi, GC, c0, d0, cs, cz, dls, 0, MID, BF16, LOADS_ONLY)
            acc = _group_at(acc, xw_ptr, x_chunk, g0 + 1, wi, GC, c1, d1, cs, cz, dls, 1, MID, BF16, LOADS_ONLY)
            acc = _group_at(acc, xw_ptr, x_chunk, g0 + 2, wi, GC, c2, d2, cs, cz, dls, 2, MID, BF16, LOADS_ONLY)
            acc = _group_at(acc, xw_ptr, x_chunk, g0 + 3, wi, GC, c3, d3, cs, cz, dls, 3, MID, BF16, LOADS_ONLY)
        if PREFETCH:  # after the step's products, where it costs no registers (kernels-h100.md)
            _prefetch_step(hw_ptr, lw_ptr, tile_words, wi, g0 + PREFETCH * _STEP, GC, MID)
    return acc


@triton.jit
def _program_tile(G, KS: tl.constexpr):
    """A program: 16 rows, `in` in KS chunks, a warp a chunk. Row v of the [16 KS, 16] tile is
    row 8 (v // 8 KS) + v % 8 of the program, chunk (v // 8) % KS: Triton puts warp i on tile rows
    8i..8i+7 of every 8 KS, so a warp holds one chunk, a lane rows r, r + 8. Returns each tile
    row's row and chunk, and the groups a chunk has."""
    v = tl.arange(0, 16 * KS)[:, None]
    row = tl.program_id(0) * _TILE_ROWS + (v // (8 * KS)) * 8 + v % 8
    chunk = (v // 8) % KS
    return row, chunk, G // KS


@triton.jit
def _program_rows(acc, KS: tl.constexpr):
    """The program's 16 rows, float32 [2, 8] (rows 0-7, rows 8-15), from the lanes' sums [16 KS, 16]."""
    # Word 0 of lane t = 0 holds each row's chunk sum; then the chunks of a row are added.
    part = tl.sum(tl.where(tl.arange(0, 16)[None, :] == 0, acc, 0.0), 1)
    return tl.sum(tl.reshape(part, [2, KS, 8]), 1)


@triton.jit
def _write_rows(acc, y_ptr, r_ptr, KS: tl.constexpr, SILU_TIMES_UP: tl.constexpr, RESIDUAL: tl.constexpr):
    """The program's 16 rows from the lanes' sums [16 KS, 16], written as the epilogue asks."""
    y = _program_rows(acc, KS)
    dtype = y_ptr.dtype.element_ty
    if SILU_TIMES_UP:
        gate, up = tl.split(tl.permute(y, (1, 0)))
        tl.store(y_ptr + tl.program_id(0) * 8 + tl.arange(0, 8), _silu_times_up(gate, up, dtype))
    else:
        out = tl.program_id(0) * _TILE_ROWS + tl.arange(0, 2)[:, None] * 8 + tl.arange(0, 8)[None, :]
        y = y.to(dtype)
        if RESIDUAL:  # the products rounded, then the sum: as `r + F.linear(x, W)` rounds twice
            y = (tl.load(r_ptr + out).to(tl.float32) + y.to(tl.float32)).to(dtype)
        tl.store(y_ptr + out, y)


@triton.jit
def _silu_times_up(gate, up, dtype: tl.constexpr):
    """SiLU(gate) * up rounded as eager PyTorch rounds it: the GEMV's outputs to 16 bits, SiLU
    computed in float32 (x / (1 + exp(-x))) and rounded, the product computed in float32 and rounded."""
    g = gate.to(dtype).to(tl.float32)
    silu = (g / (1.0 + tl.exp(-g))).to(dtype).to(tl.float32)
    return (silu * up.to(dtype).to(tl.float32)).to(dtype)


def splits(n: int, groups: int, gear: Gear) -> int | None:
    """Warps that share a row block (chunks of `in`), from the sweep in kernels-h100.md: four
    were best or within 0.4 us on every shape and gear but the low gear's 14336 rows (14.7
    us with two, 15.4 with four). None where the groups do not split into whole steps."""
    ks = 2 if gear == Gear.LOW and 12288 <= n < 20480 else 4
    while ks and not whole_steps(groups, ks):
        ks //= 2
    return ks or None


def whole_steps(groups: int, ks: int) -> bool:
    """Whether `in` splits into ks chunks of whole loop steps."""
    return groups % (STEP * ks) == 0


def fits(x: torch.Tensor, planes: WordPlanes) -> bool:
    """Whether this kernel can compute x @ W^T: one row of 16-bit x on a GPU, groups of 128."""
    n, k = planes.shape
    return (
        x.is_cuda
        and x.dtype in (torch.float16, torch.bfloat16)
        and planes.group_size == GROUP
        and k == planes.groups * GROUP
        and n % TILE_ROWS == 0
        and whole_steps(planes.groups, 1)
    )


def x_ahead(n: int, device: torch.device) -> bool:
    """Whether x is read a step ahead: where the row blocks are at most two a multiprocessor, so
    that every block has its place at once and the 64 registers cost no occupancy. On an H100
    (bench kernels --sweep, 2026-12-06) it took the low gear from 6.5 to 5.3 us at 4096x4096 and
    from 16.8 to 13.0 at 4096x14336 (256 blocks on 132 SMs), but from 13.7 to 15.3 at 14336x4096
    (896 blocks)."""
    return n // TILE_ROWS <= 2 * torch.cuda.get_device_properties(device).multi_processor_count


def prefetch_steps(gear: Gear, ahead: bool) -> int:
    """Steps ahead the codes are asked into L2 (0: not asked). On an H100 (bench kernels --sweep,
    2026-12-07) it took the mid gear with x read ahead from 9.1 to 8.2 us at 4096x4096 and from
    25.2 to 23.4 at 4096x14336; without x ahead it lost at 6144x4096 (12.0 -> 13.7), and the
    low gear it left as it was or slowed."""
    return 2 if gear == Gear.MID and ahead else 0


# Experiment (default off): GEARTERM_GEMV_PIN=wide pins the next step's loads (_pin_loads) where x
# is not read ahead (the wide projections: q/k/v, gate/up), =all everywhere.
PIN_SETTING = os.environ.get("GEARTERM_GEMV_PIN", "")


def pin_loads(ahead: bool) -> int:
    """PIN as GEARTERM_GEMV_PIN asks: 1 (the next step's loads pinned at the step's top) or 0."""
    return int(PIN_SETTING == "all" or (PIN_SETTING == "wide" and not ahead))


def gemv_mma(
    x: torch.Tensor,
    planes: WordPlanes,
    gear: Gear,
    ks: int | None = None,
    ahead: bool | None = None,
    prefetch: int | None = None,
    pin: int | None = None,
    silu_times_up: bool = False,
    residual: torch.Tensor | None = None,
    loads_only: bool = False,
) -> torch.Tensor:
    """x [1, in] (contiguous) @ W_gear^T -> [1, out], for shapes where `fits`; `ahead`: whether x
    is read a step ahead with the codes (default: as x_ahead says); `prefetch`: how many steps
    ahead the codes are asked into L2 (default: as prefetch_steps says); `pin`: the experiment PIN
    (default: as pin_loads says). `silu_times_up`: W's rows alternate in tiles of 8, gate rows then
    their up rows (backends.decoder.GATE_TILE), and the kernel writes SiLU(gate) * up, [1, out / 2],
    instead of the products. `residual` [1, out]
    (contiguous, x's type): the kernel writes residual + the products. `loads_only`: the probe
    (bench kernels --sweep): the same loads without the products, whose result is not x @ W^T."""
    n, _ = planes.shape
    ks = ks or splits(n, planes.groups, gear)
    ahead = x_ahead(n, x.device) if ahead is None else ahead
    prefetch = prefetch_steps(gear, ahead) if prefetch is None else prefetch
    pin = pin_loads(ahead) if pin is None else pin
    if not whole_steps(planes.groups, ks):
        raise ValueError(f"{planes.groups} groups do not split into {ks} chunks of whole {STEP}-group steps")
    y = torch.empty(1, n // 2 if silu_times_up else n, dtype=x.dtype, device=x.device)
    pdl = dependent_launch.enabled(x.device)
    _gemv_mma_kernel[(n // TILE_ROWS,)](
        x.view(torch.int32), planes.h_words, planes.h_scale, planes.h_zero, planes.l_words, planes.l_scale, y,
        y if residual is None else residual, planes.groups, MID=gear == Gear.MID, BF16=x.dtype == torch.bfloat16, KS=ks, X_AHEAD=ahead, PREFETCH=prefetch, num_warps=ks,
        PDL=pdl, launch_pdl=pdl, PIN=pin, SILU_TIMES_UP=silu_times_up, RESIDUAL=residual is not None, LOADS_ONLY=loads_only,
    )  # fmt: skip
    return y
