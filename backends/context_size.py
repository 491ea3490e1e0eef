"""How many positions of context a local backend's KV cache holds: the model's own context;
the user's `context` setting where it is given; else, where the model's is larger than memory
allows, what fits in half the free memory (the other half is left for a prompt's activations
and logits, and for everything else on the machine)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gearterm.backends.base import BackendError

FREE_SHARE = 0.5
ROUNDED_TO = 256  # positions: a cache cut to fit memory is a multiple of this


@dataclass(frozen=True)
class ContextSize:
    positions: int
    bytes: int  # the KV cache at that many positions
    why: str  # where the figure comes from

    def describe(self) -> str:
        """What the load progress shows: "KV cache 8,192 positions, 1.1 GB (the model's context)"."""
        return f"KV cache {self.positions:,} positions, {size_text(self.bytes)} ({self.why})"


def choose(model_positions: int, bytes_per_position: int, free_bytes: int | None, requested: int = 0) -> ContextSize:
    """The context for a model trained on `model_positions` whose cache takes `bytes_per_position`,
    with `free_bytes` of memory free (None: not known); `requested` is the setting, 0 for none."""

    def size(positions: int, why: str) -> ContextSize:
        return ContextSize(positions, positions * bytes_per_position, why)

    if requested:
        if requested > model_positions:
            return size(model_positions, f"the model's context; the setting asks for {requested:,}")
        need = requested * bytes_per_position
        if free_bytes is not None and need > free_bytes:
            raise BackendError(
                f"a KV cache of {requested:,} positions takes {size_text(need)} but {size_text(free_bytes)} is free: "
                "set a smaller context (--context, or context in [generation] of config.toml)"
            )
        return size(requested, "the context setting")
    if free_bytes is None:
        return size(model_positions, "the model's context; free memory unknown")
    fits = int(FREE_SHARE * free_bytes) // bytes_per_position
    if fits >= model_positions:
        return size(model_positions, "the model's context")
    positions = fits // ROUNDED_TO * ROUNDED_TO
    if positions == 0:
        raise BackendError(
            f"{size_text(free_bytes)} of memory is free, too little for a KV cache of {ROUNDED_TO} positions "
            f"({size_text(ROUNDED_TO * bytes_per_position)}): close other programs or load a smaller model"
        )
    return size(positions, f"what fits in half the {size_text(free_bytes)} free; the model's is {model_positions:,}")


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory where the KV cache goes: the GPU's free memory, or the RAM the kernel says is
    available without swapping (Linux's MemAvailable); None where neither can be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def size_text(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
