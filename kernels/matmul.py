"""x @ W^T at a gear: the one entry point models call, whatever the device."""

import os
from functools import cache
from importlib.util import find_spec

import torch
import torch.nn.functional as F

from gearterm.kernels import cpu_gears
from gearterm.kernels.gear import Gear
from gearterm.kernels.gear_op import compiled_gear_matmul, gear_qkv_op, high_gemv_op
from gearterm.kernels.nested import NestedWeight, reference_matmul
from gearterm.kernels.word_planes import WordPlanes


@cache
def _triton_installed() -> bool:
    return find_spec("triton") is not None


def fused_kernels_available(device: torch.device) -> bool:
    """Whether weights on `device` get the fused Triton kernels (and so the word layout)."""
    return device.type == "cuda" and _triton_installed()


# Positions at most for which the CPU kernel reads the codes once per position; a longer
# prompt rebuilds the weight once and multiplies every position with it.
CPU_KERNEL_ROWS = 8


# Rows at most that a CPU may multiply as W @ x^T, where that is faster here (weight_first).
FEW_ROWS = 16


@cache
def weight_first(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies a few rows of x faster as W @ x^T than through F.linear,
    timed once per process (a few ms). The answer is the machine's BLAS's, not ours: on a
    2-core AMD EPYC, F.linear ran 1.5-5x slower for a few rows (SmolLM2-135M's shapes, float32;
    lossless mode's verify pass of 5 positions 58.7 ms against 35.7 as W @ x^T), and on a 2-core
    Intel Xeon with AVX-512, W @ x^T ran up to 1.8x slower (a verify pass of 2 positions 62 ms
    against 35). Timed on SmolLM2's MLP shape with 4 rows, interleaved, medians compared."""
    import time

    w, x = torch.randn(1536, 576, dtype=dtype), torch.randn(4, 576, dtype=dtype)
    ways = {True: lambda: w @ x.T, False: lambda: F.linear(x, w)}
    times = {first: [] for first in ways}
    for _ in range(9):
        for first, way in ways.items():
            start = time.perf_counter()
            way()
            times[first].append(time.perf_counter() - start)
    return sorted(times[True])[4] < sorted(times[False])[4]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T (+ bias) in full precision: F.linear, except 2 to FEW_ROWS rows on a CPU
    that multiplies them faster as weight @ x^T (weight_first). One row (a decode step) and a
    long prompt are F.linear's, bit for bit."""
    rows = x[..., 0].numel()
    if x.device.type != "cpu" or not 1 < rows <= FEW_ROWS or not weight_first(x.dtype):
        return F.linear(x, weight, bias)
    y = (weight @ x.reshape(rows, -1).T).T.reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias


# GEARTERM_HIGH_GEMV=own|cublas: which batch-1 GEMV the high gear runs on a GPU (own_high_gemv).
# Read once: a benchmark's A/B sets it for a whole run.
HIGH_GEMV = os.environ.get("GEARTERM_HIGH_GEMV", "")


def own_high_gemv(device: torch.device) -> bool:
    """Whether the high gear's batch-1 GEMV on `device` is gearterm's own (kernels.triton_gemv_f16)
    rather than cuBLAS's. GEARTERM_HIGH_GEMV says where set; else own on Hopper (compute capability
    9), where it was timed faster at every decoder shape (H100: 1.04-1.29x cuBLAS fp16; decode in
    the high gear 166 -> 181 tok/s, docs/benchmarks/decode-h100.md), cuBLAS on cards it was not timed on."""
    if HIGH_GEMV not in ("", "own", "cublas"):
        raise ValueError(f"GEARTERM_HIGH_GEMV is {HIGH_GEMV!r}: own or cublas")
    if not fused_kernels_available(device):
        return False
    if HIGH_GEMV:
        return HIGH_GEMV == "own"
    return torch.cuda.get_device_capability(device)[0] == 9


def high_gear_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, own: bool = False) -> torch.Tensor:
    """x @ weight^T (+ bias) with a geared layer's original weight: `linear`, or with `own`
    (own_high_gemv, asked once where the layer is built), one row through gearterm's own GEMV."""
    if own:
        from gearterm.kernels import triton_gemv_f16  # imports triton: only where it runs

        if triton_gemv_f16.fits(x, weight):
            y = _own_high_gemv(x, weight)
            return y if bias is None else y + bias
    return linear(x, weight, bias)


def _own_high_gemv(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """kernels.triton_gemv_f16 where it fits: one operator in a compiled graph, a launch otherwise."""
    if torch.compiler.is_compiling():
        return high_gemv_op(x, weight, residual)
    from gearterm.kernels import triton_gemv_f16  # imports triton: only where it runs

    return triton_gemv_f16.gemv_f16(x, weight, residual=residual)


def _gear_gemv(x: torch.Tensor, w: WordPlanes, gear: Gear, **epilogues) -> torch.Tensor:
    """The low or mid gear's Triton matmul (kernels.triton_gears.gear_matmul, its epilogues):
    one operator in a compiled graph, not a traced launch; a launch otherwise."""
    if torch.compiler.is_compiling():
        return compiled_gear_matmul(x, w, gear, **epilogues)
    from gearterm.kernels.triton_gears import gear_matmul  # imports triton: only where it runs

    return gear_matmul(x, w, gear, **epilogues)


def for_cpu_kernel(nw: NestedWeight) -> NestedWeight:
    """The planes with float32 scales and zeros where the CPU gear kernel will read them
    (kernels.cpu_gears); unchanged elsewhere. The values are the same: fp16 widens exactly."""
    if not (cpu_gears.fits(nw) and cpu_gears.available()):
        return nw
    return NestedWeight(nw.weight, nw.h_codes, nw.h_scale.float(), nw.h_zero.float(), nw.l_codes, nw.l_scale.float(), nw.group_size)


def silu_times_up_matmul(x: torch.Tensor, w: WordPlanes, gear: Gear) -> torch.Tensor | None:
    """SiLU(gate) * up [..., out / 2] for an MLP's stacked gate and up rows in alternating tiles
    of 8 (backends.decoder.GATE_TILE), in the one kernel of the low or mid gear's batch-1 GEMV,
    which writes it instead of the rows' products: one kernel less a layer. None where that GEMV
    does not run (the high gear, several rows, a CPU)."""
    if gear == Gear.HIGH or x[..., 0].numel() != 1:
        return None
    from gearterm.kernels import triton_gemv_mma  # imports triton: only where it runs

    return _gear_gemv(x, w, gear, silu_times_up=True) if triton_gemv_mma.fits(x.reshape(1, -1), w) else None


def plus_residual_matmul(
    x: torch.Tensor, w: WordPlanes, gear: Gear, residual: torch.Tensor, own_high: bool = False
) -> torch.Tensor | None:
    """residual + x @ W_gear^T in one kernel: the gear's batch-1 GEMV adds the residual before it
    stores (the high gear's where it is gearterm's own, `own_high`), rounded as `residual +
    F.linear(...)` rounds. None where no such GEMV runs (cuBLAS, several rows, a CPU)."""
    same_shape = residual.shape == (*x.shape[:-1], w.shape[0]) and residual.dtype == x.dtype
    if x[..., 0].numel() != 1 or not same_shape or not residual.is_contiguous():
        return None
    if gear == Gear.HIGH:
        from gearterm.kernels import triton_gemv_f16  # imports triton: only where it runs

        return _own_high_gemv(x, w.weight, residual) if own_high and triton_gemv_f16.fits(x, w.weight) else None
    from gearterm.kernels import triton_gemv_mma  # imports triton: only where it runs

    return _gear_gemv(x, w, gear, residual=residual) if triton_gemv_mma.fits(x.reshape(1, -1), w) else None


def rotated_into_cache_matmul(
    x: torch.Tensor, w: WordPlanes, gear: Gear, cos, sin, pos, k_cache, v_cache, q_rows: int, rotary_dim: int,
    own_high: bool = False,
) -> torch.Tensor | None:  # fmt: skip
    """q [1, q_rows] rotated, k rotated and v written into the caches, from one row of x and q, k
    and v stacked in rotary tiles, by the gear's batch-1 GEMV (kernels.triton_gemv_qkv: the
    experiment QKV_EPILOGUE; the high gear's where it is gearterm's own, `own_high`). None where
    that GEMV does not run (cuBLAS, several rows, a CPU)."""
    if x[..., 0].numel() != 1 or (gear == Gear.HIGH and not own_high):
        return None
    from gearterm.kernels import triton_gemv_qkv  # imports triton: only where it runs

    x, head_dim = x.reshape(1, -1), k_cache.shape[-1]
    if gear == Gear.HIGH:
        fits = triton_gemv_qkv.fits_high(x, w.weight, head_dim, rotary_dim)
    else:
        fits = triton_gemv_qkv.fits(x, w, head_dim, rotary_dim)
    if not fits:
        return None
    args = (x, w.weight, w.h_words, w.h_scale, w.h_zero, w.l_words, w.l_scale, w.group_size, int(gear))
    return gear_qkv_op(*args, cos, sin, pos, k_cache, v_cache, q_rows, rotary_dim)


def geared_matmul(x: torch.Tensor, w: NestedWeight | WordPlanes, gear: Gear) -> torch.Tensor:
    if gear == Gear.HIGH:
        return F.linear(x, w.weight)  # the original weight through the platform's BLAS
    if isinstance(w, WordPlanes):
        return _gear_gemv(x, w, gear)
    if w.h_scale.dtype == torch.float32 and x.device.type == "cpu" and x[..., 0].numel() <= CPU_KERNEL_ROWS:
        return cpu_gears.gear_matmul(x, w, gear)  # for_cpu_kernel chose float32 scales for it
    return reference_matmul(x, w, gear)
