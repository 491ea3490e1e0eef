"""A scripted stand-in backend: replays fixed text at a set token rate, with made-up readings.

It is a stand-in for `bench ui` and the app's snapshot and crash tests, where a real model
cannot run at an exact, steady 500 tokens/s or give the same screen twice. Its entropies
are pseudo-random (seeded) and pass through the real gear policy; its gate readings are a
fixed pattern. Nothing it reports is a measurement of a model.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Sequence

from gearterm.backends.base import Capabilities, Event, GenerationParams, LocalBackend, Message, Progress, ReplyDone, TokenEvent
from gearterm.backends.gearbox import Gearbox, GearMode
from gearterm.kernels.gear import Gear

SCRIPT = (  # starts with a blank line so that each repetition opens a new heading
    "\n\n## Shifting gears\n\nThe model reads its weights at **4 bits** when it is sure of the next token, "
    "at 8 bits when it hesitates, and at full precision when it is lost. Three things to watch:\n\n"
    "- the entropy of each next-token distribution,\n- the gear it picks for the next step,\n"
    "- the joules each gear costs per token.\n\nA short story follows. Once upon a time there was a "
    "little robot who counted every word it said, and it said them as cheaply as it could."
)
VOCAB = 512
LAYERS = 5
LOSSLESS_DRAFT = 4  # tokens each scripted verify pass checks


class ScriptedBackend(LocalBackend):
    name = "scripted"

    def __init__(
        self,
        tokens_per_s: float = 500.0,
        *,
        seed: int = 0,
        hold_after: int | None = None,
        load_seconds: float = 0.0,
    ):
        """`hold_after`: emit that many tokens, then wait (without ending the reply) until cancelled,
        so a test can look at the screen mid-reply. `load_seconds`: how long load() pretends to take."""
        super().__init__()
        self.tokens_per_s = tokens_per_s
        self.seed = seed
        self.hold_after = hold_after
        self.load_seconds = load_seconds
        self.words = re.findall(r"\s*\S+", SCRIPT)  # each token keeps the whitespace before it

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(entropy="exact", gears="per_token", hidden_states=True, vocab_size=VOCAB, device="cpu")

    @property
    def model_name(self) -> str:
        return f"scripted-{self.tokens_per_s:g}-tokens-per-s"

    def load(self, progress: Progress | None = None) -> None:
        report = progress or (lambda fraction, text: None)
        steps = 10
        for i in range(steps):
            report(i / steps, "pretending to read weights")
            time.sleep(self.load_seconds / steps)
        report(1.0, "ready")

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        self._cancel.clear()
        rng = random.Random(self.seed)
        gearbox = Gearbox(VOCAB, params.gear_mode)
        interval = 1.0 / self.tokens_per_s
        start = time.perf_counter()
        reason, produced = "length", 0
        accepted_left: list[bool] = []  # lossless mode: the scripted verify pass's tokens still to come
        for produced in range(1, params.max_tokens + 1):
            # An absolute schedule: the rate stays exact however late one step wakes.
            delay = start + produced * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            entropy = rng.choice((0.2, 0.6, 1.2, 2.0, 3.0)) * rng.uniform(0.5, 1.5)
            gear = gearbox.gear
            decision = gearbox.step(entropy)
            verified = {}
            if params.gear_mode is GearMode.LOSSLESS:
                # Scripted verify passes: 4 drafts each, of which a seeded number are kept.
                if not accepted_left:
                    accepted_left = [True] * rng.choice((4, 4, 3, 1, 0)) + [False]
                from_draft = accepted_left.pop(0)
                gear = Gear.LOW if from_draft else Gear.HIGH
                verified = {"kept_from": "draft"} if from_draft else {"kept_from": "high", "drafted": LOSSLESS_DRAFT}
            yield TokenEvent(
                text=self.words[(produced - 1) % len(self.words)],
                token_id=(produced * 7) % VOCAB,
                gear=gear,
                next_gear=decision.gear,
                entropy_bits=entropy,
                step_ms=interval * 1e3,
                gate_survival=tuple((produced + layer) % (layer + 2) == 0 for layer in range(LAYERS)),
                **verified,
            )
            if produced == self.hold_after:
                self._hold()
            if self._cancel.is_set():
                reason = "cancelled"
                break
        # The scripted time, not the wall clock's: a finished reply's line reads the same every run.
        yield ReplyDone(reason=reason, tokens=produced, seconds=produced * interval, first_token_s=interval)

    def _hold(self) -> None:
        self._cancel.wait()

