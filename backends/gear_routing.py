"""Gears over HTTP: a server's weights cannot be touched, so each turn goes to a model variant.

The config maps each gear to a model name (e.g. `llama3.1:8b-instruct-q4_K_M`, `...-q8_0`,
`...-fp16`); without one, the mapping is proposed from the names the server lists that differ
from the chosen model only by a quantization suffix. The gear of the next turn comes from the
gear policy fed with the conversation's recent per-token entropy (a top-k bound).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gearterm.backends.gearbox import REFERENCE_BITS, Decision, Gearbox, GearMode, PolicyConfig
from gearterm.backends.topk_entropy import EntropyBounds
from gearterm.kernels.gear import Gear

EntropySource = Literal["lower", "upper"]

# A quantization suffix at the end of a name (before an optional .gguf), after - _ . or :
# llama.cpp / Ollama types (q4_K_M, q8_0, iq3_xxs), float types, and common HF-style tags.
_QUANT = re.compile(
    r"(?P<sep>[-_.:])(?P<quant>i?q(?P<qbits>[1-8])(?:_[a-z0-9]+)*|b?fp?(?P<fbits>16|32)|fp8|int(?P<ibits>[48])|"
    r"(?P<wbits>[48])bit|awq|gptq)(?P<ext>\.gguf)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Variant:
    name: str  # as the server lists it
    family: str  # the name without its quantization suffix
    quantization: str  # e.g. "q4_K_M", "f16"
    bits: int  # nominal bits per weight


def parse_variant(name: str) -> Variant | None:
    """The quantization a model's name ends with, or None when it names none."""
    m = _QUANT.search(name)
    if m is None:
        return None
    quant = m["quant"]
    digits = m["qbits"] or m["fbits"] or m["ibits"] or m["wbits"]
    bits = int(digits) if digits else 8 if quant.lower() == "fp8" else 4  # awq and gptq are 4-bit
    return Variant(name=name, family=name[: m.start()] + (m["ext"] or ""), quantization=quant, bits=bits)


def _band(bits: int) -> Gear:
    """The gear a nominal bit width stands in for: 4-ish bits low, 8-ish mid, 16+ high."""
    return Gear.LOW if bits < 6 else Gear.MID if bits < 12 else Gear.HIGH


def _closeness(v: Variant, gear: Gear) -> tuple:
    """Nearest nominal bits first; ties go to the K-quant medium mix (Ollama's default tag)."""
    return abs(v.bits - gear.bits), v.quantization.lower() != f"q{v.bits}_k_m", v.name


def propose_gear_models(model: str, available: Iterable[str]) -> dict[Gear, str]:
    """Map each gear to `model` or a sibling that differs from it only by quantization.

    The chosen model keeps the gear its own bit width stands for. Each other gear takes the
    sibling nearest its nominal bits (4, 8, 16); a gear with no sibling in its band takes
    the next safer gear's model (the low gear the cheapest one), so every gear is mapped."""
    own = parse_variant(model)
    if own is None:
        return dict.fromkeys(Gear, model)
    family = sorted(
        {v for name in {*available, model} if (v := parse_variant(name)) and v.family == own.family},
        key=lambda v: (v.bits, v.name),
    )
    chosen: dict[Gear, str] = {_band(own.bits): model}
    for gear in Gear:
        band = [v for v in family if _band(v.bits) == gear]
        if gear not in chosen and band:
            chosen[gear] = min(band, key=lambda v: _closeness(v, gear)).name
    if Gear.HIGH not in chosen:
        chosen[Gear.HIGH] = family[-1].name
    if Gear.MID not in chosen:
        chosen[Gear.MID] = chosen[Gear.HIGH]
    if Gear.LOW not in chosen:
        chosen[Gear.LOW] = family[0].name
    return {gear: chosen[gear] for gear in Gear}


def gear_of(model: str, gear_models: Mapping[Gear, str]) -> Gear:
    """The gear a model name serves; the highest one when it serves several."""
    return max((g for g, name in gear_models.items() if name == model), default=Gear.HIGH)


class GearRouter:
    """Picks the variant of each turn from the entropy of the turns before it.

    One Gearbox runs over the whole conversation; its rolling mean spans the last
    `window_tokens` tokens (not the per-token default of a few), so one turn's gear
    reflects the recent conversation rather than its last three tokens."""

    def __init__(
        self,
        gear_models: Mapping[Gear, str],
        start: Gear,
        vocab_size: int | None,
        entropy_source: EntropySource = "lower",
        window_tokens: int = 32,
    ):
        if entropy_source not in ("lower", "upper"):
            raise ValueError(f"entropy source must be 'lower' or 'upper', got {entropy_source!r}")
        if entropy_source == "upper" and vocab_size is None:
            raise ValueError("the upper entropy bound needs the vocabulary size; give it or use the lower bound")
        self.gear_models = dict(gear_models)
        self.start = start
        self.entropy_source: EntropySource = entropy_source
        # Without V the thresholds stay at the figures published for a 32k vocabulary.
        config = dataclasses.replace(PolicyConfig(), window=window_tokens)
        self.gearbox = Gearbox(vocab_size or 2**int(REFERENCE_BITS), config=config)
        self.reset()

    def reset(self) -> None:
        """A new conversation: back to the start gear, nothing remembered."""
        self.gearbox.reset()
        if self.gearbox.mode.forced_gear is None:
            self.gearbox.gear = self.start

    def begin_turn(self, mode: GearMode) -> tuple[Gear, str]:
        """The gear and model name of the turn about to start."""
        if mode != self.gearbox.mode:
            self.gearbox.set_mode(mode)
        return self.gearbox.gear, self.gear_models[self.gearbox.gear]

    def observe(self, bounds: EntropyBounds) -> Decision | None:
        """Feed one token's entropy bound; returns the gear the next turn would take."""
        bits = bounds.lower_bits if self.entropy_source == "lower" else bounds.upper_bits
        if bits is None:
            return None
        return self.gearbox.step(bits)

    @property
    def next_gear(self) -> Gear:
        return self.gearbox.gear
