"""Each decoder layer's output at the newest position, copied into one static [L, d] buffer:
what the activation entropy gate reads once per token.

Forward hooks do the copies, so any decoder that runs the model's own decoder layers fills
the buffer: the eager one, and a CUDA graph captured after the tap is installed (the copies
are captured with the layers; `last_hidden` is then a static graph output). No host sync."""

from __future__ import annotations

import torch
from torch import nn


class HiddenStateTap:
    def __init__(self, layers: nn.ModuleList, hidden_size: int, dtype: torch.dtype, device: torch.device):
        self.last_hidden = torch.zeros(len(layers), hidden_size, dtype=dtype, device=device)
        self._handles = [layer.register_forward_hook(self._copy_into(i)) for i, layer in enumerate(layers)]

    def _copy_into(self, row: int):
        def hook(module: nn.Module, args, output) -> None:
            hidden = output[0] if isinstance(output, tuple) else output  # [(batch,) positions, d]
            self.last_hidden[row].copy_(hidden.reshape(-1, hidden.shape[-1])[-1])

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
