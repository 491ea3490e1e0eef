"""The sampler's distribution: temperature and top-p applied to logits, as probabilities.

One function for the sampler and for lossless mode's acceptance rule (backends.lossless),
which must see the draft and the high gear through the very transform the sampler applies."""

from __future__ import annotations

import torch

from gearterm.backends.base import GenerationParams


def sampling_probs(logits: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """Probabilities [..., V] the sampler draws from at temperature > 0: the softmax of
    logits / temperature, cut to the top-p nucleus (each row on its own; the cut rows sum to
    less than 1, which multinomial does not mind)."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1:
        sorted_p, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        drop = sorted_p.cumsum(-1) - sorted_p >= params.top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0))
    return probs


def sample(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator | None) -> torch.Tensor:
    """The next token id, drawn at temperature > 0 (greedy takes the readings' argmax), as a
    0-d tensor on the logits' device (no host sync)."""
    return torch.multinomial(sampling_probs(logits, params), 1, generator=generator).squeeze(-1)
