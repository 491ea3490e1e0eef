"""x @ W^T at a gear: the one entry point models call, whatever the device."""

from functools import cache
from importlib.util import find_spec

import torch
import torch.nn.functional as F

from gearterm.kernels import cpu_gears
from gearterm.kernels.gear import Gear
from gearterm.kernels.gear_op import compiled_gear_matmul
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


# Rows at most that a CPU multiplies as W @ x^T. With a few rows of x, torch's CPU matmul for
# F.linear ran 1.5-5x slower than W @ x^T (SmolLM2-135M's shapes, float32, 2 threads); lossless
# mode's verify pass of 5 positions took 35.7 ms instead of 58.7 (a high-gear step: 38.7).
FEW_ROWS = 16


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T (+ bias) in full precision: F.linear, except 2 to FEW_ROWS rows on a CPU,
    computed as weight @ x^T. One row (a decode step) and a long prompt are F.linear's, bit
    for bit."""
    rows = x[..., 0].numel()
    if x.device.type != "cpu" or not 1 < rows <= FEW_ROWS:
        return F.linear(x, weight, bias)
    y = (weight @ x.reshape(rows, -1).T).T.reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias


def for_cpu_kernel(nw: NestedWeight) -> NestedWeight:
    """The planes with float32 scales and zeros where the CPU gear kernel will read them
    (kernels.cpu_gears); unchanged elsewhere. The values are the same: fp16 widens exactly."""
    if not (cpu_gears.fits(nw) and cpu_gears.available()):
        return nw
    return NestedWeight(nw.weight, nw.h_codes, nw.h_scale.float(), nw.h_zero.float(), nw.l_codes, nw.l_scale.float(), nw.group_size)


def geared_matmul(x: torch.Tensor, w: NestedWeight | WordPlanes, gear: Gear) -> torch.Tensor:
    if gear == Gear.HIGH:
        return F.linear(x, w.weight)  # the original weight through the platform's BLAS
    if isinstance(w, WordPlanes):
        if torch.compiler.is_compiling():  # one operator in the graph, not a traced launch
            return compiled_gear_matmul(x, w, gear)
        from gearterm.kernels.triton_gears import gear_matmul  # imports triton: only where it runs

        return gear_matmul(x, w, gear)
    if w.h_scale.dtype == torch.float32 and x.device.type == "cpu" and x[..., 0].numel() <= CPU_KERNEL_ROWS:
        return cpu_gears.gear_matmul(x, w, gear)  # for_cpu_kernel chose float32 scales for it
    return reference_matmul(x, w, gear)
