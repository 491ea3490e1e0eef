"""The per-token loop every local backend shares: sample, measure, let the policy pick the
next step's gear, step. Backends supply the framework's prefill, sampling and forward pass."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gearterm.backends.base import Event, GenerationParams, LocalBackend, PromptRead, ReplyDone, TokenEvent
from gearterm.backends.detokenize import IncrementalDetokenizer
from gearterm.backends.draft_choice import DraftChoice
from gearterm.backends.gearbox import Gearbox, GearMode
from gearterm.backends.lossless_reply import lossless_reply
from gearterm.backends.kv_reuse import CachedTokens

# Prompt positions a prefill call runs before saying how far it got (PromptRead): a multiple of
# the decoders' own chunks (backends.decoder, backends.mlx), so that the passes are the same as
# one call's. On two CPU cores SmolLM2-135M reads 100-170 tokens/s (slower the more it holds):
# an event every 12-20 s.
PROMPT_STEP = 2048


@dataclass
class StepReading:
    """What one step measured, on the host after the step's one sync."""

    token_id: int
    entropy_bits: float
    varentropy_bits2: float
    logprob: float
    gate_survival: tuple[bool, ...] | None = None


class GearedGeneration(LocalBackend):
    """A LocalBackend whose model shifts gears per token through `self.selector`.
    Subclasses set `model_id` when created, and `selector`, `vocab_size`, `policy` and
    `eos_ids` when they load. `cached` says what their KV cache holds from earlier replies
    (backends.kv_reuse); they empty it wherever they write the cache otherwise."""

    model_id: str
    decided_at = 0.0  # perf_counter() when the policy last chose a gear: the shift latency's start

    def __init__(self) -> None:
        super().__init__()
        self.cached = CachedTokens()
        # Lossless mode's measured draft gear choices, by draft settings (backends.lossless_reply)
        self.draft_choices: dict[tuple, DraftChoice] = {}

    @property
    def model_name(self) -> str:
        return self.model_id

    @abc.abstractmethod
    def _prefill(self, ids: list[int], start: int, params: GenerationParams) -> list[float]:
        """Run prompt positions `start`.. at the selector's gear, after the first `start` the
        KV cache holds; keep the last logits, and return the entropy in bits at each position run."""

    def _rewind(self, positions: int) -> int:
        """Make the KV cache hold its first `positions` only, and return how many it holds:
        fewer where the framework's cache cannot go back that far."""
        return positions

    @abc.abstractmethod
    def _sample(self, params: GenerationParams) -> StepReading:
        """Sample the next token from the current logits and measure them: one host sync."""

    @abc.abstractmethod
    def _step(self) -> None:
        """Forward pass on the token just sampled, at the selector's gear."""

    def _reply_stats(self) -> dict:
        return {}

    def _steps_run_ahead(self) -> bool:
        """True where `_step` only queues the forward pass (a GPU's captured graphs): the next
        step is then launched before the token goes to the caller, so the caller's work (the
        app drawing it) overlaps the step instead of delaying it. Where `_step` computes the
        pass before returning (CPU, MLX), the token goes out first, or each token would reach
        the caller one step late."""
        return False

    def _run(self, ids: list[int], pos: int) -> torch.Tensor:
        """Logits [T, V] as a torch tensor for `ids` at positions pos.., at the selector's gear;
        the KV cache then holds pos + T positions: lossless mode's draft steps and verify passes."""
        raise NotImplementedError(f"{type(self).__name__} has no lossless mode")

    def _read_prompt(self, ids: list[int], params: GenerationParams, gearbox: Gearbox) -> Iterator[PromptRead]:
        """Run the prompt after what the KV cache holds of it at the gearbox's gear, PROMPT_STEP
        positions a call, saying how far it got between calls; calibrate the gearbox on its
        entropies. Returns (to `yield from`) how many positions were reused."""
        gear = self.selector.gear = gearbox.gear
        reused = self._rewind(self.cached.reusable(ids, gear))
        self.cached.keep(reused)
        entropies: list[float] = []
        for start in range(reused, len(ids), PROMPT_STEP):
            if start > reused:
                yield PromptRead(start - reused, len(ids) - reused)
            entropies += self._prefill(ids[: start + PROMPT_STEP], start, params)
        self.cached.add(ids[reused:], gear, entropies)
        gearbox.calibrate(self.cached.entropies[:-1])  # the last position's is the first token's
        return reused

    def _generate(self, ids: list[int], params: GenerationParams) -> Iterator[Event]:
        if params.gear_mode is GearMode.LOSSLESS:
            yield from lossless_reply(self, ids, params)
            return
        gearbox = Gearbox(self.vocab_size, params.gear_mode, self.policy)
        detok = IncrementalDetokenizer(self.tokenizer)
        start = step_start = time.perf_counter()
        first_token_s = None
        reason, produced = "length", 0
        run_ahead = self._steps_run_ahead()

        gear = gearbox.gear
        reused = yield from self._read_prompt(ids, params, gearbox)
        stepped = None  # the token the last step read, and its gear, until its logits are measured
        for produced in range(1, params.max_tokens + 1):
            reading = self._sample(params)
            if stepped is not None:
                self.cached.add([stepped[0]], stepped[1], [reading.entropy_bits])
            if reading.token_id in self.eos_ids:
                reason = "stop"
            elif produced < params.max_tokens and self._cancel.is_set():
                reason = "cancelled"
            more = reason == "length" and produced < params.max_tokens
            decision = gearbox.step(reading.entropy_bits)
            now = self.decided_at = time.perf_counter()
            if run_ahead and more:  # nothing between the choice of a gear and its step
                self.selector.gear = decision.gear
                self._step()
                stepped = reading.token_id, decision.gear
            first_token_s = first_token_s or now - start
            yield TokenEvent(
                text=detok.push(reading.token_id),
                token_id=reading.token_id,
                gear=gear,
                next_gear=decision.gear,
                entropy_bits=reading.entropy_bits,
                varentropy_bits2=reading.varentropy_bits2,
                logprob=reading.logprob,
                step_ms=(now - step_start) * 1e3,
                anomaly=decision.anomaly,
                gate_survival=reading.gate_survival,
                thresholds_bits=(gearbox.low, gearbox.high),
            )
            if not more:
                break
            if self._cancel.is_set():  # set while the caller had the token
                reason = "cancelled"
                break
            gear = decision.gear
            if run_ahead:
                step_start = now
            else:
                step_start = time.perf_counter()
                self.selector.gear = gear
                self._step()
                stepped = reading.token_id, gear
        if tail := detok.flush():
            yield TokenEvent(tail, None, gear, gear, None, 0.0, entropy_source=None, flags=("text-only",))
        yield ReplyDone(
            reason=reason,
            tokens=produced,
            seconds=time.perf_counter() - start,
            first_token_s=first_token_s,
            stats={"shifts": gearbox.shifts, "prompt_tokens": len(ids), "prompt_reused": reused, **self._reply_stats()},
        )
