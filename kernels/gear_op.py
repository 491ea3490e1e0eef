"""The gear matmuls as opaque torch operators, for torch.compile: the low/mid gear's, and the
high gear's own batch-1 GEMV.

Traced as a plain function, every Triton launch inside a compiled model is analyzed by
dynamo (it runs Triton's front end on the kernel to learn which arguments it writes), once
per call site: 224 call sites a gear for a Llama-3-8B, minutes of compiling. As an operator
it is one node of the graph; inductor calls it as it is and fuses what lies around it.
"""

from __future__ import annotations

import torch

from gearterm.kernels.gear import Gear
from gearterm.kernels.word_planes import WordPlanes


@torch.library.custom_op("gearterm::gear_matmul", mutates_args=())
def gear_matmul_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    h_words: torch.Tensor,
    h_scale: torch.Tensor,
    h_zero: torch.Tensor,
    l_words: torch.Tensor,
    l_scale: torch.Tensor,
    group_size: int,
    gear: int,
    silu_times_up: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    from gearterm.kernels import triton_gears  # imports triton: only where it runs

    planes = WordPlanes(weight, h_words, h_scale, h_zero, l_words, l_scale, group_size)
    return triton_gears.gear_matmul(x, planes, Gear(gear), silu_times_up=silu_times_up, residual=residual)


@gear_matmul_op.register_fake
def _(x, weight, h_words, h_scale, h_zero, l_words, l_scale, group_size, gear, silu_times_up=False, residual=None):
    return x.new_empty((*x.shape[:-1], weight.shape[0] // 2 if silu_times_up else weight.shape[0]))


def compiled_gear_matmul(
    x: torch.Tensor, planes: WordPlanes, gear: Gear, silu_times_up: bool = False, residual: torch.Tensor | None = None
) -> torch.Tensor:
    p = planes
    args = (p.weight, p.h_words, p.h_scale, p.h_zero, p.l_words, p.l_scale, p.group_size, int(gear), silu_times_up)
    return gear_matmul_op(x, *args, residual)


@torch.library.custom_op("gearterm::gear_qkv", mutates_args=("k_cache", "v_cache"))
def gear_qkv_op(
    x: torch.Tensor, weight: torch.Tensor, h_words: torch.Tensor, h_scale: torch.Tensor, h_zero: torch.Tensor,
    l_words: torch.Tensor, l_scale: torch.Tensor, group_size: int, gear: int,
    cos: torch.Tensor, sin: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
    q_rows: int, rotary_dim: int,
) -> torch.Tensor:  # fmt: skip
    """kernels.triton_gemv_qkv.gemv_qkv (gemv_f16_qkv in the high gear): q returned, k and v written
    into the caches (declared, so that inductor orders the cache's readers after it and writes in
    place)."""
    from gearterm.kernels import triton_gemv_qkv  # imports triton: only where it runs

    if Gear(gear) == Gear.HIGH:  # the original weight, in gearterm's own GEMV
        return triton_gemv_qkv.gemv_f16_qkv(x, weight, cos, sin, pos, k_cache, v_cache, q_rows, rotary_dim)
    planes = WordPlanes(weight, h_words, h_scale, h_zero, l_words, l_scale, group_size)
    return triton_gemv_qkv.gemv_qkv(x, planes, Gear(gear), cos, sin, pos, k_cache, v_cache, q_rows, rotary_dim)


@gear_qkv_op.register_fake
def _(x, weight, h_words, h_scale, h_zero, l_words, l_scale, group_size, gear, cos, sin, pos, k_cache, v_cache,
      q_rows, rotary_dim):  # fmt: skip
    return x.new_empty((1, q_rows))


@torch.library.custom_op("gearterm::high_gemv", mutates_args=())
def high_gemv_op(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    from gearterm.kernels import triton_gemv_f16  # imports triton: only where it runs

    return triton_gemv_f16.gemv_f16(x, weight, residual=residual)


@high_gemv_op.register_fake
def _(x, weight, residual=None):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))
