"""Llama-style RMSNorm modules swapped for one-kernel ones on a GPU (gearterm.kernels.triton_rmsnorm):
same weight, same forward signature, the rest of the model does not know."""

from __future__ import annotations

import torch
from torch import nn

# Modules computing weight * (x / rms(x)) with the weight applied after the cast back, as
# LlamaRMSNorm does. Others (Gemma's adds 1 to its weight) are left alone.
LLAMA_STYLE = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"}


class FusedRMSNorm(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        self.weight = norm.weight
        self.variance_epsilon = norm.variance_epsilon

    def forward(self, hidden_states):
        from gearterm.kernels.triton_rmsnorm import rms_norm, rms_norm_reference

        if torch.compiler.is_compiling():  # inductor fuses the plain formula with the add before it
            return rms_norm_reference(hidden_states, self.weight, self.variance_epsilon)
        return rms_norm(hidden_states, self.weight, self.variance_epsilon)


def fuse_rms_norms(model: nn.Module) -> int:
    """Swap every Llama-style RMSNorm in the model; returns how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ in LLAMA_STYLE:
                setattr(parent, name, FusedRMSNorm(child))
                swapped += 1
    return swapped
