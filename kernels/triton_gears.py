"""Fused low/mid gear matmuls in Triton: the packed int4 planes are read once and
dequantized in registers; no 16-bit weight is ever materialized.

y = x @ W_gear^T with W_gear = dequantize(planes, gear) as gearterm.kernels.nested defines it
(its reference_matmul is the ground truth these kernels are tested against). The gear is
a compile-time constant: the low gear's kernel never touches plane L.

- batch 1 (decode) on a GPU, 16-bit x, groups of 128: gearterm.kernels.triton_gemv_mma (tensor cores).
- batch 1 otherwise (float32, other groups, the interpreter): a GEMV on CUDA cores. Per
  group it accumulates sum(x * code) and uses
  sum(x * (code * s + z)) = s * sum(x * code) + z * sum(x), so a weight costs three
  instructions: a mask-or that drops its nibble into a float's mantissa, an FMA that makes
  the exact code of it, and the FMA into the dot.
- batch 2 to DEQUANTIZE_ROWS - 1: a GEMM whose dequantized tiles, put back in channel order,
  go through tl.dot (tensor cores) against x as it lies in memory.
- a prompt's chunk (DEQUANTIZE_ROWS and up) of 16-bit x on a GPU: the gear's weight written out
  once in 16 bits by a kernel of many small programs, then cuBLAS. The GEMM above is limited by
  decoding every code once per block of rows on few programs; this reads the planes once and
  costs a 16-bit weight's write and read, which cuBLAS's GEMM then hides behind its arithmetic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gearterm.kernels import triton_gemv_mma, triton_gemv_tma
from gearterm.kernels.gear import Gear
from gearterm.kernels.nested import L_CENTER
from gearterm.kernels.word_planes import NIBBLE_OF, NIBBLES, TILE_ROWS, WordPlanes

# OR-ing an integer below 2**20 into the mantissa of float32 2**23 gives exactly 2**23 + it:
# an int-to-float conversion without the conversion unit, which is 1/8 of the FMA rate.
_MAGIC = 0x4B000000
_MAGIC_VALUE = tl.constexpr(8388608.0)
_L_CENTER = tl.constexpr(L_CENTER)
_NIBBLES = tl.constexpr(NIBBLES)
_TILE_ROWS = tl.constexpr(TILE_ROWS)
# The channel (of its word's eight) that nibble j holds: NIBBLE_OF is a bit reversal, its own inverse.
_NIBBLE_OF = tl.constexpr(NIBBLE_OF)
# Rows of x from which a GPU dequantizes the weight for cuBLAS instead of running the GEMM below
# (measured on an H200 against the GEMM at 2 to 2,048 rows: the GEMM is faster to 64, slower from 256).
DEQUANTIZE_ROWS = 128


# tl.zeros and tl.sum are jit functions of Triton's standard library, decorated when triton
# is first imported: in a process that imported it before setting TRITON_INTERPRET (a test
# session), they stay compiled and cannot run in the interpreter. tl.full, tl.reduce and
# this module's own helpers can, and compile to the same code.
@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _code(q, q_hi, magic, J: tl.constexpr):
    """Nibble J of every word as an exact float32 code 0..15.

    Nibbles 0-4 sit at bits 4J.. of q and go into the mantissa where they are (worth
    16**J each); nibbles 5-7 do the same from q_hi = q >> 12. One FMA scales by 16**-J
    and removes 2**23, both exact. `magic` (= _MAGIC) comes in as an argument: a register
    operand leaves the mask as the instruction's one immediate, so the mask-or is a single
    LOP3 instead of a LOP3 plus a move that re-creates a constant."""
    if J < 5:
        bits = (q & (0xF << (4 * J))) | magic
        step = 1.0 / (1 << (4 * J))
    else:
        bits = (q_hi & (0xF << (4 * (J - 3)))) | magic
        step = 1.0 / (1 << (4 * (J - 3)))
    return bits.to(tl.float32, bitcast=True) * step - _MAGIC_VALUE * step


@triton.jit
def _word(rows, g, w, G, WPG: tl.constexpr):
    """Offset of word w of group g of a row: words are stored [rows / 16, groups, 16, WPG]."""
    return (rows // _TILE_ROWS) * (G * _TILE_ROWS * WPG) + g * (_TILE_ROWS * WPG) + (rows % _TILE_ROWS) * WPG + w


@triton.jit
def _gemv_step_loads(hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, rows, g, wi, N, G,
                     WPG: tl.constexpr, MID: tl.constexpr, EVEN: tl.constexpr):  # fmt: skip
    """One step's codes and scales, [rows, groups, words] (scales with words = 1)."""
    word = _word(rows, g, wi, G, WPG)
    scale = rows * G + g
    if EVEN:
        q = tl.load(hw_ptr + word)
        s = tl.load(hs_ptr + scale).to(tl.float32)
        z = tl.load(hz_ptr + scale).to(tl.float32)
        if MID:
            ql = tl.load(lw_ptr + word)
            ls = tl.load(ls_ptr + scale).to(tl.float32)
    else:
        smask = (rows < N) & (g < G)
        wmask = smask & (wi < WPG)
        q = tl.load(hw_ptr + word, mask=wmask, other=0)
        s = tl.load(hs_ptr + scale, mask=smask, other=0.0).to(tl.float32)
        z = tl.load(hz_ptr + scale, mask=smask, other=0.0).to(tl.float32)
        if MID:
            ql = tl.load(lw_ptr + word, mask=wmask, other=0)
            ls = tl.load(ls_ptr + scale, mask=smask, other=0.0).to(tl.float32)
    if not MID:
        ql = q
        ls = s
    return q, s, z, ql, ls


@triton.jit
def _gemv_step(acc, x_ptr, q, s, z, ql, ls, g, wi, K, magic,
               GS: tl.constexpr, WPG: tl.constexpr, MID: tl.constexpr, EVEN: tl.constexpr):  # fmt: skip
    """acc + this step's groups of x . W_gear, [rows, groups, words] partial sums."""
    q_hi = q >> 12
    ql_hi = ql >> 12
    for j in tl.static_range(_NIBBLES):
        channel = g * GS + _NIBBLES * wi + _NIBBLE_OF[j]
        if EVEN:
            xj = tl.load(x_ptr + channel).to(tl.float32)
        else:
            # Past the group's last word, or its last channel, or `in`: zero, or the
            # group's zero point would be added for channels that are not there.
            inside = (wi < WPG) & (_NIBBLES * wi + _NIBBLE_OF[j] < GS) & (channel < K)
            xj = tl.load(x_ptr + channel, mask=inside, other=0.0).to(tl.float32)
        if j == 0:
            dot_h = _code(q, q_hi, magic, j) * xj
            xsum = xj
            if MID:
                dot_l = _code(ql, ql_hi, magic, j) * xj
        else:
            dot_h += _code(q, q_hi, magic, j) * xj
            xsum += xj
            if MID:
                dot_l += _code(ql, ql_hi, magic, j) * xj
    # Separate statements: two FMAs into acc, where one expression costs a third add.
    acc += s * dot_h
    acc += z * xsum
    if MID:
        acc += ls * dot_l
        acc -= (_L_CENTER * ls) * xsum
    return acc


@triton.jit
def _gemv_kernel(
    x_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, y_ptr,
    N, K, G, magic,
    GS: tl.constexpr,  # channels per group
    WPG: tl.constexpr,  # words per group
    WPG_P2: tl.constexpr,  # WPG rounded up to a power of two (the tile's width)
    MID: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
    STAGES: tl.constexpr,  # steps of codes in flight
    EVEN: tl.constexpr,  # no row, group, word or channel past the end: no masks
):  # fmt: skip
    # Every tensor is 3-D [rows, groups, words] (x and the scales with a dimension of 1),
    # so all share the weight tile's layout and nothing is shuffled through shared memory.
    rows = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N))[:, None, None]
    gi = tl.arange(0, BLOCK_G)[None, :, None]
    wi = tl.arange(0, WPG_P2)[None, None, :]
    acc = tl.full([BLOCK_N, BLOCK_G, WPG_P2], 0.0, tl.float32)
    # tl.range with stages: Triton copies the next steps' codes into shared memory
    # asynchronously while this step is decoded, so arithmetic and memory overlap.
    for g0 in tl.range(0, G, BLOCK_G, num_stages=STAGES):
        g = g0 + gi
        q, s, z, ql, ls = _gemv_step_loads(hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, rows, g, wi, N, G, WPG, MID, EVEN)
        acc = _gemv_step(acc, x_ptr, q, s, z, ql, ls, g, wi, K, magic, GS, WPG, MID, EVEN)
    y = tl.reduce(tl.reduce(acc, 2, _add), 1, _add)
    out = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    tl.store(y_ptr + out, y, mask=out < N)


@triton.jit
def _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, J: tl.constexpr, MID: tl.constexpr):
    """Nibble J's weights of every word, dequantized: s * c_h + z (mid: + ls * c_l)."""
    w = _code(q, q_hi, magic, J) * s + z
    if MID:
        w += _code(ql, ql_hi, magic, J) * ls
    return w


@triton.jit
def _in_channel_order(w0, w1, w2, w3, w4, w5, w6, w7):
    """[rows, words] tiles of nibbles 0..7 -> one [rows, 8 words] tile in channel order.
    tl.join adds its pair as the new last dimension, so the three levels of joins put
    nibble 4a + 2b + c at channel 4c + 2b + a of its word: the bit reversal that
    gearterm.kernels.word_planes.NIBBLE_OF is."""
    joined = tl.join(tl.join(tl.join(w0, w1), tl.join(w2, w3)), tl.join(tl.join(w4, w5), tl.join(w6, w7)))
    return tl.reshape(joined, [w0.shape[0], w0.shape[1] * _NIBBLES])


@triton.jit
def _weight_tile(q, s, z, ql, ls, magic, like_ptr, MID: tl.constexpr):
    """The gear's weights of a [rows, words] tile of codes as one [rows, 8 words] tile in channel
    order, in like_ptr's element type: 16-bit before the joins, half the registers to shuffle.
    ql and ls (plane L's codes and scales) are read in the mid gear only."""
    q_hi, ql_hi = q >> 12, ql >> 12
    if MID:
        # w = s*c_h + z + ls*(c_l - 7.5) = s*c_h + ls*c_l + (z - 7.5*ls): two FMAs a weight.
        z -= _L_CENTER * ls
    dtype = like_ptr.dtype.element_ty
    return _in_channel_order(
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 0, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 1, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 2, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 3, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 4, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 5, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 6, MID).to(dtype),
        _weights(q, q_hi, ql, ql_hi, s, z, ls, magic, 7, MID).to(dtype),
    )


@triton.jit
def _gemm_kernel(
    x_ptr, hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, y_ptr,
    M, N, K, G, stride_xm, stride_ym, magic,
    GS: tl.constexpr,
    WPG: tl.constexpr,
    WPG_P2: tl.constexpr,
    MID: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
    STAGES: tl.constexpr,
    EVEN: tl.constexpr,
    IEEE: tl.constexpr,  # float32 inputs: full-precision dot instead of tf32
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ms = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    # One tile of BLOCK_G groups, flattened: the words of consecutive groups are consecutive.
    kk = tl.arange(0, BLOCK_G * WPG_P2)
    gk = kk // WPG_P2
    wk = kk % WPG_P2
    # The same tile's channels, eight a word, in the order _in_channel_order leaves them.
    kc = tl.arange(0, BLOCK_G * WPG_P2 * _NIBBLES)
    gc = kc // (WPG_P2 * _NIBBLES)
    cc = kc % (WPG_P2 * _NIBBLES)  # channel within the group
    row_ok = rows < N
    m_ok = ms < M
    acc = tl.full([BLOCK_N, BLOCK_M], 0.0, tl.float32)
    for g0 in tl.range(0, G, BLOCK_G, num_stages=STAGES):
        g = g0 + gk
        word = _word(rows[:, None], g[None, :], wk[None, :], G, WPG)
        scale = rows[:, None] * G + g[None, :]
        if EVEN:
            q = tl.load(hw_ptr + word)
            s = tl.load(hs_ptr + scale).to(tl.float32)
            z = tl.load(hz_ptr + scale).to(tl.float32)
            # Whole groups of 8 * WPG channels: the tile's channels are contiguous in x.
            xt = tl.load(x_ptr + ms[:, None] * stride_xm + (g0 * GS + kc)[None, :], mask=m_ok[:, None], other=0.0)
        else:
            smask = row_ok[:, None] & (g < G)[None, :]
            wmask = smask & (wk < WPG)[None, :]
            q = tl.load(hw_ptr + word, mask=wmask, other=0)
            s = tl.load(hs_ptr + scale, mask=smask, other=0.0).to(tl.float32)
            z = tl.load(hz_ptr + scale, mask=smask, other=0.0).to(tl.float32)
            # Past the group's last channel, or `in`: zero, or the group's zero point would
            # be added for channels that are not there.
            channel = (g0 + gc) * GS + cc
            inside = (cc < GS) & (channel < K)
            xt = tl.load(x_ptr + ms[:, None] * stride_xm + channel[None, :], mask=m_ok[:, None] & inside[None, :], other=0.0)
        ql, ls = q, s
        if MID:
            if EVEN:
                ql = tl.load(lw_ptr + word)
                ls = tl.load(ls_ptr + scale).to(tl.float32)
            else:
                ql = tl.load(lw_ptr + word, mask=wmask, other=0)
                ls = tl.load(ls_ptr + scale, mask=smask, other=0.0).to(tl.float32)
        w = _weight_tile(q, s, z, ql, ls, magic, x_ptr, MID)  # x's type: float32 where IEEE
        if IEEE:
            acc += tl.dot(w, tl.trans(xt), input_precision="ieee")
        else:
            acc += tl.dot(w, tl.trans(xt))
    y = y_ptr + ms[None, :] * stride_ym + rows[:, None]
    tl.store(y, acc, mask=row_ok[:, None] & m_ok[None, :])


@triton.jit
def _dequantize_kernel(
    hw_ptr, hs_ptr, hz_ptr, lw_ptr, ls_ptr, w_ptr, N, K, G, magic,
    GS: tl.constexpr,
    WPG: tl.constexpr,
    WPG_P2: tl.constexpr,
    MID: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
):  # fmt: skip
    """W_gear [N, K] in w's dtype: one program a tile of BLOCK_N rows by BLOCK_G groups, decoded
    by _weight_tile as _gemm_kernel's tiles are."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    g0 = tl.program_id(1) * BLOCK_G
    kk = tl.arange(0, BLOCK_G * WPG_P2)
    g = g0 + kk // WPG_P2
    wk = kk % WPG_P2
    kc = tl.arange(0, BLOCK_G * WPG_P2 * _NIBBLES)
    cc = kc % (WPG_P2 * _NIBBLES)  # channel within the group
    channel = (g0 + kc // (WPG_P2 * _NIBBLES)) * GS + cc
    word = _word(rows[:, None], g[None, :], wk[None, :], G, WPG)
    scale = rows[:, None] * G + g[None, :]
    smask = (rows < N)[:, None] & (g < G)[None, :]
    wmask = smask & (wk < WPG)[None, :]
    q = tl.load(hw_ptr + word, mask=wmask, other=0)
    s = tl.load(hs_ptr + scale, mask=smask, other=0.0).to(tl.float32)
    z = tl.load(hz_ptr + scale, mask=smask, other=0.0).to(tl.float32)
    ql, ls = q, s
    if MID:
        ql = tl.load(lw_ptr + word, mask=wmask, other=0)
        ls = tl.load(ls_ptr + scale, mask=smask, other=0.0).to(tl.float32)
    w = _weight_tile(q, s, z, ql, ls, magic, w_ptr, MID)
    inside = (cc < GS) & (channel < K)
    tl.store(w_ptr + rows[:, None] * K + channel[None, :], w, mask=(rows < N)[:, None] & inside[None, :])


def dequantize(planes: WordPlanes, gear: Gear, dtype: torch.dtype) -> torch.Tensor:
    """The low or mid gear's weight [out, in] in `dtype`, as gearterm.kernels.nested.dequantize
    gives it (then rounded to dtype)."""
    n, k = planes.shape
    geometry = _geometry(planes)
    w = torch.empty(n, k, dtype=dtype, device=planes.h_words.device)
    block_n, block_g = 32, 1 << (max(1, 128 // planes.group_size).bit_length() - 1)  # ~128 channels
    grid = (triton.cdiv(n, block_n), triton.cdiv(planes.groups, block_g))
    args = (planes.h_words, planes.h_scale, planes.h_zero, planes.l_words, planes.l_scale)
    _dequantize_kernel[grid](*args, w, n, k, planes.groups, _MAGIC, MID=gear == Gear.MID,
                             BLOCK_N=block_n, BLOCK_G=block_g, num_warps=4, **geometry)  # fmt: skip
    return w


def gemv_config(n: int, k: int, gear: Gear) -> dict:
    """Block sizes for batch 1, from a sweep of 30 configurations on an H100 (docs/benchmarks/
    kernels-h100.md): one warp a program, a few rows a thread, three steps of codes in flight;
    tall matrices take 16 rows a program, short ones 8, so that there are programs enough.
    The tallest (stacked gate and up projections, 28672 rows) differ by gear: the low gear
    streams best with two warps a program, the mid gear with 8 rows a warp (29.3 and 52.4 us
    there, against 31.6 and 60.3 with the 16-row one-warp blocks)."""
    if n >= 16384:
        if gear == Gear.LOW:
            return {"BLOCK_N": 16, "BLOCK_G": 4, "STAGES": 3, "num_warps": 2}
        return {"BLOCK_N": 8, "BLOCK_G": 4, "STAGES": 3, "num_warps": 1}
    if n >= 8192:
        return {"BLOCK_N": 16, "BLOCK_G": 4, "STAGES": 3, "num_warps": 1}
    return {"BLOCK_N": 8, "BLOCK_G": 8, "STAGES": 3, "num_warps": 1}


def gemm_config(m: int, n: int, k: int, gear: Gear) -> dict:
    """Block sizes for batch 2 and up, from a sweep of seven configurations at batch 16 on an
    H100 (docs/benchmarks/kernels-h100.md): 16 rows and one group a step, one warp a
    program for tall matrices and two for the rest (256 programs of 4096 rows are too few
    to keep the SMs' loads in flight with one)."""
    block_m = 16 if m <= 16 else 32 if m <= 32 else 64
    return {"BLOCK_M": block_m, "BLOCK_N": 16, "BLOCK_G": 1, "STAGES": 3, "num_warps": 1 if n >= 8192 else 2}


def _geometry(planes: WordPlanes) -> dict:
    wpg = planes.words_per_group
    return {"GS": planes.group_size, "WPG": wpg, "WPG_P2": triton.next_power_of_2(wpg)}


def gear_matmul(
    x: torch.Tensor,
    planes: WordPlanes,
    gear: Gear,
    config: dict | None = None,
    silu_times_up: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [..., in] @ W_gear^T for the low or mid gear, on the device the planes live on.
    Batch 1 of 16-bit x in groups of 128 on a GPU takes the tensor-core GEMV
    (gearterm.kernels.triton_gemv_mma); other shapes, float32 and the interpreter the CUDA-core one.
    `config` overrides some or all block sizes (the kernel benchmark's sweep uses it): KS
    (and X_AHEAD, PREFETCH, PIN, and the probe LOADS_ONLY, whose result is not the product) for
    the tensor-core GEMV, TMA (stages) for its bulk-copy experiment (triton_gemv_tma;
    GEARTERM_GEMV_TMA sets it for every call), BLOCK_N and the rest for the others.
    Two epilogues of the tensor-core GEMV only (where triton_gemv_mma.fits): `silu_times_up`: W is
    an MLP's gate and up rows in alternating tiles of 8, and the result SiLU(gate) * up, [..., out
    / 2]; `residual` (x's shape but `out` wide): the result is residual + x @ W_gear^T."""
    if gear == Gear.HIGH:
        raise ValueError("the high gear reads the original weight: use F.linear")
    n, k = planes.shape
    if x.shape[-1] != k:
        raise ValueError(f"x has {x.shape[-1]} input channels, the weight {k}")
    geometry = _geometry(planes)
    if planes.groups > 1 and planes.group_size % NIBBLES:
        raise ValueError(f"group size {planes.group_size} splits a word across groups: use a multiple of 8")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m, groups = x2.shape[0], planes.groups
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    args = (planes.h_words, planes.h_scale, planes.h_zero, planes.l_words, planes.l_scale)
    full = k == groups * planes.group_size and geometry["WPG"] * NIBBLES == planes.group_size
    full = full and geometry["WPG"] == geometry["WPG_P2"]
    config = config or {}
    tensor_cores = m == 1 and triton_gemv_mma.fits(x2, planes)
    epilogues = {"silu_times_up": silu_times_up, "residual": None if residual is None else residual.reshape(1, n)}
    if (silu_times_up or residual is not None) and not tensor_cores:
        raise ValueError("SiLU(gate) * up and the residual are added by the batch-1 tensor-core GEMV only")
    if tensor_cores and "BLOCK_N" not in config:
        stages = config.get("TMA", triton_gemv_tma.STAGES_SETTING)
        if stages:  # experiment: codes by bulk copies
            y = triton_gemv_tma.gemv_tma(x2, planes, gear, config.get("KS", triton_gemv_tma.KS_SETTING), stages, **epilogues)
        else:
            knobs = config.get("KS"), config.get("X_AHEAD"), config.get("PREFETCH"), config.get("PIN")
            y = triton_gemv_mma.gemv_mma(x2, planes, gear, *knobs, **epilogues, loads_only=config.get("LOADS_ONLY", False))
        return y.reshape(*lead, y.shape[-1])
    if m >= DEQUANTIZE_ROWS and x2.is_cuda and x.dtype != torch.float32 and not config:
        return torch.nn.functional.linear(x2, dequantize(planes, gear, x.dtype)).reshape(*lead, n)
    if m == 1:
        cfg = {**gemv_config(n, k, gear), **config}
        even = full and n % cfg["BLOCK_N"] == 0 and groups % cfg["BLOCK_G"] == 0
        grid = (triton.cdiv(n, cfg["BLOCK_N"]),)
        _gemv_kernel[grid](x2, *args, y, n, k, groups, _MAGIC, MID=gear == Gear.MID, EVEN=even, **geometry, **cfg)
    else:
        cfg = {**gemm_config(m, n, k, gear), **config}
        # tl.dot needs at least 16 along K (8 a word): groups of one word take two a step.
        cfg["BLOCK_G"] = max(cfg["BLOCK_G"], 2 // geometry["WPG_P2"])
        even = full and n % cfg["BLOCK_N"] == 0 and groups % cfg["BLOCK_G"] == 0
        grid = (triton.cdiv(n, cfg["BLOCK_N"]), triton.cdiv(m, cfg["BLOCK_M"]))
        _gemm_kernel[grid](
            x2, *args, y, m, n, k, groups, x2.stride(0), y.stride(0), _MAGIC,
            MID=gear == Gear.MID, EVEN=even, IEEE=x.dtype == torch.float32, **geometry, **cfg,
        )  # fmt: skip
    return y.reshape(*lead, n)
