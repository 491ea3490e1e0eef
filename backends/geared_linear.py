"""A drop-in for nn.Linear that holds every gear of its weight and reads the selected one."""

from __future__ import annotations

import torch
from torch import nn

from gearterm.kernels.gear import Gear, GearSelector
from gearterm.kernels.matmul import (
    for_cpu_kernel, fused_kernels_available, geared_matmul, high_gear_matmul, own_high_gemv, plus_residual_matmul,
    rotated_into_cache_matmul, silu_times_up_matmul,
)  # fmt: skip
from gearterm.kernels.nested import GROUP_SIZE, NestedWeight, pack
from gearterm.kernels.word_planes import WordPlanes, to_nested, to_word_planes


class GearedLinear(nn.Module):
    def __init__(self, linear: nn.Linear, selector: GearSelector, group_size: int = GROUP_SIZE):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.selector = selector
        nw = pack(linear.weight.data, group_size)
        # The layout is chosen once, where the weight lives: on a GPU the fused kernels read
        # the codes as interleaved 32-bit words; elsewhere nibble pairs, with float32 scales
        # where the CPU kernel reads them.
        self.words = fused_kernels_available(nw.weight.device)
        if self.words:
            planes = to_word_planes(nw)
            h_codes, l_codes = planes.h_words, planes.l_words
        else:
            nw = for_cpu_kernel(nw)
            h_codes, l_codes = nw.h_codes, nw.l_codes
        # Buffers, so .to(device) moves every plane together with the original weight.
        self.register_buffer("weight", nw.weight)
        self.register_buffer("h_codes", h_codes)
        self.register_buffer("h_scale", nw.h_scale)
        self.register_buffer("h_zero", nw.h_zero)
        self.register_buffer("l_codes", l_codes)
        self.register_buffer("l_scale", nw.l_scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.data)
        self.group_size = nw.group_size
        self.own_high_gemv = own_high_gemv(nw.weight.device)

    @property
    def planes(self) -> NestedWeight | WordPlanes:
        """What the matmul reads: the planes in this layer's layout."""
        kind = WordPlanes if self.words else NestedWeight
        return kind(self.weight, self.h_codes, self.h_scale, self.h_zero, self.l_codes, self.l_scale, self.group_size)

    @property
    def nested(self) -> NestedWeight:
        """The planes in the reference layout (converted, where the layer holds words)."""
        planes = self.planes
        return to_nested(planes) if self.words else planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gear = self.selector.gear
        if gear == Gear.HIGH:
            return high_gear_matmul(x, self.weight, self.bias, self.own_high_gemv)  # the original weight
        y = geared_matmul(x, self.planes, gear)
        return y if self.bias is None else y + self.bias

    def silu_times_up(self, x: torch.Tensor) -> torch.Tensor | None:
        """For an MLP's gate and up rows in alternating tiles of 8 (backends.decoder.GATE_TILE):
        SiLU(gate) * up written by the gear's GEMV itself, where its kernel can (kernels.matmul.
        silu_times_up_matmul); None elsewhere, and the MLP computes it from forward()'s rows."""
        if not self.words or self.bias is not None:
            return None
        return silu_times_up_matmul(x, self.planes, self.selector.gear)

    def plus(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """residual + self(x): added by the gear's GEMV before it stores, where its kernel can
        (kernels.matmul.plus_residual_matmul), one kernel less a layer; else added after."""
        if self.words and self.bias is None:
            y = plus_residual_matmul(x, self.planes, self.selector.gear, residual, self.own_high_gemv)
            if y is not None:
                return y
        return residual + self(x)

    def rotated_into_cache(self, x, cos, sin, pos, k_cache, v_cache, q_rows: int, rotary_dim: int) -> torch.Tensor | None:
        """For q, k and v stacked in rotary tiles (backends.decoder.tile_rotary), one row: q rotated,
        and k rotated and v written into the caches at pos, by the gear's GEMV itself where its
        kernel can (kernels.matmul.rotated_into_cache_matmul); None elsewhere."""
        if not self.words or self.bias is not None:
            return None
        args = (x, self.planes, self.selector.gear, cos, sin, pos, k_cache, v_cache, q_rows, rotary_dim)
        return rotated_into_cache_matmul(*args, own_high=self.own_high_gemv)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


def gear_decoder_layers(layers: nn.ModuleList, selector: GearSelector, progress=None) -> int:
    """Swap every nn.Linear inside the decoder layers (attention, MLP and expert projections)
    for a GearedLinear. Embeddings and the LM head live outside the layers and stay as they
    are; so do subclasses of nn.Linear, which a model uses to keep one at full precision (a
    mixture of experts' router)."""
    swapped = 0
    for i, layer in enumerate(layers):
        for child in list(layer.modules()):
            for attr, sub in list(child.named_children()):
                if type(sub) is nn.Linear:
                    setattr(child, attr, GearedLinear(sub, selector))
                    swapped += 1
        if progress:
            progress((i + 1) / len(layers), f"packing gears: layer {i + 1}/{len(layers)}")
    return swapped


def geared_share(layers: nn.ModuleList) -> float:
    """The fraction of the decoder layers' projection weights held in gears: GearedLinear
    elements over those plus any plain nn.Linear left (routers, subclasses, do not count)."""
    geared = sum(m.weight.numel() for m in layers.modules() if isinstance(m, GearedLinear))
    plain = sum(m.weight.numel() for m in layers.modules() if type(m) is nn.Linear)
    return geared / (geared + plain) if geared + plain else 0.0
