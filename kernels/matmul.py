"""x @ W^T at a gear: the one entry point models call, whatever the device."""

from functools import cache
from importlib.util import find_spec

import torch
import torch.nn.functional as F

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


def geared_matmul(x: torch.Tensor, w: NestedWeight | WordPlanes, gear: Gear) -> torch.Tensor:
    if gear == Gear.HIGH:
        return F.linear(x, w.weight)  # the original weight through the platform's BLAS
    if isinstance(w, WordPlanes):
        if torch.compiler.is_compiling():  # one operator in the graph, not a traced launch
            return compiled_gear_matmul(x, w, gear)
        from gearterm.kernels.triton_gears import gear_matmul  # imports triton: only where it runs

        return gear_matmul(x, w, gear)
    return reference_matmul(x, w, gear)
