"""The gear policy: turns the stream of next-token entropies into the gear of the next step.

Thresholds follow Gearbx's published defaults (low gear below 1.8 bits, high gear above
3.5 bits at a 32k vocabulary) scaled by log2(V) / 15, so a 512-token vocabulary shifts at
0.6x those figures. A rolling mean smooths single spiky tokens, hysteresis keeps the gear
from chattering at a threshold, a minimum dwell bounds the shift rate, and calibration
moves the thresholds toward the entropies the model showed on this prompt.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gearterm.kernels.gear import Gear

REFERENCE_BITS = 15.0  # log2 of the 32k vocabulary the default thresholds were set for


class GearMode(str, enum.Enum):
    AUTO = "auto"
    LOW = "low"
    MID = "mid"
    HIGH = "high"
    # The draft gear proposes tokens and one high-gear pass verifies them (backends.lossless):
    # every token is the high gear's, so the policy holds the high gear as in forced high.
    LOSSLESS = "lossless"

    @property
    def forced_gear(self) -> Gear | None:
        if self is GearMode.LOSSLESS:
            return Gear.HIGH
        return None if self is GearMode.AUTO else Gear.parse(self.value)

    def next(self) -> "GearMode":
        modes = list(GearMode)
        return modes[(modes.index(self) + 1) % len(modes)]


@dataclass(frozen=True)
class PolicyConfig:
    low_below_bits: float = 1.8  # at a 32k vocabulary; scaled by log2(V) / 15
    high_above_bits: float = 3.5
    hysteresis_bits: float = 0.15  # also scaled
    window: int = 3  # tokens in the rolling mean
    min_dwell: int = 2  # tokens a gear is held before the next shift
    calibration_min_tokens: int = 8  # shorter prompts leave the thresholds alone
    calibration_weight_tokens: int = 64  # a prompt this long moves thresholds halfway
    anomaly_fraction: float = 0.9  # entropy above this fraction of log2(V) is suspect
    anomaly_steps: int = 2  # ... for this many steps in a row


@dataclass(frozen=True)
class Decision:
    gear: Gear  # the gear of the next step
    anomaly: str | None  # set when the anomaly guard forced the high gear


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class Gearbox:
    """Stateful per reply: call calibrate() with the prefill entropies, then step() per token."""

    def __init__(self, vocab_size: int, mode: GearMode = GearMode.AUTO, config: PolicyConfig | None = None):
        if vocab_size < 2:
            raise ValueError(f"vocabulary size must be at least 2, got {vocab_size}")
        self.config = config or PolicyConfig()
        self.mode = mode
        self.max_bits = math.log2(vocab_size)
        scale = self.max_bits / REFERENCE_BITS
        self.default_low = self.config.low_below_bits * scale
        self.default_high = self.config.high_above_bits * scale
        self.hysteresis = self.config.hysteresis_bits * scale
        self.low, self.high = self.default_low, self.default_high
        self.reset()

    def reset(self) -> None:
        """Start a new reply: the gear starts high, thresholds return to the defaults."""
        self.low, self.high = self.default_low, self.default_high
        forced = self.mode.forced_gear
        self.gear = Gear.HIGH if forced is None else forced
        self._recent: deque[float] = deque(maxlen=self.config.window)
        self._since_shift = self.config.min_dwell  # the first decision may shift at once
        self._suspect_steps = 0
        self.shifts = 0

    def set_mode(self, mode: GearMode) -> None:
        self.mode = mode
        if mode.forced_gear is not None:
            self.gear = mode.forced_gear

    def calibrate(self, prefill_entropies: Sequence[float]) -> None:
        """Move the thresholds toward this prompt's own 25th and 75th entropy percentiles.

        The weight grows with the prompt's length (n / (n + calibration_weight_tokens)),
        and the result is clamped to [0.5x, 2x] of the defaults, so a short or odd
        prompt cannot push the policy far from the published figures."""
        values = [e for e in prefill_entropies if math.isfinite(e)]
        if len(values) < self.config.calibration_min_tokens:
            return
        w = len(values) / (len(values) + self.config.calibration_weight_tokens)

        def blend(default: float, observed: float) -> float:
            return min(max((1 - w) * default + w * observed, 0.5 * default), 2 * default)

        low = blend(self.default_low, _quantile(values, 0.25))
        high = blend(self.default_high, _quantile(values, 0.75))
        # Keep the mid band at least two hysteresis widths wide, or mid could never hold.
        self.low, self.high = low, max(high, low + 2 * self.hysteresis)

    def _target(self, smoothed: float) -> Gear:
        """The gear the smoothed entropy asks for, with hysteresis around the current gear."""
        h = self.hysteresis
        # A threshold is harder to cross away from the current gear than toward it.
        low_edge = self.low - h if self.gear > Gear.LOW else self.low + h
        high_edge = self.high + h if self.gear < Gear.HIGH else self.high - h
        if smoothed > high_edge:
            return Gear.HIGH
        if smoothed < low_edge:
            return Gear.LOW
        return Gear.MID

    def step(self, entropy_bits: float) -> Decision:
        """Feed the entropy of step t; returns the gear of step t + 1."""
        anomaly = None
        if not math.isfinite(entropy_bits):
            anomaly = "NaN/Inf in the logits"
            self._suspect_steps = self.config.anomaly_steps
        elif entropy_bits > self.config.anomaly_fraction * self.max_bits:
            self._suspect_steps += 1
            if self._suspect_steps >= self.config.anomaly_steps:
                anomaly = f"entropy above {self.config.anomaly_fraction:.0%} of log2(V) for {self._suspect_steps} steps"
        else:
            self._suspect_steps = 0

        self._since_shift += 1
        if anomaly is not None:
            target = Gear.HIGH
        elif self.mode.forced_gear is not None:
            target = self.mode.forced_gear
        else:
            self._recent.append(entropy_bits)
            target = self._target(sum(self._recent) / len(self._recent))
            if self._since_shift < self.config.min_dwell:
                target = self.gear

        if target != self.gear:
            self.gear = target
            self.shifts += 1
            self._since_shift = 0
        return Decision(self.gear, anomaly)
