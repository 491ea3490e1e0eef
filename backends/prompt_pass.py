"""A prompt through the decoder, as both decode drivers run it (hf.EagerDecoder, which counts
positions on the host, and cuda_decoder.GraphDecoder, which also keeps the position on the
device for its captured steps): eagerly, after the positions the cache keeps."""

from __future__ import annotations

import torch


class PromptPasses:
    """prefill() and read_prompt() over `self.model` (a backends.decoder.Decoder); the driver
    supplies `_reserve(tokens, reset)`, which checks the cache holds them and counts them."""

    def prefill(self, ids: list[int], start: int = 0) -> torch.Tensor:
        """Logits [T - start, V] for prompt positions start..; the cache keeps its first
        `start` positions (an earlier prompt's, backends.kv_reuse) and holds the prompt after."""
        return self._prompt(ids, start, self.model)

    def read_prompt(self, ids: list[int], start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """As prefill(), but only the last position's logits [V], and the entropy in bits at
        each position run [T - start] (Decoder.read_prompt)."""
        return self._prompt(ids, start, self.model.read_prompt)

    @torch.inference_mode()
    def _prompt(self, ids: list[int], start: int, run):
        self._reserve(len(ids), reset=True)
        return run(torch.tensor(ids[start:], device=self.model.embed.weight.device), start)
