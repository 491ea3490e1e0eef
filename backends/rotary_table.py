"""The rotary embedding's cos and sin looked up in a table instead of computed every step.

transformers computes them afresh for each forward pass: on a GPU decode step that is about
eight small kernels (product, concatenation, cos, sin, scalings, casts), some 13 us of a
Llama-3-8B step on an H100. The table holds what the module itself returns for every
position the static cache can reach, so a lookup is bit-identical to it.
"""

from __future__ import annotations

import types

import torch
from torch import nn

# Rope types whose cos and sin depend on the position alone (not on the sequence's length).
STATIC_ROPE_TYPES = {"default", "linear", "llama3"}


def tabulate_rotary(model: nn.Module, positions: int) -> bool:
    """Swap the forward of `model`'s rotary embedding for a lookup over positions
    [0, positions); returns whether there was a static one to swap."""
    rotary = next((m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")), None)
    if rotary is None or getattr(rotary, "rope_type", None) not in STATIC_ROPE_TYPES:
        return False
    dtype = next(model.parameters()).dtype
    probe = torch.empty(0, dtype=dtype, device=rotary.inv_freq.device)
    cos, sin = rotary(probe, torch.arange(positions, device=probe.device)[None])
    table = torch.stack([cos[0], sin[0]])  # [2, positions, dim]

    def lookup(self, x: torch.Tensor, position_ids: torch.Tensor):
        both = table.index_select(1, position_ids.reshape(-1)).unflatten(1, position_ids.shape)
        return both[0].to(x.dtype), both[1].to(x.dtype)

    rotary.forward = types.MethodType(lookup, rotary)
    return True
